#pragma once

// Membership changes of the storage cluster and the data migration each one
// starts (copy before flip).
//
// A change computes the new placement and publishes it as the cluster state's
// target: from then on writes go to old and new owners and reads fall back
// from one to the other. The migrator waits for writes planned before that to
// finish, then copies, partition batch by partition batch, every file whose
// partition gains an owner, from a current owner to the new one (streamed in
// chunks; the receiving node checks the SHA-256 before it commits), and
// records each batch in the persisted state. When every moved partition is
// copied, the target becomes the placement in force (the flip), and the
// copies that nodes no longer own are deleted. Progress is persisted, so a
// restarted web server resumes where its predecessor stopped.
//
// The migrator's three jobs live apart: membership changes (planning and
// publishing them: membership_changes.cc), running a migration (the worker,
// its steps, the flip and the cleanup: migrator.cc) and copying partitions
// from any live replica (PartitionCopier, which repair reuses). Dead nodes do
// not wedge a migration: copies come from whichever replica answers, the
// cleanup leaves a dead node's surplus copies, and a step that cannot finish
// fails naming the partitions without a live replica and their owners.
//
// With several web servers, each has a Migrator: any of them starts a change,
// and the one its MigrationCoordinator makes the runner carries it out; the
// others follow its progress through the shared cluster state.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cluster/cluster.h"
#include "cluster/cluster_state.h"
#include "cluster/cluster_state_store.h"
#include "migration/migration_coordinator.h"
#include "migration/partition_copier.h"
#include "migration/throttle.h"
#include "storage/stored_file.h"

namespace streamgrid {

struct MigratorOptions {
  // Partitions copied (and recorded) per step.
  uint32_t batch_partitions = 64;
  // Copy bandwidth over all copies; 0 for no limit.
  uint64_t max_bytes_per_second = 0;
  // A failing step is retried this many times in all, with exponential
  // back-off from `retry_backoff`, before the migration stops as failed.
  int max_attempts = 5;
  std::chrono::milliseconds retry_backoff = std::chrono::seconds(1);
  // How long to wait for writes planned before a change to finish; they have
  // their own deadlines, so this only bounds a wait that should be short.
  std::chrono::milliseconds write_drain_timeout = std::chrono::minutes(11);
  // Deadline of the health check of a node being added.
  std::chrono::milliseconds probe_timeout = std::chrono::seconds(5);
  // How often an idle worker looks at the state in force, for migrations
  // started or resumed by other web servers, or left by a runner that died.
  std::chrono::milliseconds idle_poll = std::chrono::seconds(1);
};

// A snapshot of a migration, for the admin API.
struct MigrationProgress {
  MigrationRecord record;
  uint32_t partitions_done = 0;
};

// Runs membership changes and their migrations. Thread-safe.
class Migrator {
 public:
  // `cluster`, `store` and `coordinator` must outlive the migrator; `cluster`
  // holds the state last loaded from `store`. Without a coordinator the
  // migrator takes this server to be the only one writing to the cluster
  // (LocalMigrationCoordinator).
  Migrator(Cluster& cluster, ClusterStateStore& store, MigratorOptions options = {},
           MigrationCoordinator* coordinator = nullptr);
  ~Migrator();  // Stop()s

  // Starts the background worker; it resumes a migration the stored state
  // shows in progress (copying or cleaning, not failed).
  void Start();
  // Stops the worker within about a chunk's transfer; progress made so far is
  // persisted and resumes on the next Start (here or in another process).
  void Stop();

  // Adds `node` (id defaulting to its address, weight to 1) and starts
  // migrating to it. INVALID_ARGUMENT (bad address or weight), ALREADY_EXISTS
  // (id or address taken), UNAVAILABLE (the node does not answer a health
  // check), FAILED_PRECONDITION (a migration is in progress), ABORTED (the
  // stored state changed meanwhile: try again).
  absl::StatusOr<MigrationProgress> AddNode(RingNode node);

  // Removes the node with id or address `node` and starts migrating its files
  // away. NOT_FOUND, FAILED_PRECONDITION (fewer than R nodes would remain, or
  // a migration is in progress), ABORTED as in AddNode.
  absl::StatusOr<MigrationProgress> RemoveNode(std::string_view node);

  // Takes the member `node` (id or address), down for too long, out of the
  // placement: it is kept in ClusterState::out and its share migrates to the
  // other nodes from the surviving replicas. Errors as RemoveNode.
  absl::StatusOr<MigrationProgress> TakeOut(std::string_view node);

  // Puts the out node `node` (id or address) back: AddNode with its id,
  // address and weight (so it must answer a health check). NOT_FOUND if it is
  // not out; otherwise errors as AddNode. An operator's AddNode of an out
  // node's id or address does the same; an operator's RemoveNode of it
  // forgets it.
  absl::StatusOr<MigrationProgress> PutBack(std::string_view node);

  // Restarts a migration that stopped as failed. FAILED_PRECONDITION when
  // there is none.
  absl::StatusOr<MigrationProgress> Resume();

  // The migration in progress or the last one; nullopt if there never was one.
  std::optional<MigrationProgress> Progress() const;

  // Waits until the migration to placement version `to_version` is done or
  // failed, `deadline` passes or `cancelled` returns true (polled); returns its
  // progress then (DEADLINE_EXCEEDED / CANCELLED when it was still running).
  absl::StatusOr<MigrationProgress> WaitUntilOver(uint64_t to_version,
                                                  std::chrono::system_clock::time_point deadline,
                                                  const std::function<bool()>& cancelled);

 private:
  // RemoveNode (take_out false) or TakeOut.
  absl::StatusOr<MigrationProgress> RemoveMember(std::string_view node, bool take_out);
  // Publishes `target` as a new migration described by `description`.
  absl::StatusOr<MigrationProgress> Begin(const ClusterState& seen, Placement target,
                                          std::string description);
  // Saves `state` over the revision the cluster holds and puts it in force.
  absl::Status Publish(ClusterState state);

  // OK if no migration is running or waiting to be resumed.
  absl::Status CheckIdle(const ClusterState& state) const;
  void Run();
  // Waits for writes planned, on any web server, under states older than
  // `state` to end (they may have missed the target's owners).
  absl::Status DrainEarlierWrites(const ClusterState& state);
  // Calls `each` for every file of `partitions` on `node`, page by page.
  absl::Status ListPartitions(const ClusterNode& node, std::vector<uint32_t> partitions,
                              const std::function<void(storage::StoredFile)>& each);
  // Moves the counts not yet persisted into `record`.
  void TakeCounts(MigrationRecord& record);
  // Persists those counts (when stopping mid-step).
  void SaveCounts();
  // One step of the migration `state` describes: a batch of partitions copied,
  // the flip, or the cleanup. Returns false when there is nothing left to do.
  absl::StatusOr<bool> Step(const ClusterState& state);
  absl::StatusOr<bool> CopyBatch(const ClusterState& state);
  absl::Status Flip(const ClusterState& state);
  absl::Status Cleanup(const ClusterState& state);
  // Records a failed attempt; after the last one the migration stops as failed.
  void RecordError(const absl::Status& error, int attempt);
  // Sleeps up to `duration`; false if Stop() came first.
  bool SleepFor(std::chrono::milliseconds duration);
  bool stopping() const;

  Cluster& cluster_;
  ClusterStateStore& store_;
  const MigratorOptions options_;
  std::unique_ptr<MigrationCoordinator> own_coordinator_;  // when none was given
  MigrationCoordinator* const coordinator_;
  Throttle throttle_;
  PartitionCopier copier_;  // worker thread only

  std::mutex publish_mu_;  // serializes changes of the stored state

  mutable std::mutex mu_;
  std::condition_variable wake_;     // the worker: work or stop
  std::condition_variable changed_;  // waiters: the state changed
  bool stop_ = false;                // guarded by mu_
  bool started_ = false;             // guarded by mu_
  bool work_ = false;                // guarded by mu_; the state changed since the worker looked
  // Copies and deletions done but not yet in the persisted record.
  uint64_t unrecorded_files_ = 0;     // guarded by mu_
  uint64_t unrecorded_bytes_ = 0;     // guarded by mu_
  uint64_t unrecorded_deletes_ = 0;   // guarded by mu_
  uint64_t drained_for_version_ = 0;  // worker thread only
  std::atomic<bool> resumed_{false};  // Resume() came: reconnect before the next step
  std::thread worker_;
};

}  // namespace streamgrid
