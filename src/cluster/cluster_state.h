#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "ring/placement.h"

namespace streamgrid {

// The storage cluster's membership as the web servers share it: the placement
// that serves, and while a membership change migrates data, the placement it
// moves to. Persisted by a ClusterStateStore.
struct ClusterState {
  Placement current;
  // Set while a membership change migrates data: writes go to the union of the
  // current and target replicas, reads try target replicas first.
  std::optional<Placement> target;
  // Partitions whose data already reached their target replicas.
  std::set<uint32_t> migrated_partitions;
  // The store's revision this state was loaded at or saved as; 0 = never stored.
  uint64_t revision = 0;
};

// The state as JSON (placements embedded as their own ToJson objects).
std::string ClusterStateToJson(const ClusterState& state);

// The state ClusterStateToJson wrote. INVALID_ARGUMENT for malformed JSON, an
// invalid placement or a partition number out of range.
absl::StatusOr<ClusterState> ClusterStateFromJson(std::string_view json);

}  // namespace streamgrid
