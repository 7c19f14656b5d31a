#include "repair/repair_loop.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "storage/storage_client.h"

namespace streamgrid::repair {
namespace {

// Whether a migration is running or waiting to be resumed: repair leaves the
// cluster to it (its copies change the owners repair would compare).
bool MigrationBusy(const ClusterState& state) {
  return state.target || state.previous ||
         (state.migration && state.migration->phase == MigrationPhase::kFailed);
}

}  // namespace

RepairLoop::RepairLoop(Cluster& cluster, MembershipChanges& membership,
                       MigrationCoordinator* coordinator, RepairStats& stats, RepairOptions options)
    : cluster_(cluster),
      membership_(membership),
      coordinator_(coordinator),
      stats_(stats),
      options_(options),
      throttle_(options.bytes_per_second),
      copier_(cluster, throttle_) {
  copier_.set_stray_grace(options.stray_grace);
}

RepairLoop::~RepairLoop() { Stop(); }

void RepairLoop::Start() {
  std::lock_guard lock(mu_);
  if (worker_.joinable()) return;
  stop_ = false;
  next_pass_ = std::chrono::steady_clock::now() + options_.anti_entropy_interval;
  worker_ = std::thread([this] { Run(); });
}

void RepairLoop::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
}

bool RepairLoop::stopping() const {
  std::lock_guard lock(mu_);
  return stop_;
}

bool RepairLoop::SleepFor(std::chrono::milliseconds duration) {
  std::unique_lock lock(mu_);
  return !wake_.wait_for(lock, duration, [&] { return stop_; });
}

void RepairLoop::Run() {
  while (SleepFor(options_.tick)) {
    // Only the migration runner repairs: one server acts on the cluster.
    if (coordinator_ && !coordinator_->TryBecomeRunner()) continue;
    Tick();
  }
}

void RepairLoop::Tick() {
  ProbeNodes();
  ReReplicate();
  std::set<uint32_t> partitions;
  {
    std::lock_guard lock(work_mu_);
    partitions = std::exchange(pending_, {});
  }
  for (DamageReport& report : cluster_.TakeDamageReports()) {
    stats_.damaged_reported.fetch_add(1);
    spdlog::info("repair: {}/{} reported damaged on node {} ({})", report.video_id, report.name,
                 report.node_id, report.reason);
    partitions.insert(Placement::PartitionOfKey(absl::StrCat(report.video_id, "/", report.name)));
  }
  if (!partitions.empty()) {
    absl::Status repaired = RepairPartitions(partitions);
    if (!repaired.ok()) {
      // Kept for the next tick (after the migration, or the next start).
      std::lock_guard lock(work_mu_);
      pending_.insert(partitions.begin(), partitions.end());
      if (absl::IsCancelled(repaired)) return;
    }
  }
  if (options_.anti_entropy_interval.count() > 0 &&
      std::chrono::steady_clock::now() >= next_pass_) {
    absl::Status pass = AntiEntropyPass();
    if (absl::IsCancelled(pass)) return;
    // After a pass refused for a migration, try again a tick later.
    next_pass_ = std::chrono::steady_clock::now() +
                 (pass.ok() ? options_.anti_entropy_interval : options_.tick);
  }
}

storage::StorageClient& RepairLoop::ProbeClient(const std::string& address) {
  std::unique_ptr<storage::StorageClient>& client = probe_clients_[address];
  if (!client) client = cluster_.ClientFor(address, options_.probe_timeout);
  return *client;
}

void RepairLoop::ProbeNodes() {
  std::shared_ptr<const ClusterState> state = cluster_.state();
  std::vector<std::pair<std::string, std::string>> nodes;  // id, address
  for (const ClusterNode& node : cluster_.AllNodes()) nodes.emplace_back(node.id, node.address);
  for (const OutNode& out : state->out) nodes.emplace_back(out.node.id, out.node.address);
  std::set<std::string> members;
  for (const RingNode& node : state->current.nodes()) members.insert(node.id);

  for (const auto& [id, address] : nodes) {
    if (stopping()) return;
    const auto now = std::chrono::steady_clock::now();
    absl::StatusOr<storage::NodeHealth> health = ProbeClient(address).Health();
    Probe& probe = probes_[id];
    const bool member = cluster_.Node(id).has_value();
    if (!health.ok()) {
      if (member) cluster_.MarkFailure(id, std::string(health.status().message()));
      probe.answered = false;
      probe.answers_in_a_row = 0;
      probe.at = now;
      continue;
    }
    cluster_.MarkSuccess(id);  // out nodes too: a put-back node starts up
    // Back after failing, or restarted since the last probe (a new instance
    // id, or its uptime went back): it may have missed writes or lost its
    // disk. Compare its partitions now rather than at the next pass.
    const bool seen_before = probe.at != std::chrono::steady_clock::time_point();
    const bool came_back = seen_before && !probe.answered;
    const bool new_instance = !probe.instance_id.empty() && !health->instance_id.empty() &&
                              health->instance_id != probe.instance_id;
    const bool restarted = new_instance || (seen_before && probe.answered &&
                                            health->uptime_seconds + 1 < probe.uptime_seconds);
    if ((came_back || restarted) && members.contains(id)) {
      spdlog::info("repair: node {} {}; comparing its partitions", id,
                   restarted ? "restarted" : "answers again");
      QueueNodePartitions(id, *state);
    }
    if (new_instance) {
      // The log's cursor belongs to a node instance: a restarted node may
      // have lost its log with its disk (its seq starts again).
      probe.quarantine_seq = 0;
      probe.quarantine_followed = false;
    }
    probe.instance_id = health->instance_id;
    {
      std::lock_guard lock(seen_mu_);
      instances_seen_[id] = health->instance_id;
    }
    if (members.contains(id)) {
      FollowQuarantine(id, address, health->integrity.last_quarantine_seq(), *state, probe);
    }
    probe.answered = true;
    probe.uptime_seconds = health->uptime_seconds;
    probe.at = now;
    ++probe.answers_in_a_row;
  }
}

void RepairLoop::QueueNodePartitions(const std::string& id, const ClusterState& state) {
  std::lock_guard lock(work_mu_);
  for (uint32_t p = 0; p < Placement::kPartitionCount; ++p) {
    for (NodeIndex i : state.current.ReplicasForPartition(p)) {
      if (state.current.node(i).id == id) pending_.insert(p);
    }
  }
}

void RepairLoop::FollowQuarantine(const std::string& id, const std::string& address,
                                  uint64_t last_seq, const ClusterState& state, Probe& probe) {
  // A log that went back with the same instance (it cannot, but a wiped
  // log would) is read again from its start.
  if (last_seq < probe.quarantine_seq) probe.quarantine_seq = 0;
  if (last_seq == probe.quarantine_seq) {
    probe.quarantine_followed = true;
    return;
  }
  // Bounded work per tick; the rest is read at the next one.
  constexpr int kMaxPagesPerTick = 20;
  std::set<uint32_t> partitions;
  for (int page_number = 0; page_number < kMaxPagesPerTick; ++page_number) {
    if (stopping()) break;
    absl::StatusOr<storage::QuarantinePage> page =
        ProbeClient(address).ListQuarantined(probe.quarantine_seq);
    if (!page.ok()) {
      // Retried at the next tick from the same place.
      spdlog::warn("repair: cannot list node {}'s quarantined copies: {}", id,
                   std::string(page.status().message()));
      break;
    }
    // Entries after the cursor the node no longer keeps: which keys they
    // named is unknown, so compare all of the node's partitions. At the
    // first read of an instance's log there is nothing missed to make up
    // (a restart compares the node anyway; older entries are the periodic
    // pass's).
    const bool dropped = page->oldest_kept_seq == 0
                             ? last_seq > probe.quarantine_seq
                             : page->oldest_kept_seq > probe.quarantine_seq + 1;
    if (page_number == 0 && dropped && probe.quarantine_followed) {
      spdlog::warn(
          "repair: node {} dropped quarantine entries after {} (oldest kept {}); comparing all "
          "its partitions",
          id, probe.quarantine_seq, page->oldest_kept_seq);
      QueueNodePartitions(id, state);
    }
    for (const storage::v1::QuarantinedCopy& copy : page->copies) {
      probe.quarantine_seq = std::max(probe.quarantine_seq, copy.seq());
      const std::string key = absl::StrCat(copy.video_id(), "/", copy.name());
      const uint32_t partition = Placement::PartitionOfKey(key);
      bool owner = false;
      for (NodeIndex i : state.current.ReplicasForPartition(partition)) {
        owner = owner || state.current.node(i).id == id;
      }
      if (!owner) continue;  // no longer its copy to hold
      stats_.damaged_reported.fetch_add(1);
      spdlog::info("repair: {} quarantined on node {} (found by {}, seq {})", key, id,
                   copy.found_by(), copy.seq());
      partitions.insert(partition);
    }
    if (!page->more || page->copies.empty()) {
      // Everything the node had up to now is read.
      probe.quarantine_seq = std::max(probe.quarantine_seq, page->copies.empty() ? last_seq : 0);
      probe.quarantine_followed = true;
      break;
    }
  }
  if (!partitions.empty()) {
    std::lock_guard lock(work_mu_);
    pending_.insert(partitions.begin(), partitions.end());
  }
}

void RepairLoop::ReReplicate() {
  std::shared_ptr<const ClusterState> state = cluster_.state();
  if (MigrationBusy(*state)) return;
  auto refused = [&](const std::string& what, const absl::Status& status) {
    const std::string message = absl::StrCat(what, ": ", status.message());
    if (message != last_refusal_) {
      spdlog::warn("repair: cannot {}", message);
      stats_.SetLastError(message);
    }
    last_refusal_ = message;
  };
  // Out nodes that answer again go back first: they bring their disks.
  for (const OutNode& out : state->out) {
    if (probes_[out.node.id].answers_in_a_row < options_.up_probes_to_put_back) continue;
    spdlog::info("repair: out node {} answers again; putting it back", out.node.id);
    absl::StatusOr<MigrationProgress> back = membership_.PutBack(out.node.id);
    if (back.ok()) return;  // one migration at a time
    refused(absl::StrCat("put back node ", out.node.id), back.status());
  }
  if (options_.repair_after.count() <= 0) return;
  const auto now = std::chrono::system_clock::now();
  for (const RingNode& node : state->current.nodes()) {
    const NodeLivenessInfo liveness = cluster_.Liveness(node.id);
    if (liveness.liveness != NodeLiveness::kDown || now - liveness.since < options_.repair_after) {
      continue;
    }
    spdlog::warn(
        "repair: node {} has been down since {} ms ago ({}); re-replicating its share", node.id,
        std::chrono::duration_cast<std::chrono::milliseconds>(now - liveness.since).count(),
        liveness.last_error);
    absl::StatusOr<MigrationProgress> out = membership_.TakeOut(node.id);
    if (out.ok()) return;
    refused(absl::StrCat("take out node ", node.id), out.status());
  }
}

std::string RepairLoop::InstanceSeen(std::string_view id) const {
  std::lock_guard lock(seen_mu_);
  auto it = instances_seen_.find(id);
  return it == instances_seen_.end() ? std::string() : it->second;
}

absl::Status RepairLoop::AntiEntropyPass() {
  std::set<uint32_t> all;
  for (uint32_t p = 0; p < Placement::kPartitionCount; ++p) all.insert(p);
  absl::Status status = RepairPartitions(all);
  if (!status.ok()) return status;
  stats_.anti_entropy_passes.fetch_add(1);
  stats_.last_anti_entropy_unix_ms.store(NowMillis());
  return absl::OkStatus();
}

absl::Status RepairLoop::RepairPartitions(const std::set<uint32_t>& partitions) {
  std::lock_guard lock(work_mu_);
  std::vector<uint32_t> remaining(partitions.begin(), partitions.end());
  size_t next = 0;
  while (next < remaining.size()) {
    if (stopping()) return absl::CancelledError("stopping");
    std::shared_ptr<const ClusterState> state = cluster_.state();
    if (MigrationBusy(*state)) {
      return absl::FailedPreconditionError("a migration is in progress; repair waits for it");
    }
    std::vector<PartitionCopy> batch;
    for (; next < remaining.size() && batch.size() < options_.batch_partitions; ++next) {
      PartitionCopy copy{.partition = remaining[next]};
      for (NodeIndex i : state->current.ReplicasForPartition(remaining[next])) {
        copy.sources.push_back(state->current.node(i).id);
      }
      copy.destinations = copy.sources;
      // Every other member's copies of it are strays (left by a cleanup that
      // skipped a dead node, or by an out node put back).
      for (const RingNode& member : state->current.nodes()) {
        if (std::find(copy.sources.begin(), copy.sources.end(), member.id) == copy.sources.end()) {
          copy.surplus.push_back(member.id);
        }
      }
      batch.push_back(std::move(copy));
    }
    absl::StatusOr<CopyOutcome> outcome =
        copier_.Copy(batch, [this](std::chrono::milliseconds wait) { return SleepFor(wait); });
    if (!outcome.ok()) return outcome.status();
    stats_.files_repaired.fetch_add(outcome->files_copied);
    stats_.bytes_repaired.fetch_add(outcome->bytes_copied);
    stats_.files_unrecoverable.fetch_add(outcome->unrecoverable.size());
    if (outcome->strays_deleted > 0) {
      spdlog::info("repair: deleted {} surplus copies on nodes that do not own them",
                   outcome->strays_deleted);
    }
    if (outcome->files_copied > 0) {
      spdlog::info("repair: restored {} copies ({} bytes)", outcome->files_copied,
                   outcome->bytes_copied);
    }
    if (!outcome->complete()) {
      // Down nodes are the re-replication's business; report the rest.
      const std::string what = outcome->Describe();
      spdlog::warn("repair: incomplete: {}", what);
      stats_.SetLastError(what);
    }
  }
  return absl::OkStatus();
}

}  // namespace streamgrid::repair
