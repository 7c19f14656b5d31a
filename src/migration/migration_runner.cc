// Running a migration (see migration_runner.h): the worker, its steps, the
// flip and the cleanup, and publishing the stored cluster state.

#include "migration/migration_runner.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/durations.h"
#include "common/ids.h"
#include "common/strings.h"
#include "storage/storage_client.h"

namespace streamgrid {
namespace {

using storage::StorageClient;
using storage::StoredFile;

// Pages of one listing at most: a bound far above any node's size (pages hold
// up to 1000 files) that still ends a listing that never would.
constexpr int kMaxListPages = 1'000'000;

std::string DescribeError(std::string_view node_id, const absl::Status& status) {
  return absl::StrCat("node ", ToAbsl(node_id), ": ", status.message());
}

// Whether `state` has a migration for a runner to work on.
bool IsRunning(const ClusterState& state) {
  return state.migration && (state.migration->phase == MigrationPhase::kCopying ||
                             state.migration->phase == MigrationPhase::kCleaning);
}

bool SameMigration(const ClusterState& a, const ClusterState& b) {
  return a.migration && b.migration && a.migration->to_version == b.migration->to_version &&
         a.migration->phase == b.migration->phase;
}

absl::Status Changed() {
  return absl::AbortedError("the cluster state changed meanwhile; try again");
}

}  // namespace

MigrationRunner::MigrationRunner(Cluster& cluster, ClusterStateStore& store,
                                 MigratorOptions options, MigrationCoordinator* coordinator)
    : cluster_(cluster),
      store_(store),
      options_(options),
      own_coordinator_(coordinator ? nullptr
                                   : std::make_unique<LocalMigrationCoordinator>(cluster)),
      coordinator_(coordinator ? coordinator : own_coordinator_.get()),
      throttle_(options.max_bytes_per_second),
      copier_(cluster, throttle_),
      repair_throttle_(options.repair_bytes_per_second.value_or(options.max_bytes_per_second)),
      repair_copier_(cluster, repair_throttle_) {}

MigrationRunner::~MigrationRunner() { Stop(); }

void MigrationRunner::Start() {
  std::lock_guard lock(mu_);
  if (started_) return;
  started_ = true;
  stop_ = false;
  work_ = true;  // a migration may be waiting in the loaded state
  worker_ = std::thread([this] { Run(); });
}

void MigrationRunner::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
}

bool MigrationRunner::stopping() const {
  std::lock_guard lock(mu_);
  return stop_;
}

bool MigrationRunner::SleepFor(std::chrono::milliseconds duration) {
  std::unique_lock lock(mu_);
  return !wake_.wait_for(lock, duration, [&] { return stop_; });
}

absl::Status MigrationRunner::Publish(ClusterState state) {
  absl::StatusOr<uint64_t> revision = store_.Save(state, cluster_.state()->revision);
  if (!revision.ok()) {
    if (absl::IsAborted(revision.status())) return Changed();
    return revision.status();
  }
  state.revision = *revision;
  // A follower of a shared store may already have put a newer state in force.
  cluster_.UpdateIfNewer(std::move(state));
  {
    std::lock_guard lock(mu_);
    work_ = true;
  }
  wake_.notify_all();
  changed_.notify_all();
  return absl::OkStatus();
}

std::optional<MigrationProgress> MigrationRunner::Progress() const {
  std::shared_ptr<const ClusterState> state = cluster_.state();
  if (!state->migration) return std::nullopt;
  MigrationProgress progress{.record = *state->migration};
  switch (progress.record.phase) {
    case MigrationPhase::kCopying:
    case MigrationPhase::kFailed:
      progress.partitions_done = static_cast<uint32_t>(
          state->target ? state->migrated_partitions.size() : progress.record.partitions_total);
      break;
    default:
      progress.partitions_done = progress.record.partitions_total;
  }
  return progress;
}

absl::StatusOr<MigrationProgress> MigrationRunner::WaitUntilOver(
    uint64_t to_version, std::chrono::system_clock::time_point deadline,
    const std::function<bool()>& cancelled) {
  while (true) {
    std::optional<MigrationProgress> progress = Progress();
    if (!progress || progress->record.to_version != to_version) {
      return absl::AbortedError("another membership change replaced this migration");
    }
    if (progress->record.phase == MigrationPhase::kDone ||
        progress->record.phase == MigrationPhase::kFailed) {
      return *progress;
    }
    if (std::chrono::system_clock::now() >= deadline) {
      return absl::DeadlineExceededError(
          "the migration is still running; it continues in the background");
    }
    if (cancelled && cancelled()) return absl::CancelledError("the caller went away");
    std::unique_lock lock(mu_);
    changed_.wait_for(lock, std::chrono::milliseconds(100));
  }
}

void MigrationRunner::Run() {
  int attempt = 0;
  while (true) {
    {
      std::unique_lock lock(mu_);
      wake_.wait_for(lock, options_.idle_poll, [&] { return stop_ || work_; });
      if (stop_) return;
      work_ = false;
    }
    if (!IsRunning(*cluster_.state()) || !coordinator_->TryBecomeRunner()) continue;
    if (resumed_.exchange(false)) cluster_.ReconnectAll(std::chrono::seconds(2));
    // Work through the migration until it is over, fails or Stop() comes.
    while (!stopping()) {
      std::shared_ptr<const ClusterState> state = cluster_.state();
      // Another server took over (this one's lease lapsed): it runs the rest.
      if (!coordinator_->TryBecomeRunner()) break;
      absl::StatusOr<bool> more = Step(*state);
      if (more.ok()) {
        attempt = 0;
        if (!*more) break;
        continue;
      }
      if (stopping()) {
        SaveCounts();
        return;
      }
      if (absl::IsAborted(more.status())) continue;  // re-read the state
      ++attempt;
      RecordError(more.status(), attempt);
      if (attempt >= options_.max_attempts) {
        attempt = 0;
        break;  // failed: idle until resumed
      }
      if (!SleepFor(options_.retry_backoff * (1 << std::min(attempt - 1, 10)))) return;
      // A node that was away may be back: do not let gRPC's reconnect back-off
      // fail the next attempt for it.
      cluster_.ReconnectAll(std::chrono::seconds(2));
    }
  }
}

absl::StatusOr<bool> MigrationRunner::Step(const ClusterState& state) {
  if (!state.migration) return false;
  switch (state.migration->phase) {
    case MigrationPhase::kCopying: {
      if (!state.target) return absl::InternalError("copying without a target placement");
      // Each phase's time is logged: what an `add` spends outside the copies.
      auto start = std::chrono::steady_clock::now();
      if (drained_for_version_ != state.target->version()) {
        if (absl::Status s = DrainEarlierWrites(state); !s.ok()) return s;
        drained_for_version_ = state.target->version();
        spdlog::info("migration: earlier writes drained in {} ms", MsSince(start));
        start = std::chrono::steady_clock::now();
      }
      absl::StatusOr<bool> copied = CopyBatches(state);
      if (!copied.ok()) return copied.status();
      if (*copied) {
        spdlog::info("migration: batches copied and recorded in {} ms", MsSince(start));
        return true;
      }
      start = std::chrono::steady_clock::now();
      if (absl::Status s = Flip(state); !s.ok()) return s;
      spdlog::info("migration: flip recorded in {} ms", MsSince(start));
      return true;
    }
    case MigrationPhase::kCleaning: {
      auto start = std::chrono::steady_clock::now();
      if (absl::Status s = DrainEarlierWrites(state); !s.ok()) return s;
      spdlog::info("migration: writes under the old placement drained in {} ms", MsSince(start));
      start = std::chrono::steady_clock::now();
      if (absl::Status s = Cleanup(state); !s.ok()) return s;
      spdlog::info("migration: cleanup took {} ms", MsSince(start));
      return false;
    }
    default:
      return false;
  }
}

absl::Status MigrationRunner::DrainEarlierWrites(const ClusterState& state) {
  return coordinator_->AwaitWritesDrained(state.revision, options_.write_drain_timeout,
                                          [this] { return stopping(); });
}

absl::Status MigrationRunner::ListPartitions(const ClusterNode& node,
                                             std::vector<uint32_t> partitions,
                                             const std::function<void(StoredFile)>& each) {
  storage::ListOptions options{.partitions = std::move(partitions),
                               .partition_bits = Placement::kPartitionBits};
  for (int page = 0; page < kMaxListPages; ++page) {
    if (stopping()) return absl::CancelledError("stopping");
    absl::StatusOr<storage::StoredFilePage> listed = node.client->List(options);
    if (!listed.ok()) return listed.status();
    for (StoredFile& file : listed->files) each(std::move(file));
    if (listed->next_page_token.empty()) return absl::OkStatus();
    options.page_token = std::move(listed->next_page_token);
  }
  return absl::InternalError("listing did not end");
}

absl::StatusOr<bool> MigrationRunner::CopyBatches(const ClusterState& state) {
  const Placement& current = state.current;
  const Placement& target = *state.target;
  std::vector<std::vector<PartitionCopy>> batches;
  for (PartitionMove& move : Diff(current, target)) {
    if (state.migrated_partitions.contains(move.partition)) continue;
    PartitionCopy copy{.partition = move.partition, .destinations = std::move(move.gained)};
    // Every current owner that answers is a source: writes reach all owners,
    // so one answer per partition is complete, and the union also covers an
    // owner that missed something (or is dead).
    for (NodeIndex i : current.ReplicasForPartition(move.partition)) {
      copy.sources.push_back(current.node(i).id);
    }
    if (batches.empty() || batches.back().size() >= options_.batch_partitions) {
      batches.emplace_back();
    }
    batches.back().push_back(std::move(copy));
  }
  if (batches.empty()) return false;

  // Re-replication is repair traffic: it gets the repair bandwidth limit.
  PartitionCopier& copier =
      state.migration && IsReReplication(state.migration->description) ? repair_copier_ : copier_;
  // Batches overlap: while one batch's last (large) file is copied, the next
  // ones are listed and copied. Each is recorded when complete, in whatever
  // order they end; the flip waits for all of them (the next Step).
  struct Finished {
    size_t batch;
    absl::StatusOr<CopyOutcome> outcome;
  };
  std::mutex finished_mu;
  std::condition_variable finished_cv;
  std::deque<Finished> finished;  // guarded by finished_mu
  std::vector<std::thread> threads(batches.size());
  const size_t in_flight = static_cast<size_t>(std::max(1, options_.batches_in_flight));
  size_t next = 0;
  size_t running = 0;
  absl::Status error;  // the first failure: no batch starts after it
  while (true) {
    while (error.ok() && running < in_flight && next < batches.size()) {
      // Checked before each batch, as before each step: another server may
      // have taken over.
      if (next > 0 && !coordinator_->TryBecomeRunner()) {
        error = absl::AbortedError("another server runs the migration now");
        break;
      }
      const size_t b = next++;
      ++running;
      threads[b] = std::thread([&, b] {
        absl::StatusOr<CopyOutcome> outcome = copier.Copy(
            batches[b], [this](std::chrono::milliseconds wait) { return SleepFor(wait); });
        {
          std::lock_guard lock(finished_mu);
          finished.push_back({b, std::move(outcome)});
        }
        finished_cv.notify_all();
      });
    }
    if (running == 0) break;
    Finished done;
    {
      std::unique_lock lock(finished_mu);
      finished_cv.wait(lock, [&] { return !finished.empty(); });
      done = std::move(finished.front());
      finished.pop_front();
    }
    --running;
    threads[done.batch].join();
    if (!done.outcome.ok()) {
      if (error.ok()) error = done.outcome.status();
      continue;
    }
    {
      std::lock_guard lock(mu_);
      unrecorded_files_ += done.outcome->files_copied;
      unrecorded_bytes_ += done.outcome->bytes_copied;
    }
    if (!done.outcome->complete()) {
      // Retried (a node may come back, or its liveness turn down so that the
      // copy goes elsewhere), then failed with this message for the operator.
      if (error.ok()) error = absl::UnavailableError(done.outcome->Describe());
      continue;
    }
    // Recorded even after another batch failed: a restart resumes after it.
    if (absl::Status s = RecordBatch(state, batches[done.batch]); !s.ok() && error.ok()) {
      error = s;
    }
  }
  if (!error.ok()) return error;
  return true;
}

absl::Status MigrationRunner::RecordBatch(const ClusterState& state,
                                          const std::vector<PartitionCopy>& batch) {
  std::lock_guard lock(publish_mu_);
  ClusterState next = *cluster_.state();
  if (!SameMigration(next, state)) return Changed();
  for (const PartitionCopy& copy : batch) next.migrated_partitions.insert(copy.partition);
  TakeCounts(*next.migration);
  next.migration->error.clear();
  if (absl::Status s = Publish(std::move(next)); !s.ok()) return s;
  spdlog::debug("migration: {} partitions copied", batch.size());
  return absl::OkStatus();
}

void MigrationRunner::TakeCounts(MigrationRecord& record) {
  std::lock_guard lock(mu_);
  record.files_copied += std::exchange(unrecorded_files_, 0);
  record.bytes_copied += std::exchange(unrecorded_bytes_, 0);
  record.files_deleted += std::exchange(unrecorded_deletes_, 0);
}

absl::Status MigrationRunner::Flip(const ClusterState& state) {
  std::lock_guard lock(publish_mu_);
  ClusterState next = *cluster_.state();
  if (!SameMigration(next, state)) return Changed();
  next.previous = std::move(next.current);
  next.current = *std::move(next.target);
  next.target.reset();
  next.migrated_partitions.clear();
  next.migration->phase = MigrationPhase::kCleaning;
  TakeCounts(*next.migration);
  const std::string what = next.migration->description;
  if (absl::Status s = Publish(std::move(next)); !s.ok()) return s;
  spdlog::info("migration: every moved file is copied; placement version {} serves ({})",
               state.target->version(), what);
  return absl::OkStatus();
}

absl::Status MigrationRunner::Cleanup(const ClusterState& state) {
  if (!state.previous) return absl::InternalError("cleaning without a previous placement");
  const Placement& previous = *state.previous;
  const Placement& current = state.current;
  std::map<std::string, std::vector<uint32_t>> lost;  // node → partitions it no longer owns
  for (const PartitionMove& move : Diff(previous, current)) {
    for (const std::string& id : move.lost) lost[id].push_back(move.partition);
  }
  // Each node's surplus goes on a thread of its own: a delete costs a round
  // trip and a directory sync on that node, not bandwidth.
  auto clean = [&](const std::string& id, const std::vector<uint32_t>& partitions) -> absl::Status {
    const RingNode& ring_node = previous.node(*previous.IndexOf(id));
    const bool member = current.IndexOf(id).has_value();
    // A removed node is no longer in the cluster view: reach it directly.
    ClusterNode node{.id = id, .address = ring_node.address};
    if (std::optional<ClusterNode> known = cluster_.Node(id)) {
      node = *known;
    } else {
      node.client =
          cluster_.ClientFor(ring_node.address, storage::StorageClientOptions().call_timeout);
    }
    // Surplus copies only cost space: a node that is down or does not answer
    // keeps its own (they are strays, outside its partitions, for an
    // operator or a later cleanup) rather than wedging the migration.
    if (member && cluster_.Liveness(id).liveness == NodeLiveness::kDown) {
      spdlog::warn("migration: node {} is down; its surplus copies are left as they are", id);
      return absl::OkStatus();
    }
    std::vector<StoredFile> surplus;
    absl::Status listed =
        ListPartitions(node, partitions, [&](StoredFile file) { surplus.push_back(file); });
    if (!listed.ok()) {
      if (Cluster::IsNodeFailure(listed)) {
        spdlog::warn(
            "migration: node {} does not answer ({}); its surplus copies are left as "
            "they are",
            id, std::string(listed.message()));
        return absl::OkStatus();
      }
      return absl::UnavailableError(DescribeError(id, listed));
    }
    for (const StoredFile& file : surplus) {
      if (stopping()) return absl::CancelledError("stopping");
      absl::Status deleted = node.client->Delete(file.video_id, file.name);
      if (!deleted.ok() && Cluster::IsNodeFailure(deleted)) {
        spdlog::warn(
            "migration: node {} stopped answering ({}); its other surplus copies are "
            "left as they are",
            id, std::string(deleted.message()));
        break;
      }
      if (!deleted.ok() && !absl::IsNotFound(deleted)) {
        return absl::UnavailableError(DescribeError(id, deleted));
      }
      if (deleted.ok()) {
        std::lock_guard lock(mu_);
        ++unrecorded_deletes_;
      }
    }
    return absl::OkStatus();
  };
  std::vector<absl::Status> results(lost.size());
  {
    std::vector<std::thread> threads;
    size_t i = 0;
    for (const auto& [id, partitions] : lost) {
      threads.emplace_back(
          [&, i, &id = id, &partitions = partitions] { results[i] = clean(id, partitions); });
      ++i;
    }
    for (std::thread& t : threads) t.join();
  }
  for (const absl::Status& result : results) {
    if (!result.ok()) return result;
  }
  std::lock_guard lock(publish_mu_);
  ClusterState next = *cluster_.state();
  if (!SameMigration(next, state)) return Changed();
  next.previous.reset();
  next.migration->phase = MigrationPhase::kDone;
  next.migration->error.clear();
  next.migration->finished_unix_ms = NowMillis();
  TakeCounts(*next.migration);
  const MigrationRecord record = *next.migration;
  if (absl::Status s = Publish(std::move(next)); !s.ok()) return s;
  spdlog::info("migration done: {}: {} files copied ({} bytes), {} surplus copies deleted",
               record.description, record.files_copied, record.bytes_copied, record.files_deleted);
  return absl::OkStatus();
}

void MigrationRunner::SaveCounts() {
  std::lock_guard lock(publish_mu_);
  ClusterState next = *cluster_.state();
  if (!next.migration) return;
  const MigrationRecord before = *next.migration;
  TakeCounts(*next.migration);
  if (*next.migration == before) return;
  if (absl::Status s = Publish(std::move(next)); !s.ok()) {
    spdlog::warn("migration: could not record progress: {}", s.ToString());
  }
}

void MigrationRunner::RecordError(const absl::Status& error, int attempt) {
  std::lock_guard lock(publish_mu_);
  ClusterState next = *cluster_.state();
  if (!next.migration) return;
  MigrationRecord& record = *next.migration;
  record.error = std::string(error.message());
  TakeCounts(record);
  const bool last = attempt >= options_.max_attempts;
  if (last) {
    record.phase = MigrationPhase::kFailed;
    record.finished_unix_ms = NowMillis();
  }
  const std::string what = record.description;
  if (absl::Status s = Publish(std::move(next)); !s.ok()) {
    spdlog::warn("migration: could not record an error: {}", s.ToString());
  }
  if (last) {
    spdlog::error("migration failed after {} attempts: {}: {}", attempt, what, error.ToString());
  } else {
    spdlog::warn("migration step failed (attempt {} of {}), retrying: {}", attempt,
                 options_.max_attempts, error.ToString());
  }
}

}  // namespace streamgrid
