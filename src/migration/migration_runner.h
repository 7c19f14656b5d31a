#pragma once

// Running a migration, the second of the Migrator's three jobs (see
// migrator.h): the background worker that carries out the migration the
// cluster state describes, step by step (partition batches copied through a
// PartitionCopier, the flip, the cleanup), persisting progress so a restarted
// web server resumes where its predecessor stopped. It also publishes every
// change of the stored cluster state, for itself and for MembershipChanges.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
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

// How the re-replication migrations are described (then the node's id): a
// down node taken out, an out node put back (also when an operator adds it).
inline constexpr char kTakeOutPrefix[] = "take out down node ";
inline constexpr char kPutBackPrefix[] = "put back node ";
// Whether the migration so described is a re-replication.
inline bool IsReReplication(std::string_view description) {
  return description.starts_with(kTakeOutPrefix) || description.starts_with(kPutBackPrefix);
}

struct MigratorOptions {
  // Partitions copied (and recorded) per step: each step lists them on every
  // node and records progress in the cluster state once, so larger steps cost
  // fewer round trips; a restart redoes at most one.
  uint32_t batch_partitions = 256;
  // Batches copied at once at most: the next batch is listed and its copies
  // start while earlier ones finish (one large file no longer holds up the
  // rest), each recorded as soon as all of it is copied. The copier bounds
  // the copies in flight over all of them.
  int batches_in_flight = 3;
  // Copy bandwidth over all copies; 0 for no limit.
  uint64_t max_bytes_per_second = 0;
  // Copy bandwidth of the re-replication migrations (IsReReplication: a down
  // node taken out, an out node put back) instead of max_bytes_per_second;
  // 0 for no limit, unset for max_bytes_per_second.
  std::optional<uint64_t> repair_bytes_per_second;
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

// Carries out the migration in the cluster state (when this server's
// MigrationCoordinator makes it the runner) and publishes changes of the
// stored state. Thread-safe.
class MigrationRunner {
 public:
  // `cluster`, `store` and `coordinator` must outlive the runner; `cluster`
  // holds the state last loaded from `store`. Without a coordinator the
  // runner takes this server to be the only one writing to the cluster
  // (LocalMigrationCoordinator).
  MigrationRunner(Cluster& cluster, ClusterStateStore& store, MigratorOptions options = {},
                  MigrationCoordinator* coordinator = nullptr);
  ~MigrationRunner();  // Stop()s

  // Starts the background worker; it resumes a migration the stored state
  // shows in progress (copying or cleaning, not failed).
  void Start();
  // Stops the worker within about a chunk's transfer; progress made so far is
  // persisted and resumes on the next Start (here or in another process).
  void Stop();

  // The migration in progress or the last one; nullopt if there never was one.
  std::optional<MigrationProgress> Progress() const;

  // Waits until the migration to placement version `to_version` is done or
  // failed, `deadline` passes or `cancelled` returns true (polled); returns its
  // progress then (DEADLINE_EXCEEDED / CANCELLED when it was still running).
  absl::StatusOr<MigrationProgress> WaitUntilOver(uint64_t to_version,
                                                  std::chrono::system_clock::time_point deadline,
                                                  const std::function<bool()>& cancelled);

  // Held while reading the state in force and publishing a change of it, so
  // that the runner's updates and membership changes do not interleave.
  std::mutex& publish_mu() { return publish_mu_; }

  // Saves `state` over the revision the cluster holds, puts it in force and
  // wakes the worker. ABORTED when the stored state changed meanwhile. Call
  // with publish_mu() held.
  absl::Status Publish(ClusterState state);

  // A failed migration was resumed: the worker reconnects to every node
  // before its next step (they may have been away).
  void NoteResumed() { resumed_ = true; }

 private:
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
  // Copies every partition of the migration not yet recorded, in batches of
  // batch_partitions, up to batches_in_flight at once, recording each batch
  // once it is complete. False when nothing was left to copy.
  absl::StatusOr<bool> CopyBatches(const ClusterState& state);
  // Records `batch` (all copied) and the counts in the stored state.
  absl::Status RecordBatch(const ClusterState& state, const std::vector<PartitionCopy>& batch);
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
  // Re-replication's, throttled by repair_bytes_per_second.
  Throttle repair_throttle_;
  PartitionCopier repair_copier_;  // worker thread only

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
