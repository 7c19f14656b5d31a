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
// The three jobs are three classes: MembershipChanges (planning and
// publishing a change: membership_changes.h), MigrationRunner (the worker, its
// steps, the flip and the cleanup: migration_runner.h) and PartitionCopier
// (copying partitions from any live replica, which repair reuses). A Migrator
// wires the first two together for one web server. Dead nodes do not wedge
// a migration: copies come from whichever replica answers, the cleanup leaves
// a dead node's surplus copies, and a step that cannot finish fails naming the
// partitions without a live replica and their owners.
//
// With several web servers, each has a Migrator: any of them starts a change,
// and the one its MigrationCoordinator makes the runner carries it out; the
// others follow its progress through the shared cluster state.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cluster/cluster.h"
#include "cluster/cluster_state_store.h"
#include "migration/membership_changes.h"
#include "migration/migration_coordinator.h"
#include "migration/migration_runner.h"
#include "ring/placement.h"

namespace streamgrid {

// One web server's MigrationRunner and the MembershipChanges publishing
// through it, with the calls of both (see those classes for each contract).
// Thread-safe.
class Migrator {
 public:
  // `cluster`, `store` and `coordinator` must outlive the migrator; `cluster`
  // holds the state last loaded from `store`. Without a coordinator the
  // migrator takes this server to be the only one writing to the cluster
  // (LocalMigrationCoordinator).
  Migrator(Cluster& cluster, ClusterStateStore& store, MigratorOptions options = {},
           MigrationCoordinator* coordinator = nullptr)
      : runner_(cluster, store, options, coordinator),
        membership_(cluster, runner_, options.probe_timeout) {}

  MembershipChanges& membership() { return membership_; }
  MigrationRunner& runner() { return runner_; }

  // MigrationRunner::Start, Stop, Progress, WaitUntilOver.
  void Start() { runner_.Start(); }
  void Stop() { runner_.Stop(); }
  std::optional<MigrationProgress> Progress() const { return runner_.Progress(); }
  absl::StatusOr<MigrationProgress> WaitUntilOver(uint64_t to_version,
                                                  std::chrono::system_clock::time_point deadline,
                                                  const std::function<bool()>& cancelled) {
    return runner_.WaitUntilOver(to_version, deadline, cancelled);
  }

  // MembershipChanges::AddNode, RemoveNode, TakeOut, PutBack, Resume.
  absl::StatusOr<MigrationProgress> AddNode(RingNode node) {
    return membership_.AddNode(std::move(node));
  }
  absl::StatusOr<MigrationProgress> RemoveNode(std::string_view node) {
    return membership_.RemoveNode(node);
  }
  absl::StatusOr<MigrationProgress> TakeOut(std::string_view node) {
    return membership_.TakeOut(node);
  }
  absl::StatusOr<MigrationProgress> PutBack(std::string_view node) {
    return membership_.PutBack(node);
  }
  absl::StatusOr<MigrationProgress> Resume() { return membership_.Resume(); }

 private:
  MigrationRunner runner_;  // declared first: membership_ publishes through it
  MembershipChanges membership_;
};

}  // namespace streamgrid
