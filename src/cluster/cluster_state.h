#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "ring/placement.h"

namespace streamgrid {

// Where a membership change's data migration stands.
enum class MigrationPhase {
  kCopying,   // copying moved files to their new owners (ClusterState::target set)
  kCleaning,  // the new placement serves; deleting surplus copies (previous set)
  kDone,
  kFailed,  // stopped after repeated errors; target still set, resumable
};

// "copying", "cleaning", "done", "failed".
std::string_view MigrationPhaseName(MigrationPhase phase);

// The record of a membership change and its migration, kept in the cluster
// state so that progress survives a web server restart.
struct MigrationRecord {
  MigrationPhase phase = MigrationPhase::kCopying;
  std::string description;        // e.g. "add node 127.0.0.1:9104"
  uint32_t partitions_total = 0;  // partitions whose owners change
  uint64_t files_copied = 0;      // copies made on new owners
  uint64_t bytes_copied = 0;
  uint64_t files_deleted = 0;  // surplus copies removed after the flip
  std::string error;           // why it failed, or the last error retried
  int64_t started_unix_ms = 0;
  int64_t finished_unix_ms = 0;  // 0 until done or failed
  uint64_t from_version = 0;     // placement versions before and after
  uint64_t to_version = 0;
  bool operator==(const MigrationRecord&) const = default;
};

// A member taken out of the placement automatically because it was down for
// longer than the repair delay (its share re-replicated to the others); put
// back automatically once it answers again, or dropped by an operator's
// RemoveNode. Admin lists it as NODE_STATE_OUT.
struct OutNode {
  RingNode node;
  int64_t since_unix_ms = 0;  // when it was taken out
  bool operator==(const OutNode&) const = default;
};

// The storage cluster's membership as the web servers share it: the placement
// that serves, and while a membership change migrates data, the placement it
// moves to. Persisted by a ClusterStateStore.
struct ClusterState {
  Placement current;
  // Set while a membership change copies data: writes go to the union of the
  // current and target replicas, reads try target replicas first for migrated
  // partitions and current ones first for the rest.
  std::optional<Placement> target;
  // Partitions whose data already reached their target replicas.
  std::set<uint32_t> migrated_partitions;
  // The placement that served before the last flip, kept while its surplus
  // copies are being deleted (MigrationPhase::kCleaning). Not read or written.
  std::optional<Placement> previous;
  // The migration in progress, or the last one.
  std::optional<MigrationRecord> migration;
  // Nodes taken out automatically (see OutNode); not in any placement.
  std::vector<OutNode> out;
  // The store's revision this state was loaded at or saved as; 0 = never stored.
  uint64_t revision = 0;
};

// The state as JSON (placements embedded as their own ToJson objects).
std::string ClusterStateToJson(const ClusterState& state);

// The state ClusterStateToJson wrote. INVALID_ARGUMENT for malformed JSON, an
// invalid placement or a partition number out of range.
absl::StatusOr<ClusterState> ClusterStateFromJson(std::string_view json);

}  // namespace streamgrid
