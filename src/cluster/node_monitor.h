#pragma once

// The web server's failure detector: probes every storage node with Health on
// a fixed interval and feeds the answers to Cluster::MarkSuccess/MarkFailure,
// which turn them into up / suspect / down (Cluster::Liveness). Announcements
// in etcd add a second signal: a node whose announcement lapses is marked
// suspect at once, without waiting for a probe to time out.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "auth/grpc_auth.h"
#include "cluster/cluster.h"
#include "proto/storage.grpc.pb.h"

namespace streamgrid {

struct NodeMonitorOptions {
  // Time between the starts of two probe rounds.
  std::chrono::milliseconds probe_interval = std::chrono::seconds(1);
  // Deadline of each Health call.
  std::chrono::milliseconds probe_timeout = std::chrono::seconds(2);
  // The ids of the nodes announced in etcd now; null without etcd. An error
  // (etcd not answering) says nothing about the nodes and is ignored.
  std::function<absl::StatusOr<std::vector<std::string>>()> announced;
  // Nodes to probe besides the members (Cluster::AllNodes), as id → address:
  // e.g. nodes taken out of the placement, to tell when they are back. Null:
  // none.
  std::function<std::map<std::string, std::string>()> extra_nodes;
  // How often the hints other nodes hold for each node are counted (only on
  // nodes whose Health says they hold any).
  std::chrono::milliseconds hint_count_interval = std::chrono::seconds(10);
  // Called on the monitor's thread when a node answers with another
  // instance_id than before (it restarted, perhaps on an emptied disk); not
  // on the first answer. Null: nobody is told.
  std::function<void(const std::string& node_id)> on_restart;
  // Token and TLS of the channels to extra nodes (members use the cluster's).
  auth::ClientSecurity security;
};

// What the monitor last learned of one node.
struct NodeReport {
  // The node's last answer to Health (instance id, usage, integrity), if it
  // ever answered.
  std::optional<storage::v1::HealthResponse> health;
  std::chrono::system_clock::time_point answered_at;
  // Probes answered in a row (0 after a failed one).
  int consecutive_successes = 0;
  // Hinted copies other nodes hold for this node, when counted.
  std::optional<uint64_t> hints_pending;
};

// Runs the probes on a thread of its own between Start() and Stop().
// Thread-safe.
class NodeMonitor {
 public:
  // `cluster` must outlive the monitor.
  NodeMonitor(Cluster& cluster, NodeMonitorOptions options = {});
  // Stop().
  ~NodeMonitor();
  NodeMonitor(const NodeMonitor&) = delete;
  NodeMonitor& operator=(const NodeMonitor&) = delete;

  // Starts probing (the first round at once). Once only.
  void Start();
  // Ends the probing: probes in flight are cancelled, and it returns once the
  // thread is gone (at once, or after one hint listing call at worst, which
  // has the probe timeout as its deadline). Idempotent.
  void Stop();

  // One probe round, on the calling thread: every node probed in parallel,
  // its marks and report updated, announcements and hints looked at. For
  // tests and for callers that need fresh marks now.
  void ProbeOnce();

  // What is known of node `id` (nullopt: never probed).
  std::optional<NodeReport> Report(std::string_view id) const;

  // Completed probe rounds.
  uint64_t rounds() const;

 private:
  struct Target {
    std::string id;
    std::shared_ptr<grpc::Channel> channel;
  };
  // The members plus options_.extra_nodes, each with a channel.
  std::vector<Target> Targets();
  void Probe(const std::vector<Target>& targets);
  void CheckAnnouncements();
  void CountHints(const std::vector<Target>& targets);
  void Run();

  Cluster& cluster_;
  const NodeMonitorOptions options_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;                                    // guarded by mu_
  std::map<std::string, NodeReport, std::less<>> reports_;   // guarded by mu_
  uint64_t rounds_ = 0;                                      // guarded by mu_
  std::set<grpc::ClientContext*> in_flight_;                 // guarded by mu_
  std::chrono::steady_clock::time_point next_hint_count_{};  // monitor thread only
  // Announced ids at the last look; nullopt until etcd answered once.
  std::optional<std::set<std::string>> announced_;  // monitor thread only
  // Channels of extra nodes, by address (members use the cluster's).
  std::map<std::string, std::shared_ptr<grpc::Channel>> extra_channels_;  // monitor thread only
  std::mutex round_mu_;                                                   // one round at a time
  std::thread thread_;
};

}  // namespace streamgrid
