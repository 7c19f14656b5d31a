#include "cluster/cluster_state.h"

#include <utility>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace streamgrid {

using nlohmann::json;

std::string ClusterStateToJson(const ClusterState& state) {
  json out;
  // Placements are parsed back into objects so the file stays one readable
  // document rather than JSON strings nested in JSON.
  out["current"] = json::parse(state.current.ToJson());
  out["target"] = state.target ? json::parse(state.target->ToJson()) : json(nullptr);
  out["migrated_partitions"] = state.migrated_partitions;
  out["revision"] = state.revision;
  return out.dump();
}

absl::StatusOr<ClusterState> ClusterStateFromJson(std::string_view text) {
  json in = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (in.is_discarded() || !in.is_object()) {
    return absl::InvalidArgumentError("cluster state is not a JSON object");
  }
  try {
    absl::StatusOr<Placement> current = Placement::FromJson(in.at("current").dump());
    if (!current.ok()) return current.status();
    ClusterState state{.current = *std::move(current)};
    if (in.contains("target") && !in["target"].is_null()) {
      absl::StatusOr<Placement> target = Placement::FromJson(in["target"].dump());
      if (!target.ok()) return target.status();
      state.target = *std::move(target);
    }
    if (in.contains("migrated_partitions")) {
      for (const json& p : in["migrated_partitions"]) {
        const uint64_t partition = p.get<uint64_t>();
        if (partition >= Placement::kPartitionCount) {
          return absl::InvalidArgumentError("migrated partition out of range");
        }
        state.migrated_partitions.insert(static_cast<uint32_t>(partition));
      }
    }
    state.revision = in.value("revision", uint64_t{0});
    return state;
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(std::string("malformed cluster state: ") + e.what());
  }
}

}  // namespace streamgrid
