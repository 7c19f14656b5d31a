#pragma once

// Membership changes, the first of the Migrator's three jobs (see
// migrator.h): planning a change of the storage cluster's members (add,
// remove, take out, put back) or the resumption of a failed migration, and
// publishing it as the cluster state's target, which the MigrationRunner then
// carries out.

#include <chrono>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cluster/cluster.h"
#include "cluster/cluster_state.h"
#include "migration/migration_runner.h"
#include "ring/placement.h"

namespace streamgrid {

// Plans and publishes membership changes. Thread-safe; one change at a time
// (a change is refused while a migration runs or waits to be resumed).
class MembershipChanges {
 public:
  // `cluster` and `runner` must outlive this. `probe_timeout` is the deadline
  // of the health check of a node being added.
  MembershipChanges(Cluster& cluster, MigrationRunner& runner,
                    std::chrono::milliseconds probe_timeout);

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

 private:
  // RemoveNode (take_out false) or TakeOut.
  absl::StatusOr<MigrationProgress> RemoveMember(std::string_view node, bool take_out);
  // Publishes `target` as a new migration described by `description`.
  absl::StatusOr<MigrationProgress> Begin(const ClusterState& seen, Placement target,
                                          std::string description);
  // OK if no migration is running or waiting to be resumed.
  absl::Status CheckIdle(const ClusterState& state) const;

  Cluster& cluster_;
  MigrationRunner& runner_;
  const std::chrono::milliseconds probe_timeout_;
};

}  // namespace streamgrid
