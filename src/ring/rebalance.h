#pragma once

// The partition-table algorithms behind Placement (internal to src/ring).
//
// A table holds Placement::kPartitionCount rows of `replication_factor` node
// indexes each, row-major: row p is entries [p * R, (p + 1) * R), primary
// first. Every function keeps each row's nodes distinct and is deterministic:
// the same inputs give the same table.

#include <vector>

#include "ring/placement.h"

namespace streamgrid::ring_internal {

// How many replica slots (of kPartitionCount * R) and primaries (of
// kPartitionCount) each node should hold: proportional to weight, except that
// no node can hold more than one replica per partition, so a node whose share
// would exceed kPartitionCount slots is capped there and the excess spread
// over the others by weight. Nodes whose weight is 0 get nothing.
struct Targets {
  std::vector<double> slots;
  std::vector<double> primaries;
};
Targets ComputeTargets(const std::vector<double>& weights, int replication_factor);

// A fresh table for `nodes` (at least replication_factor of them): every node
// within about one slot of its targets, both for all replicas and primaries.
std::vector<NodeIndex> BuildTable(const std::vector<RingNode>& nodes, int replication_factor);

// Gives node `node` its share (for its weight in `nodes`), moving slots only
// between it and the other nodes: slots it lacks come from the nodes most
// above their targets, slots it has in excess go to the nodes most below
// theirs that are not in the row yet. Then primaries are rebalanced by
// reordering only the rows that changed. A node new to `table` simply holds
// nothing yet.
void Rebalance(const std::vector<RingNode>& nodes, int replication_factor, NodeIndex node,
               std::vector<NodeIndex>& table);

// Moves every slot of `node` to the other nodes (as Rebalance would for a
// weight of 0). Needs at least replication_factor other nodes. `node` stays in
// the index space: the caller renumbers the table afterwards.
void Drain(const std::vector<RingNode>& nodes, int replication_factor, NodeIndex node,
           std::vector<NodeIndex>& table);

}  // namespace streamgrid::ring_internal
