// Placement <-> JSON. The table itself is stored, not just the nodes: a table
// depends on the whole history of changes, so it cannot be rebuilt from the
// current node list.
//
//   {"version": 7, "replication_factor": 2, "partition_bits": 12,
//    "nodes": [{"id": "a", "address": "10.0.0.1:7000", "weight": 1.0}, ...],
//    "replicas": [[<primary of partition 0>, <of partition 1>, ...],
//                 [<second replica of partition 0>, ...]]}
//
// "replicas" has one array per rank, each with one index into "nodes" per
// partition: 2 to 3 bytes per slot, so 22 KB for 20 nodes and R = 2, 32 KB for
// R = 3 (well within etcd's 1.5 MiB request limit).

#include <algorithm>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "ring/placement.h"
#include "ring/placement_state.h"

namespace streamgrid {
namespace {

using Json = nlohmann::json;

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("placement JSON: ", what));
}

}  // namespace

std::string Placement::ToJson() const {
  const State& state = *state_;
  Json nodes = Json::array();
  for (const RingNode& node : state.nodes) {
    nodes.push_back({{"id", node.id}, {"address", node.address}, {"weight", node.weight}});
  }
  const size_t r = state.replication_factor;
  Json replicas = Json::array();
  for (size_t rank = 0; rank < r; ++rank) {
    std::vector<NodeIndex> column(kPartitionCount);
    for (uint32_t p = 0; p < kPartitionCount; ++p) column[p] = state.table[p * r + rank];
    replicas.push_back(std::move(column));
  }
  Json json = {{"version", state.version},
               {"replication_factor", state.replication_factor},
               {"partition_bits", kPartitionBits},
               {"nodes", std::move(nodes)},
               {"replicas", std::move(replicas)}};
  return json.dump();
}

absl::StatusOr<Placement> Placement::FromJson(std::string_view text) {
  Json json = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return Malformed("not a JSON object");

  auto version = json.find("version");
  if (version == json.end() || !version->is_number_unsigned() || version->get<uint64_t>() < 1) {
    return Malformed("\"version\" must be a positive integer");
  }
  auto r_field = json.find("replication_factor");
  if (r_field == json.end() || !r_field->is_number_integer()) {
    return Malformed("\"replication_factor\" must be an integer");
  }
  const int64_t r64 = r_field->get<int64_t>();
  if (r64 < 1 || r64 > kMaxReplicationFactor) {
    return Malformed(absl::StrCat("replication factor ", r64, " out of range"));
  }
  const int r = static_cast<int>(r64);
  auto bits = json.find("partition_bits");
  if (bits == json.end() || !bits->is_number_integer() || bits->get<int64_t>() != kPartitionBits) {
    return Malformed(absl::StrCat("\"partition_bits\" must be ", kPartitionBits));
  }

  auto nodes_field = json.find("nodes");
  if (nodes_field == json.end() || !nodes_field->is_array()) {
    return Malformed("\"nodes\" must be an array");
  }
  std::vector<RingNode> nodes;
  for (const Json& entry : *nodes_field) {
    if (!entry.is_object()) return Malformed("each node must be an object");
    auto id = entry.find("id");
    auto address = entry.find("address");
    auto weight = entry.find("weight");
    if (id == entry.end() || !id->is_string() || address == entry.end() || !address->is_string() ||
        weight == entry.end() || !weight->is_number()) {
      return Malformed(
          "each node needs a string \"id\", a string \"address\", a number \"weight\"");
    }
    nodes.push_back({id->get<std::string>(), address->get<std::string>(), weight->get<double>()});
  }
  if (nodes.size() > kMaxNodes) return Malformed("too many nodes");

  auto replicas = json.find("replicas");
  if (replicas == json.end() || !replicas->is_array() ||
      replicas->size() != static_cast<size_t>(r)) {
    return Malformed("\"replicas\" must hold one array per replica rank");
  }
  std::vector<NodeIndex> table(size_t{kPartitionCount} * r);
  for (int rank = 0; rank < r; ++rank) {
    const Json& column = (*replicas)[rank];
    if (!column.is_array() || column.size() != kPartitionCount) {
      return Malformed(
          absl::StrCat("each \"replicas\" array must have ", kPartitionCount, " entries"));
    }
    for (uint32_t p = 0; p < kPartitionCount; ++p) {
      const Json& entry = column[p];
      if (!entry.is_number_unsigned() || entry.get<uint64_t>() >= nodes.size()) {
        return Malformed(absl::StrCat("partition ", p, ": not a node index"));
      }
      table[size_t{p} * r + rank] = static_cast<NodeIndex>(entry.get<uint64_t>());
    }
  }
  for (uint32_t p = 0; p < kPartitionCount; ++p) {
    auto row = table.begin() + size_t{p} * r;
    for (int i = 0; i < r; ++i) {
      if (std::find(row, row + i, row[i]) != row + i) {
        return Malformed(absl::StrCat("partition ", p, " names a node twice"));
      }
    }
  }

  // ToJson writes nodes sorted by id; a hand-edited state may not be, so sort
  // them and renumber the table to keep the sorted-nodes invariant.
  std::vector<size_t> order(nodes.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return nodes[a].id < nodes[b].id; });
  std::vector<NodeIndex> renumber(nodes.size());
  std::vector<RingNode> sorted;
  sorted.reserve(nodes.size());
  for (size_t i = 0; i < order.size(); ++i) {
    renumber[order[i]] = static_cast<NodeIndex>(i);
    sorted.push_back(std::move(nodes[order[i]]));
  }
  for (NodeIndex& entry : table) entry = renumber[entry];
  if (absl::Status status = ring_internal::ValidateNodes(sorted, r); !status.ok()) {
    return Malformed(status.message());
  }

  auto state = std::make_shared<State>();
  state->nodes = std::move(sorted);
  state->replication_factor = r;
  state->version = version->get<uint64_t>();
  state->table = std::move(table);
  return Placement(std::move(state));
}

}  // namespace streamgrid
