#include "cluster/cluster.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "auth/grpc_auth.h"
#include "common/strings.h"
#include "grpcpp/support/channel_arguments.h"

namespace streamgrid {
namespace {

std::string Key(std::string_view video_id, std::string_view name) {
  return absl::StrCat(ToAbsl(video_id), "/", ToAbsl(name));
}

void AppendReplicaIds(const Placement& placement, const std::string& key,
                      std::vector<std::string>& ids) {
  for (NodeIndex index : placement.ReplicasFor(key)) ids.push_back(placement.node(index).id);
}

// A channel like StorageClient::MakeChannel's, but reconnecting to a node that
// went away within seconds of its return: gRPC's default back-off grows to two
// minutes, during which every call to a restarted node would still fail.
// With options.node_interceptor, the node's calls pass through its interceptors.
std::shared_ptr<grpc::Channel> MakeNodeChannel(const ClusterNode& node,
                                               const ClusterOptions& options) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 250);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2'000);
  // Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC takes it as the timeout of a
  // connection attempt, and a short one can keep a channel failing every
  // attempt after the node is back.
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  if (options.node_interceptor) interceptors.push_back(options.node_interceptor(node.id));
  return auth::CreateChannel(node.address, args, options.client.security, std::move(interceptors));
}

}  // namespace

Cluster::Cluster(ClusterState state, ClusterOptions options) : options_(options) {
  Update(std::move(state));
}

void Cluster::Update(ClusterState state) {
  std::lock_guard lock(update_mu_);
  UpdateLocked(std::move(state));
}

bool Cluster::UpdateIfNewer(ClusterState state) {
  std::lock_guard lock(update_mu_);
  if (state.revision <= view()->state->revision) return false;
  UpdateLocked(std::move(state));
  return true;
}

void Cluster::UpdateLocked(ClusterState state) {
  std::shared_ptr<const View> old = view();
  auto next = std::make_shared<View>();
  auto add_nodes = [&](const Placement& placement) {
    for (const RingNode& node : placement.nodes()) {
      if (next->nodes.contains(node.id)) continue;
      ClusterNode entry{.id = node.id, .address = node.address};
      // Reuse the channel of a node that stays where it was: its connection
      // and health survive the update.
      if (old) {
        auto it = old->nodes.find(node.id);
        if (it != old->nodes.end() && it->second.address == node.address) {
          entry.client = it->second.client;
          entry.channel = it->second.channel;
        }
      }
      if (!entry.client) {
        entry.channel = MakeNodeChannel(entry, options_);
        entry.client = std::make_shared<storage::StorageClient>(entry.channel, options_.client);
      }
      next->nodes.emplace(node.id, std::move(entry));
    }
  };
  add_nodes(state.current);
  if (state.target) add_nodes(*state.target);
  next->state = std::make_shared<const ClusterState>(std::move(state));
  if (old) {
    std::lock_guard retired_lock(retired_mu_);
    retired_writes_.push_back(old->writes);
  }
  view_.store(std::move(next), std::memory_order_release);
}

std::unique_ptr<storage::StorageClient> Cluster::ClientFor(
    const std::string& address, std::chrono::milliseconds call_timeout) const {
  storage::StorageClientOptions options = options_.client;
  options.call_timeout = call_timeout;
  return std::make_unique<storage::StorageClient>(address, options);
}

Cluster::WritePlan Cluster::PlanWrite(std::string_view video_id, std::string_view name) const {
  std::shared_ptr<const View> v = view();
  const std::string key = Key(video_id, name);
  std::vector<std::string> ids;
  AppendReplicaIds(v->state->current, key, ids);
  if (v->state->target) AppendReplicaIds(*v->state->target, key, ids);
  // Stand-ins come from the current placement, then (during a migration) the
  // target's nodes not in it yet; never an owner of either.
  std::vector<std::string> stand_ins = HandoffOrder(v->state->current, key, ids);
  if (v->state->target) {
    std::vector<std::string> exclude = ids;
    exclude.insert(exclude.end(), stand_ins.begin(), stand_ins.end());
    for (std::string& id : HandoffOrder(*v->state->target, key, exclude)) {
      stand_ins.push_back(std::move(id));
    }
  }
  return {.nodes = Nodes(*v, ids), .token = v->writes, .stand_ins = Nodes(*v, stand_ins)};
}

std::vector<std::string> Cluster::HandoffOrder(const Placement& placement, std::string_view key,
                                               const std::vector<std::string>& exclude) {
  std::vector<bool> seen(placement.nodes().size(), false);
  size_t left = placement.nodes().size();
  for (const std::string& id : exclude) {
    if (std::optional<NodeIndex> index = placement.IndexOf(id); index && !seen[*index]) {
      seen[*index] = true;
      --left;
    }
  }
  std::vector<std::string> order;
  const uint32_t first = Placement::PartitionOfKey(key);
  // At most one lap; with a handful of nodes every one shows within a few
  // partitions.
  for (uint32_t k = 0; k < Placement::kPartitionCount && left > 0; ++k) {
    const uint32_t partition = (first + k) % Placement::kPartitionCount;
    for (NodeIndex index : placement.ReplicasForPartition(partition)) {
      if (seen[index]) continue;
      seen[index] = true;
      --left;
      order.push_back(placement.node(index).id);
    }
  }
  // A node holding no partition at all (a tiny weight) still counts.
  for (size_t i = 0; i < seen.size() && left > 0; ++i) {
    if (!seen[i]) order.push_back(placement.nodes()[i].id);
  }
  return order;
}

bool Cluster::WaitForEarlierWrites(std::chrono::milliseconds timeout) const {
  // Writes end on their own (they have deadlines), and a migration waits here
  // once per change: polling keeps the write path free of any notification.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    {
      std::lock_guard lock(retired_mu_);
      std::erase_if(retired_writes_, [](const auto& w) { return w.expired(); });
      if (retired_writes_.empty()) return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void Cluster::FenceWrites(std::string reason) {
  std::lock_guard lock(fence_mu_);
  fence_ = std::move(reason);
}

void Cluster::UnfenceWrites() {
  std::lock_guard lock(fence_mu_);
  fence_.reset();
}

absl::Status Cluster::WriteFence() const {
  std::lock_guard lock(fence_mu_);
  return fence_ ? absl::UnavailableError(*fence_) : absl::OkStatus();
}

std::optional<ClusterNode> Cluster::Node(std::string_view id) const {
  std::shared_ptr<const View> v = view();
  auto it = v->nodes.find(id);
  if (it == v->nodes.end()) return std::nullopt;
  return it->second;
}

std::vector<ClusterNode> Cluster::Nodes(const View& view,
                                        const std::vector<std::string>& ids) const {
  std::vector<ClusterNode> nodes;
  for (const std::string& id : ids) {
    if (std::any_of(nodes.begin(), nodes.end(), [&](const ClusterNode& n) { return n.id == id; })) {
      continue;
    }
    auto it = view.nodes.find(id);
    if (it != view.nodes.end()) nodes.push_back(it->second);
  }
  return nodes;
}

std::vector<ClusterNode> Cluster::WriteNodes(std::string_view video_id,
                                             std::string_view name) const {
  return PlanWrite(video_id, name).nodes;
}

std::vector<ClusterNode> Cluster::ReadNodes(std::string_view video_id,
                                            std::string_view name) const {
  std::shared_ptr<const View> v = view();
  const std::string key = Key(video_id, name);
  std::vector<std::string> ids;
  // Target owners hold a migrated partition's files, and are the ones about to
  // serve it; before that they would mostly answer NOT_FOUND (which falls
  // through to the next node, but costs a round trip).
  const ClusterState& state = *v->state;
  if (state.target && state.migrated_partitions.contains(Placement::PartitionOfKey(key))) {
    AppendReplicaIds(*state.target, key, ids);
    AppendReplicaIds(state.current, key, ids);
  } else {
    AppendReplicaIds(state.current, key, ids);
    if (state.target) AppendReplicaIds(*state.target, key, ids);
  }
  std::vector<ClusterNode> nodes = Nodes(*v, ids);
  std::stable_partition(nodes.begin(), nodes.end(),
                        [&](const ClusterNode& node) { return IsHealthy(node.id); });
  // Then the stand-ins: a file written while an owner was down has a copy on
  // one of them until it is handed back, and that copy may be the only one
  // reachable. They come last, so they cost a round trip only when no owner
  // served the read.
  std::vector<std::string> handoff = HandoffOrder(state.current, key, ids);
  if (state.target) {
    std::vector<std::string> exclude = ids;
    exclude.insert(exclude.end(), handoff.begin(), handoff.end());
    for (std::string& id : HandoffOrder(*state.target, key, exclude))
      handoff.push_back(std::move(id));
  }
  std::vector<ClusterNode> stand_ins = Nodes(*v, handoff);
  std::stable_partition(stand_ins.begin(), stand_ins.end(),
                        [&](const ClusterNode& node) { return IsHealthy(node.id); });
  for (ClusterNode& node : stand_ins) nodes.push_back(std::move(node));
  return nodes;
}

std::vector<ClusterNode> Cluster::AllNodes() const {
  std::shared_ptr<const View> v = view();
  std::vector<ClusterNode> nodes;
  for (const auto& [id, node] : v->nodes) nodes.push_back(node);
  return nodes;
}

void Cluster::MarkFailure(std::string_view node_id, std::string_view error) {
  std::lock_guard lock(health_mu_);
  auto it = health_.find(node_id);
  if (it == health_.end()) it = health_.emplace(std::string(node_id), Health{}).first;
  Health& health = it->second;
  const auto now = std::chrono::steady_clock::now();
  if (health.failures == 0) {
    health.failing_since = now;
    health.since = std::chrono::system_clock::now();
    health.down = false;
  }
  health.failures = std::min(health.failures + 1, 30);
  if (!error.empty()) health.last_error = std::string(error);
  auto backoff = options_.min_backoff * (int64_t{1} << std::min(health.failures - 1, 20));
  health.until = now + std::min(backoff, options_.max_backoff);
}

void Cluster::MarkSuccess(std::string_view node_id) {
  std::lock_guard lock(health_mu_);
  auto it = health_.find(node_id);
  if (it == health_.end()) {
    health_.emplace(std::string(node_id), Health{.since = std::chrono::system_clock::now()});
    return;
  }
  if (it->second.failures == 0) return;
  it->second = Health{.since = std::chrono::system_clock::now()};
}

NodeLivenessInfo Cluster::Liveness(std::string_view node_id) const {
  std::lock_guard lock(health_mu_);
  auto it = health_.find(node_id);
  if (it == health_.end()) return {};
  Health& health = it->second;
  if (health.failures == 0) return {.liveness = NodeLiveness::kUp, .since = health.since};
  const auto failing_for = std::chrono::steady_clock::now() - health.failing_since;
  if (failing_for < options_.down_after) {
    return {
        .liveness = NodeLiveness::kSuspect, .since = health.since, .last_error = health.last_error};
  }
  if (!health.down) {
    // Down from the moment it crossed the threshold, not from when asked.
    health.down = true;
    health.since +=
        std::chrono::duration_cast<std::chrono::system_clock::duration>(options_.down_after);
  }
  return {.liveness = NodeLiveness::kDown, .since = health.since, .last_error = health.last_error};
}

void Cluster::ReportDamage(DamageReport report) {
  std::lock_guard lock(damage_mu_);
  if (damage_.size() >= kMaxDamageReports) damage_.pop_front();
  damage_.push_back(std::move(report));
}

std::vector<DamageReport> Cluster::TakeDamageReports() {
  std::lock_guard lock(damage_mu_);
  std::vector<DamageReport> reports(std::make_move_iterator(damage_.begin()),
                                    std::make_move_iterator(damage_.end()));
  damage_.clear();
  return reports;
}

std::string_view NodeLivenessName(NodeLiveness liveness) {
  switch (liveness) {
    case NodeLiveness::kUp:
      return "up";
    case NodeLiveness::kSuspect:
      return "suspect";
    case NodeLiveness::kDown:
      return "down";
  }
  return "unknown";
}

bool Cluster::IsHealthy(std::string_view node_id) const {
  std::lock_guard lock(health_mu_);
  auto it = health_.find(node_id);
  return it == health_.end() || std::chrono::steady_clock::now() >= it->second.until;
}

bool Cluster::Reconnect(const ClusterNode& node, std::chrono::milliseconds timeout) {
  if (!node.channel) return false;
  grpc::experimental::ChannelResetConnectionBackoff(node.channel.get());
  const auto deadline = std::chrono::system_clock::now() + timeout;
  grpc_connectivity_state state = node.channel->GetState(/*try_to_connect=*/true);
  bool attempted = false;
  while (state != GRPC_CHANNEL_READY) {
    // One attempt is enough to know: a node that refuses now is down.
    if (attempted && state == GRPC_CHANNEL_TRANSIENT_FAILURE) return false;
    if (state == GRPC_CHANNEL_CONNECTING) attempted = true;
    if (!node.channel->WaitForStateChange(state, deadline)) return false;
    state = node.channel->GetState(/*try_to_connect=*/true);
  }
  return true;
}

void Cluster::ReconnectAll(std::chrono::milliseconds timeout_per_node) const {
  for (const ClusterNode& node : AllNodes()) Reconnect(node, timeout_per_node);
}

bool Cluster::IsNodeFailure(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kResourceExhausted:
      return true;
    default:
      return false;
  }
}

}  // namespace streamgrid
