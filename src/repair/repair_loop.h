#pragma once

// The web server's background repair of the storage cluster: automatic
// re-replication of nodes down for too long, anti-entropy between each
// partition's owners, and prompt repair of copies reported damaged.
//
// Only the migration runner (MigrationCoordinator::TryBecomeRunner) acts, so
// with several web servers one of them repairs. Every tick (1 s) it
//  - probes every member with Health: a node that answers again after
//    failing, or restarted (a new Health.instance_id, or its uptime went
//    backwards; perhaps on an emptied disk), gets its partitions compared and
//    refilled at once;
//  - follows each node's quarantine log: when Health.integrity's
//    last_quarantine_seq grew, pages through ListQuarantined after the last
//    entry seen from that node instance and repairs each listed key's
//    partition at once if the node still owns the key (counted as
//    damaged_reported). The cursor restarts at 0 with a new instance (and at
//    the first sight of a node: the kept entries are replayed, which is
//    idempotent); if the node dropped entries the loop had not seen yet
//    (oldest_kept_seq), all of the node's partitions are compared instead;
//  - takes out a member the failure detector has had down for longer than
//    `repair_after` (MembershipChanges::TakeOut: its share migrates from the surviving
//    replicas), and puts an out node back once it has answered
//    `up_probes_to_put_back` probes in a row (MembershipChanges::PutBack: that
//    migration's cleanup removes the interim copies). One migration at a time:
//    nothing is started while any migration runs or waits to be resumed, so
//    an operator's change is never overridden;
//  - drains Cluster::TakeDamageReports() and repairs those keys' partitions;
//  - every `anti_entropy_interval`, compares all partitions, a batch at a
//    time: the owners' listings (name + SHA-256), and whatever an owner lacks
//    or holds in another version is copied from a good replica (the version
//    most owners hold; see PartitionCopier), throttled; and a copy on a member
//    that does not own the file (a stray) is deleted once every owner holds
//    the good version and the stray is older than `stray_grace`.
// Anti-entropy and damage repair pause while a migration runs: the migration
// itself copies to the owners it changes.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "cluster/cluster.h"
#include "migration/membership_changes.h"
#include "migration/migration_coordinator.h"
#include "migration/partition_copier.h"
#include "migration/throttle.h"
#include "repair/repair_stats.h"

namespace streamgrid::repair {

struct RepairOptions {
  // A member down (Cluster::Liveness) this long is taken out; 0 never.
  std::chrono::milliseconds repair_after = std::chrono::minutes(10);
  // Between full anti-entropy passes; 0 for none (restarts and damage
  // reports are still repaired).
  std::chrono::milliseconds anti_entropy_interval = std::chrono::minutes(10);
  // Repair copies' bandwidth; 0 for no limit.
  uint64_t bytes_per_second = 0;
  // How often the loop probes nodes and looks for work.
  std::chrono::milliseconds tick = std::chrono::seconds(1);
  // Deadline of each Health probe.
  std::chrono::milliseconds probe_timeout = std::chrono::seconds(2);
  // Partitions compared per anti-entropy step.
  uint32_t batch_partitions = 256;
  // Surplus copies (on members that do not own them) younger than this are
  // left by anti-entropy: a write or a hint hand-back may still need them.
  std::chrono::milliseconds stray_grace = PartitionCopier::kDefaultStrayGrace;
  // Consecutive answered probes before an out node is put back.
  int up_probes_to_put_back = 2;
};

// Thread-safe.
class RepairLoop {
 public:
  // `cluster`, `membership` and `stats` must outlive the loop; `coordinator`
  // too when given (null: this server is the only one, always the runner).
  RepairLoop(Cluster& cluster, MembershipChanges& membership, MigrationCoordinator* coordinator,
             RepairStats& stats, RepairOptions options = {});
  ~RepairLoop();  // Stop()s

  // Starts the background thread; the first anti-entropy pass comes one
  // interval after the start (restarted nodes and damage are repaired at once).
  void Start();
  // Stops within about a chunk's transfer or a probe's deadline.
  void Stop();

  // One full anti-entropy pass now, on the caller's thread (for tests and for
  // the loop). FAILED_PRECONDITION while a migration runs, CANCELLED on
  // Stop(); otherwise OK even if some copies failed (counted and recorded as
  // the stats' last error).
  absl::Status AntiEntropyPass();

  // The Health.instance_id the loop last saw node `id` answer with; empty
  // before its first answer. Lets a caller (a test) know the loop has seen a
  // node before changing it.
  std::string InstanceSeen(std::string_view id) const;

 private:
  struct Probe {
    bool answered = false;
    int64_t uptime_seconds = 0;
    std::chrono::steady_clock::time_point at;
    int answers_in_a_row = 0;
    // The node process answering (Health.instance_id) and the last entry of
    // its quarantine log repaired (0: none yet, replay what it keeps).
    std::string instance_id;
    uint64_t quarantine_seq = 0;
    // False until the log of this instance has been read once.
    bool quarantine_followed = false;
  };

  void Run();
  void Tick();
  // Health of every member and out node; queues the partitions of nodes that
  // came back or restarted.
  void ProbeNodes();
  // Reads node `id`'s quarantine log past `probe.quarantine_seq` when
  // `last_seq` is beyond it, and queues the partitions to repair.
  void FollowQuarantine(const std::string& id, const std::string& address, uint64_t last_seq,
                        const ClusterState& state, Probe& probe);
  // Queues every partition `id` owns in `state` for repair.
  void QueueNodePartitions(const std::string& id, const ClusterState& state);
  // Takes out members down too long; puts back out nodes that answer.
  void ReReplicate();
  // Compares and refills `partitions` on their current owners. CANCELLED on
  // Stop(), FAILED_PRECONDITION while a migration runs.
  absl::Status RepairPartitions(const std::set<uint32_t>& partitions);
  // A client with the probe deadline for `address`, reused across ticks.
  storage::StorageClient& ProbeClient(const std::string& address);
  bool SleepFor(std::chrono::milliseconds duration);
  bool stopping() const;

  Cluster& cluster_;
  MembershipChanges& membership_;
  MigrationCoordinator* const coordinator_;
  RepairStats& stats_;
  const RepairOptions options_;
  Throttle throttle_;

  // Worker-thread (or AntiEntropyPass caller) state.
  std::mutex work_mu_;  // one repair at a time
  PartitionCopier copier_;
  std::map<std::string, Probe> probes_;                                           // by node id
  std::map<std::string, std::unique_ptr<storage::StorageClient>> probe_clients_;  // by address
  std::set<uint32_t> pending_;  // partitions to repair at once
  std::string last_refusal_;    // the last take-out/put-back refusal logged
  std::chrono::steady_clock::time_point next_pass_;

  mutable std::mutex seen_mu_;
  std::map<std::string, std::string, std::less<>> instances_seen_;  // guarded by seen_mu_

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;  // guarded by mu_
  std::thread worker_;
};

}  // namespace streamgrid::repair
