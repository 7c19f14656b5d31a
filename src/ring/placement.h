#pragma once

// Placement of content on the storage cluster.
//
// A key is `<videoId>/<filename>`. Its position is the first 8 bytes of
// SHA-256(key), read big-endian. The position's top 12 bits pick one of 4096
// equal partitions, and a table maps every partition to an ordered list of R
// distinct nodes (R = the replication factor), primary first. Nodes carry
// weights: a node's share of the replicas, and separately of the primaries, is
// proportional to its weight. Changing the node set moves whole partitions,
// only to or from the node that changed, and only as many as its share needs;
// rows that gain or lose a node may also change which member is primary (no
// data moves for that), other rows stay exactly as they were.
// See docs/placement.md.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace streamgrid {

// A storage node as the ring sees it.
struct RingNode {
  std::string id;       // unique, non-empty; placement is keyed by it
  std::string address;  // where to reach the node ("host:port"); not used for placement
  double weight = 1.0;  // relative capacity: finite and > 0
  bool operator==(const RingNode&) const = default;
};

// Index of a node in Placement::nodes().
using NodeIndex = uint16_t;

// An immutable placement: the nodes, the replication factor, a version and the
// partition table. Copies are cheap (they share the table), and every const
// member is safe to call from any number of threads. Changes return a new
// Placement whose version is one higher. Swapping the current placement seen by
// many threads is the caller's business (a mutex, or an atomic shared_ptr).
class Placement {
 public:
  static constexpr int kPartitionBits = 12;
  static constexpr uint32_t kPartitionCount = uint32_t{1} << kPartitionBits;
  static constexpr int kMaxReplicationFactor = 16;
  static constexpr size_t kMaxNodes = 65535;

  // A placement of `nodes` with `replication_factor` replicas per key, at
  // version 1. The result depends only on the set of nodes, not on their order.
  // INVALID_ARGUMENT for an empty or duplicate id, a weight that is not finite
  // and positive, a replication factor outside [1, kMaxReplicationFactor],
  // fewer nodes than the replication factor, or more than kMaxNodes nodes.
  static absl::StatusOr<Placement> Create(std::vector<RingNode> nodes, int replication_factor);

  // This placement with `node` added: the new node takes its weighted share of
  // replicas from the most loaded nodes, one replica per partition at most;
  // no other node gains anything. ALREADY_EXISTS if its id is taken;
  // INVALID_ARGUMENT as in Create.
  absl::StatusOr<Placement> WithNodeAdded(RingNode node) const;

  // This placement without node `id`: each of its replicas goes to the most
  // under-loaded node not already holding that partition; no other node loses
  // anything. NOT_FOUND for an unknown id; FAILED_PRECONDITION if fewer than
  // replication_factor() nodes would remain.
  absl::StatusOr<Placement> WithNodeRemoved(std::string_view id) const;

  // This placement with node `id` at `weight`: replicas move between that node
  // and the others (most loaded first when it grows, most under-loaded first
  // when it shrinks) until it has its new share. NOT_FOUND for an unknown id;
  // INVALID_ARGUMENT for a weight that is not finite and positive.
  absl::StatusOr<Placement> WithNodeWeight(std::string_view id, double weight) const;

  // This placement with node `id` reachable at `address`; the table is
  // unchanged (but the version still increments). NOT_FOUND for an unknown id.
  absl::StatusOr<Placement> WithNodeAddress(std::string_view id, std::string address) const;

  // The position of `key`: the first 8 bytes of SHA-256(key), big-endian.
  static uint64_t KeyPosition(std::string_view key);
  // The position of the key `<video_id>/<filename>`, without building it.
  static uint64_t KeyPosition(std::string_view video_id, std::string_view filename);
  // The partition holding `position`: its top kPartitionBits bits.
  static uint32_t PartitionOf(uint64_t position) {
    return static_cast<uint32_t>(position >> (64 - kPartitionBits));
  }
  // The partition holding `key`.
  static uint32_t PartitionOfKey(std::string_view key) { return PartitionOf(KeyPosition(key)); }

  // The replication_factor() distinct nodes holding `key`, primary first, as
  // indexes into nodes(). The span stays valid as long as this placement or a
  // copy of it lives. Indexes are only meaningful against this placement's
  // nodes(): after a change, the same node may have another index.
  std::span<const NodeIndex> ReplicasFor(std::string_view key) const {
    return ReplicasForPartition(PartitionOf(KeyPosition(key)));
  }
  // As ReplicasFor, for a position from KeyPosition.
  std::span<const NodeIndex> ReplicasForPosition(uint64_t position) const {
    return ReplicasForPartition(PartitionOf(position));
  }
  // As ReplicasFor, for a partition below kPartitionCount.
  std::span<const NodeIndex> ReplicasForPartition(uint32_t partition) const;
  // The ids of the nodes holding `key`, primary first (allocates; for callers
  // that are not on a hot path).
  std::vector<std::string> ReplicaIdsFor(std::string_view key) const;

  // Every node, sorted by id.
  const std::vector<RingNode>& nodes() const;
  // The node at `index` (below nodes().size()).
  const RingNode& node(NodeIndex index) const { return nodes()[index]; }
  // The index of node `id`, or nullopt if there is none.
  std::optional<NodeIndex> IndexOf(std::string_view id) const;

  int replication_factor() const;
  // 1 on Create, one more after every change; persisted by ToJson.
  uint64_t version() const;

  // The fraction of all stored replicas that node `id` holds (the shares of all
  // nodes add up to 1); 0 for an unknown id.
  double ShareOfKeyspace(std::string_view node_id) const;
  // The fraction of partitions whose primary is node `id`; 0 for an unknown id.
  double PrimaryShareOfKeyspace(std::string_view node_id) const;

  // The whole state (nodes, replication factor, version and table) as JSON.
  // FromJson(ToJson()) returns a placement equal to this one.
  std::string ToJson() const;
  // The placement that ToJson wrote. INVALID_ARGUMENT for malformed JSON or an
  // inconsistent state (unknown node indexes, repeated nodes in a partition,
  // anything Create would reject, a different partition count).
  static absl::StatusOr<Placement> FromJson(std::string_view json);

  // Equal nodes, replication factor, version and table.
  bool operator==(const Placement& other) const;

 private:
  struct State;  // defined in placement.cc

  explicit Placement(std::shared_ptr<const State> state) : state_(std::move(state)) {}

  std::shared_ptr<const State> state_;
};

// How one partition's replica set differs between two placements.
struct PartitionMove {
  uint32_t partition = 0;
  std::vector<std::string> gained;  // ids that hold it after but not before, in replica order
  std::vector<std::string> lost;    // ids that held it before but not after, in replica order
  bool operator==(const PartitionMove&) const = default;
};

// Every partition whose set of replica nodes differs between `before` and
// `after`, in partition order. A partition whose replicas only changed order is
// not listed (no data moves). The placements may have different replication
// factors.
std::vector<PartitionMove> Diff(const Placement& before, const Placement& after);

}  // namespace streamgrid
