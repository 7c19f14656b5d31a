#pragma once

// Placement's shared state (internal to src/ring).

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "ring/placement.h"

namespace streamgrid {

struct Placement::State {
  std::vector<RingNode> nodes;  // sorted by id, ids unique
  int replication_factor = 0;
  uint64_t version = 0;
  // kPartitionCount rows of replication_factor indexes into `nodes`, primary
  // first: row p is [p * replication_factor, (p + 1) * replication_factor).
  std::vector<NodeIndex> table;
};

}  // namespace streamgrid

namespace streamgrid::ring_internal {

// OK when `nodes` (sorted by id) and `replication_factor` make a valid
// placement; otherwise INVALID_ARGUMENT naming the first problem found.
absl::Status ValidateNodes(const std::vector<RingNode>& nodes, int replication_factor);

}  // namespace streamgrid::ring_internal
