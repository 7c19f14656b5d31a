#include "cluster/cluster_state.h"

#include <utility>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace streamgrid {

using nlohmann::json;

namespace {

constexpr std::pair<MigrationPhase, std::string_view> kPhaseNames[] = {
    {MigrationPhase::kCopying, "copying"},
    {MigrationPhase::kCleaning, "cleaning"},
    {MigrationPhase::kDone, "done"},
    {MigrationPhase::kFailed, "failed"},
};

json RecordToJson(const MigrationRecord& r) {
  return json{{"phase", MigrationPhaseName(r.phase)},
              {"description", r.description},
              {"partitions_total", r.partitions_total},
              {"files_copied", r.files_copied},
              {"bytes_copied", r.bytes_copied},
              {"files_deleted", r.files_deleted},
              {"error", r.error},
              {"started_unix_ms", r.started_unix_ms},
              {"finished_unix_ms", r.finished_unix_ms},
              {"from_version", r.from_version},
              {"to_version", r.to_version}};
}

// Throws json::exception on a wrong type; INVALID_ARGUMENT for an unknown phase.
absl::StatusOr<MigrationRecord> RecordFromJson(const json& in) {
  MigrationRecord r;
  const std::string phase = in.at("phase").get<std::string>();
  bool known = false;
  for (const auto& [value, name] : kPhaseNames) {
    if (name == phase) {
      r.phase = value;
      known = true;
    }
  }
  if (!known) return absl::InvalidArgumentError("unknown migration phase '" + phase + "'");
  r.description = in.value("description", "");
  r.partitions_total = in.value("partitions_total", uint32_t{0});
  r.files_copied = in.value("files_copied", uint64_t{0});
  r.bytes_copied = in.value("bytes_copied", uint64_t{0});
  r.files_deleted = in.value("files_deleted", uint64_t{0});
  r.error = in.value("error", "");
  r.started_unix_ms = in.value("started_unix_ms", int64_t{0});
  r.finished_unix_ms = in.value("finished_unix_ms", int64_t{0});
  r.from_version = in.value("from_version", uint64_t{0});
  r.to_version = in.value("to_version", uint64_t{0});
  return r;
}

}  // namespace

std::string_view MigrationPhaseName(MigrationPhase phase) {
  for (const auto& [value, name] : kPhaseNames) {
    if (value == phase) return name;
  }
  return "unknown";
}

std::string ClusterStateToJson(const ClusterState& state) {
  json out;
  // Placements are parsed back into objects so the file stays one readable
  // document rather than JSON strings nested in JSON.
  out["current"] = json::parse(state.current.ToJson());
  out["target"] = state.target ? json::parse(state.target->ToJson()) : json(nullptr);
  out["migrated_partitions"] = state.migrated_partitions;
  out["previous"] = state.previous ? json::parse(state.previous->ToJson()) : json(nullptr);
  out["migration"] = state.migration ? RecordToJson(*state.migration) : json(nullptr);
  if (!state.out.empty()) {
    json out_nodes = json::array();
    for (const OutNode& node : state.out) {
      out_nodes.push_back({{"id", node.node.id},
                           {"address", node.node.address},
                           {"weight", node.node.weight},
                           {"since_unix_ms", node.since_unix_ms}});
    }
    out["out"] = std::move(out_nodes);
  }
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
    if (in.contains("previous") && !in["previous"].is_null()) {
      absl::StatusOr<Placement> previous = Placement::FromJson(in["previous"].dump());
      if (!previous.ok()) return previous.status();
      state.previous = *std::move(previous);
    }
    if (in.contains("migration") && !in["migration"].is_null()) {
      absl::StatusOr<MigrationRecord> record = RecordFromJson(in["migration"]);
      if (!record.ok()) return record.status();
      state.migration = *std::move(record);
    }
    // Absent in states written before out nodes existed.
    if (in.contains("out")) {
      for (const json& node : in["out"]) {
        OutNode out{.node = {.id = node.at("id").get<std::string>(),
                             .address = node.at("address").get<std::string>(),
                             .weight = node.value("weight", 1.0)},
                    .since_unix_ms = node.value("since_unix_ms", int64_t{0})};
        if (out.node.id.empty()) return absl::InvalidArgumentError("out node without an id");
        state.out.push_back(std::move(out));
      }
    }
    state.revision = in.value("revision", uint64_t{0});
    return state;
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(std::string("malformed cluster state: ") + e.what());
  }
}

}  // namespace streamgrid
