#pragma once

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "cluster/cluster_state.h"

namespace streamgrid {

// Where the cluster state persists, shared by every web server. Thread-safe.
class ClusterStateStore {
 public:
  virtual ~ClusterStateStore() = default;

  // The stored state with its revision, or nullopt if nothing was saved yet.
  virtual absl::StatusOr<std::optional<ClusterState>> Load() = 0;

  // Stores `state` if the stored revision is still `expected_revision` (0: only
  // if nothing is stored yet); ABORTED otherwise. `state.revision` is ignored.
  // Returns the new revision (always greater than `expected_revision`).
  virtual absl::StatusOr<uint64_t> Save(const ClusterState& state, uint64_t expected_revision) = 0;
};

}  // namespace streamgrid
