#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "cluster/cluster_state.h"
#include "storage/storage_client.h"

namespace streamgrid {

struct ClusterOptions {
  // Deadlines, chunk size, cluster token and TLS of every node client.
  storage::StorageClientOptions client;
  // After a failure a node is tried last for this long, doubling with each
  // further failure up to max_backoff; any success clears it.
  std::chrono::milliseconds min_backoff = std::chrono::milliseconds(500);
  std::chrono::milliseconds max_backoff = std::chrono::seconds(30);
  // A node failing calls (with no success since) for this long is down;
  // before that it is suspect.
  std::chrono::milliseconds down_after = std::chrono::seconds(10);
  // When set, the channel to each node also passes through the interceptors
  // this makes for it, given the node's id (metrics of the calls per node).
  std::function<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>(
      const std::string& node_id)>
      node_interceptor;
};

// What the failure detector makes of a node (see Cluster::Liveness).
enum class NodeLiveness { kUp, kSuspect, kDown };

// "up", "suspect", "down".
std::string_view NodeLivenessName(NodeLiveness liveness);

struct NodeLivenessInfo {
  NodeLiveness liveness = NodeLiveness::kUp;
  // When the node entered that state; the epoch when it was never seen.
  std::chrono::system_clock::time_point since;
  // The last failure's description, while not up.
  std::string last_error;
};

// A copy found damaged or missing where it should be, for repair to restore.
struct DamageReport {
  std::string node_id;
  std::string video_id;
  std::string name;
  std::string reason;
};

// A node a call may go to: its id and a client of it.
struct ClusterNode {
  std::string id;
  std::string address;
  std::shared_ptr<storage::StorageClient> client;
  std::shared_ptr<grpc::Channel> channel;  // the client's
};

// The live view of the storage cluster that the data path reads: the current
// ClusterState, one client (one reused channel) per node, and per-node health
// marks. Readers take a snapshot with one atomic load and never block Update().
// Thread-safe.
class Cluster {
 public:
  explicit Cluster(ClusterState state, ClusterOptions options = {});

  // The state in force; a snapshot that later updates do not change.
  std::shared_ptr<const ClusterState> state() const { return view()->state; }

  // Puts `state` in force: clients are created for nodes that appeared (or
  // moved to another address) and dropped for nodes that left; calls already
  // running keep the clients they hold.
  void Update(ClusterState state);

  // Update(state) if its revision is higher than the state in force's;
  // returns whether it was. For states read from a store shared with other
  // processes, which may arrive out of order.
  bool UpdateIfNewer(ClusterState state);

  // The nodes that must store `video_id/name`: its current replicas, plus its
  // target replicas while a migration runs (primary of each first).
  std::vector<ClusterNode> WriteNodes(std::string_view video_id, std::string_view name) const;

  // A write's nodes (as WriteNodes) and a token that marks the write as open
  // under the state they came from, until the token is destroyed.
  struct WritePlan {
    std::vector<ClusterNode> nodes;
    std::shared_ptr<const void> token;
    // Every other node, in the key's handoff order (HandoffOrder): the nodes
    // that may stand in for owners that are down (sloppy quorum).
    std::vector<ClusterNode> stand_ins;
  };
  WritePlan PlanWrite(std::string_view video_id, std::string_view name) const;

  // The key's placement order past its owners: the owners of the following
  // partitions in partition order (wrapping around), each node once, leaving
  // out `exclude`; every node of `placement` not excluded appears once. The
  // first healthy ones stand in for the key's owners that are down.
  static std::vector<std::string> HandoffOrder(const Placement& placement, std::string_view key,
                                               const std::vector<std::string>& exclude);

  // Waits until every write planned under an earlier state than the one in
  // force is over (its token destroyed), or `timeout` passes; true if they
  // are. A migration calls this after publishing its target so that no write
  // can still land on the old owners only.
  bool WaitForEarlierWrites(std::chrono::milliseconds timeout) const;

  // While writes are fenced, new writes are refused: WriteFence() is
  // UNAVAILABLE with `reason`, and the content service checks it before it
  // opens a writer. For a server that cannot take part in other servers'
  // migrations right now (it lost its registration in etcd). Writes already
  // open are not affected.
  void FenceWrites(std::string reason);
  void UnfenceWrites();
  // OK unless writes are fenced.
  absl::Status WriteFence() const;

  // The nodes to read `video_id/name` from, in the order to try them: during a
  // migration, target replicas first if the key's partition was migrated,
  // current ones first otherwise; within that order, nodes that failed
  // recently go last. Then every other node in the key's handoff order (the
  // stand-ins that may hold a copy written while an owner was down), healthy
  // ones first.
  std::vector<ClusterNode> ReadNodes(std::string_view video_id, std::string_view name) const;

  // A client of the node at `address` (one outside the view: being added,
  // removed, or only announced) on a channel of its own, with the cluster's
  // token and TLS and `call_timeout` as its calls' deadline.
  std::unique_ptr<storage::StorageClient> ClientFor(const std::string& address,
                                                    std::chrono::milliseconds call_timeout) const;

  // The node `id` of the current or target placement, if there is one.
  std::optional<ClusterNode> Node(std::string_view id) const;

  // Every node of the current and target placements, sorted by id.
  std::vector<ClusterNode> AllNodes() const;

  // Health marks: a failure (the node did not answer) puts it in back-off and
  // makes it suspect, then down once it has failed for options.down_after with
  // no success; a success clears that and makes it up.
  void MarkFailure(std::string_view node_id, std::string_view error = {});
  void MarkSuccess(std::string_view node_id);
  // False while the node is in back-off after a failure.
  bool IsHealthy(std::string_view node_id) const;
  // The node's state as the marks above left it; up with `since` at the epoch
  // for a node never marked.
  NodeLivenessInfo Liveness(std::string_view node_id) const;

  // Damaged copies found by reads (or anyone else), queued for repair. Keeps
  // the most recent kMaxDamageReports; older ones are dropped (anti-entropy
  // still finds those copies).
  static constexpr size_t kMaxDamageReports = 10'000;
  void ReportDamage(DamageReport report);
  // Takes every queued report, oldest first.
  std::vector<DamageReport> TakeDamageReports();

  // Asks the node's channel to connect at once (skipping gRPC's reconnect
  // back-off) and waits up to `timeout` for it; true if it is connected. For a
  // call that must reach this very node (a replica of a write) and found the
  // channel still backing off from an earlier outage.
  static bool Reconnect(const ClusterNode& node, std::chrono::milliseconds timeout);

  // Reconnect() for every node, one after another; for a caller about to retry
  // work that failed because some node was away.
  void ReconnectAll(std::chrono::milliseconds timeout_per_node) const;

  // True for errors that mean the node did not answer (as opposed to an answer
  // such as NOT_FOUND): the cases to mark a failure and try another node.
  static bool IsNodeFailure(const absl::Status& status);

 private:
  struct View {
    std::shared_ptr<const ClusterState> state;
    std::map<std::string, ClusterNode, std::less<>> nodes;  // by id
    // Shared by the tokens of writes planned under this view; expires when
    // the view is replaced and its writes are over.
    std::shared_ptr<const int> writes = std::make_shared<const int>(0);
  };
  struct Health {
    int failures = 0;  // consecutive; 0 while up
    std::chrono::steady_clock::time_point until;
    std::chrono::steady_clock::time_point failing_since;
    std::chrono::system_clock::time_point since;  // of the current state
    bool down = false;                            // reported down already
    std::string last_error;
  };

  std::shared_ptr<const View> view() const { return view_.load(std::memory_order_acquire); }
  void UpdateLocked(ClusterState state);  // update_mu_ held
  // `ids` (deduplicated, order kept) as nodes of `view`.
  std::vector<ClusterNode> Nodes(const View& view, const std::vector<std::string>& ids) const;

  const ClusterOptions options_;
  std::mutex update_mu_;  // serializes Update()
  std::atomic<std::shared_ptr<const View>> view_;
  // The write markers of replaced views, pruned as they expire.
  mutable std::mutex retired_mu_;
  mutable std::vector<std::weak_ptr<const int>> retired_writes_;  // guarded by retired_mu_
  mutable std::mutex fence_mu_;
  std::optional<std::string> fence_;  // guarded by fence_mu_; set while fenced
  mutable std::mutex health_mu_;
  mutable std::map<std::string, Health, std::less<>> health_;  // guarded by health_mu_
  mutable std::mutex damage_mu_;
  std::deque<DamageReport> damage_;  // guarded by damage_mu_
};

}  // namespace streamgrid
