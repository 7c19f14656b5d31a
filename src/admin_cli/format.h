#pragma once

// How streamgrid-admin shows the admin API's answers: human tables and lines,
// JSON documents, and the one-line progress bar.

#include <cstdint>
#include <string>
#include <string_view>

#include "nlohmann/json.hpp"
#include "proto/admin.pb.h"

namespace streamgrid::admin_cli {

namespace v1 = ::streamgrid::admin::v1;

// `bytes` in binary units with one decimal: "512 B", "1.0 KiB", "1.5 GiB".
std::string HumanBytes(uint64_t bytes);

// `fraction` (0..1) as a percentage with one decimal: "33.3%".
std::string Percent(double fraction);

// "active", "joining", "leaving" ("unknown" for anything else).
std::string_view NodeStateName(v1::NodeState state);

// "copying", "cleaning", "done", "failed" ("unknown" for anything else).
std::string_view MigrationStateName(v1::MigrationState state);

// How many terminal columns `text` (UTF-8) takes, counting one per code point.
size_t DisplayWidth(std::string_view text);

// The node table (ID, ADDRESS, STATE, REACHABLE, FILES, USED, FREE, SHARE,
// WEIGHT), each unreachable node followed by an indented line with its error,
// then "replication factor R, placement version V". Every line ends in '\n'.
std::string FormatNodeTable(const v1::ListNodesResponse& nodes);

// The migration, its progress and times, then the cluster summary; "no
// migration has run" in place of the migration when there is none.
std::string FormatStatus(const v1::StatusResponse& status);

// "<done_what>: N files copied (SIZE) to new owners, M surplus copies deleted",
// without a trailing newline; e.g. done_what = "added node 127.0.0.1:9104".
std::string FormatMigrationDone(std::string_view done_what, const v1::Migration& migration);

// The progress bar line, at most `width` columns and without '\r' or '\n':
// description, a bar of partitions_done/partitions_total and its percentage,
// files and bytes copied so far.
std::string FormatProgressLine(const v1::Migration& migration, int width);

// {"replication_factor", "placement_version", "nodes": [...]}, each node with
// every field of v1::Node and its state as a name.
nlohmann::json NodesToJson(const v1::ListNodesResponse& nodes);

// Every field of the migration, its state as a name.
nlohmann::json MigrationToJson(const v1::Migration& migration);

// {"migration": {...} or null, "replication_factor", "placement_version",
// "nodes"}, nodes being the number of members.
nlohmann::json StatusToJson(const v1::StatusResponse& status);

}  // namespace streamgrid::admin_cli
