#include "cluster/node_monitor.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "storage/storage_client.h"

namespace streamgrid {
namespace {

namespace v1 = storage::v1;

// Hint listings are paged; a node holding more than this many pages of hints
// is counted as far as that (the figure is for people, not for repair).
constexpr int kMaxHintPages = 50;
constexpr uint32_t kHintPageSize = 1000;

std::chrono::system_clock::time_point DeadlineAfter(std::chrono::milliseconds timeout) {
  return std::chrono::system_clock::now() + timeout;
}

}  // namespace

NodeMonitor::NodeMonitor(Cluster& cluster, NodeMonitorOptions options)
    : cluster_(cluster), options_(std::move(options)) {}

NodeMonitor::~NodeMonitor() { Stop(); }

void NodeMonitor::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Run(); });
}

void NodeMonitor::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    // The round in progress ends as soon as its calls do.
    for (grpc::ClientContext* context : in_flight_) context->TryCancel();
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void NodeMonitor::Run() {
  while (true) {
    const auto started = std::chrono::steady_clock::now();
    ProbeOnce();
    std::unique_lock lock(mu_);
    // Rounds start on a fixed beat, however long the last one took.
    wake_.wait_until(lock, started + options_.probe_interval, [this] { return stopping_; });
    if (stopping_) return;
  }
}

std::vector<NodeMonitor::Target> NodeMonitor::Targets() {
  std::vector<Target> targets;
  for (const ClusterNode& node : cluster_.AllNodes()) {
    if (node.channel) targets.push_back({node.id, node.channel});
  }
  if (options_.extra_nodes) {
    std::map<std::string, std::shared_ptr<grpc::Channel>> channels;
    for (const auto& [id, address] : options_.extra_nodes()) {
      if (std::any_of(targets.begin(), targets.end(),
                      [&](const Target& t) { return t.id == id; })) {
        continue;
      }
      // Kept across rounds: a new channel per probe would connect anew each
      // time and never show gRPC's view of the connection.
      auto it = extra_channels_.find(address);
      std::shared_ptr<grpc::Channel> channel =
          it != extra_channels_.end()
              ? it->second
              : storage::StorageClient::MakeChannel(address, options_.security);
      channels[address] = channel;
      targets.push_back({id, std::move(channel)});
    }
    extra_channels_ = std::move(channels);  // drops those of nodes gone
  }
  return targets;
}

void NodeMonitor::ProbeOnce() {
  std::lock_guard round_lock(round_mu_);
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
  }
  const std::vector<Target> targets = Targets();
  Probe(targets);
  // After the probes: a lapse seen now leaves the node suspect at least until
  // the next round, even if its process still answers.
  CheckAnnouncements();
  if (std::chrono::steady_clock::now() >= next_hint_count_) {
    CountHints(targets);
    next_hint_count_ = std::chrono::steady_clock::now() + options_.hint_count_interval;
  }
  std::lock_guard lock(mu_);
  if (!stopping_) ++rounds_;  // a round cut short by Stop() is not complete
}

void NodeMonitor::Probe(const std::vector<Target>& targets) {
  struct Call {
    std::unique_ptr<v1::StorageService::Stub> stub;
    grpc::ClientContext context;
    v1::HealthRequest request;
    v1::HealthResponse response;
    grpc::Status status;
  };
  std::vector<std::unique_ptr<Call>> calls;
  std::mutex done_mu;
  std::condition_variable done;
  size_t pending = 0;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    for (const Target& target : targets) {
      auto call = std::make_unique<Call>();
      call->stub = v1::StorageService::NewStub(target.channel);
      call->context.set_deadline(DeadlineAfter(options_.probe_timeout));
      in_flight_.insert(&call->context);
      calls.push_back(std::move(call));
    }
    pending = calls.size();
  }
  // All at once: a node that does not answer costs the round one deadline,
  // not one per node.
  for (auto& call : calls) {
    Call* c = call.get();
    c->stub->async()->Health(&c->context, &c->request, &c->response,
                             [c, &done_mu, &done, &pending](grpc::Status status) {
                               c->status = std::move(status);
                               std::lock_guard lock(done_mu);
                               if (--pending == 0) done.notify_all();
                             });
  }
  {
    std::unique_lock lock(done_mu);
    done.wait(lock, [&] { return pending == 0; });
  }
  std::vector<std::string> restarted;
  {
    std::lock_guard lock(mu_);
    for (auto& call : calls) in_flight_.erase(&call->context);
    // Calls cancelled by Stop() say nothing about the nodes.
    if (stopping_) return;
    const auto now = std::chrono::system_clock::now();
    for (size_t i = 0; i < calls.size(); ++i) {
      Call& call = *calls[i];
      const std::string& id = targets[i].id;
      NodeReport& report = reports_[id];
      if (call.status.ok()) {
        cluster_.MarkSuccess(id);
        const std::string& instance = call.response.instance_id();
        if (report.health && !report.health->instance_id().empty() && !instance.empty() &&
            report.health->instance_id() != instance) {
          restarted.push_back(id);
        }
        report.health = std::move(call.response);
        report.answered_at = now;
        report.consecutive_successes = std::min(report.consecutive_successes + 1, 1'000'000);
      } else {
        // Any error counts: a node that refuses our token serves nothing either.
        cluster_.MarkFailure(id, absl::StrCat("health check: ", call.status.error_message()));
        report.consecutive_successes = 0;
      }
    }
  }
  if (options_.on_restart) {
    for (const std::string& id : restarted) options_.on_restart(id);
  }
}

void NodeMonitor::CheckAnnouncements() {
  if (!options_.announced) return;
  absl::StatusOr<std::vector<std::string>> listed = options_.announced();
  if (!listed.ok()) return;  // etcd says nothing now; the probes still do
  std::set<std::string> now(listed->begin(), listed->end());
  if (announced_) {
    for (const std::string& id : *announced_) {
      // Only members matter; an available node that went is just gone.
      if (!now.contains(id) && cluster_.Node(id)) {
        cluster_.MarkFailure(id, "its announcement in etcd lapsed");
      }
    }
  }
  announced_ = std::move(now);
}

void NodeMonitor::CountHints(const std::vector<Target>& targets) {
  std::map<std::string, uint64_t> pending;
  bool complete = true;
  for (const Target& target : targets) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      auto it = reports_.find(target.id);
      // Only nodes that said they hold hints are asked for them.
      if (it == reports_.end() || !it->second.health || it->second.consecutive_successes == 0) {
        complete = false;
        continue;
      }
      if (it->second.health->integrity().hints() == 0) continue;
    }
    auto stub = v1::StorageService::NewStub(target.channel);
    std::string token;
    for (int page = 0; page < kMaxHintPages; ++page) {
      {
        std::lock_guard lock(mu_);
        if (stopping_) return;
      }
      grpc::ClientContext context;
      context.set_deadline(DeadlineAfter(options_.probe_timeout));
      v1::ListHintsRequest request;
      request.set_page_token(token);
      request.set_page_size(kHintPageSize);
      v1::ListHintsResponse response;
      grpc::Status status = stub->ListHints(&context, request, &response);
      if (!status.ok()) {
        complete = false;
        break;
      }
      for (const v1::HintInfo& hint : response.hints()) ++pending[hint.intended_node()];
      token = response.next_page_token();
      if (token.empty()) break;
    }
  }
  std::lock_guard lock(mu_);
  for (auto& [id, report] : reports_) {
    auto it = pending.find(id);
    if (it != pending.end()) {
      // A partial count (a holder did not answer) is still a lower bound.
      report.hints_pending = it->second;
    } else if (complete) {
      report.hints_pending = 0;
    }
  }
}

std::optional<NodeReport> NodeMonitor::Report(std::string_view id) const {
  std::lock_guard lock(mu_);
  auto it = reports_.find(id);
  if (it == reports_.end()) return std::nullopt;
  return it->second;
}

uint64_t NodeMonitor::rounds() const {
  std::lock_guard lock(mu_);
  return rounds_;
}

}  // namespace streamgrid
