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

// "active", "joining", "leaving", "available", "out" ("unknown" for anything
// else).
std::string_view NodeStateName(v1::NodeState state);

// "up", "suspect", "down" ("unknown" for anything else).
std::string_view NodeHealthName(v1::NodeHealth health);

// The node's health as the table shows it: "up", "suspect" or "down"; from
// `reachable` when the server did not say (an older one).
std::string_view ShownHealth(const v1::Node& node);

// How long a node has been in its health, for the line under a node that is
// not up: "down for 2m13s, since 2024-05-01 12:03:01 UTC"; just "down" when
// the server did not say since when.
std::string HealthSince(const v1::Node& node, int64_t now_unix_ms);

// "copying", "cleaning", "done", "failed" ("unknown" for anything else).
std::string_view MigrationStateName(v1::MigrationState state);

// How many terminal columns `text` (UTF-8) takes, counting one per code point.
size_t DisplayWidth(std::string_view text);

// The node table (ID, ADDRESS, STATE, HEALTH, FILES, USED, FREE, SHARE,
// WEIGHT, and HINTS, QUARANTINED, SCRUBBED when any node has such figures),
// each node that is not up followed by an indented line saying since when
// (HealthSince, as of `now_unix_ms`), each unreachable one by a line with its
// error, then "replication factor R, placement version V". Every line ends in
// '\n'.
std::string FormatNodeTable(const v1::ListNodesResponse& nodes, int64_t now_unix_ms);
// As of now.
std::string FormatNodeTable(const v1::ListNodesResponse& nodes);

// The migration, its progress and times, then the cluster summary, then what
// self-repair has done (when the server says); "no migration has run" in
// place of the migration when there is none.
std::string FormatStatus(const v1::StatusResponse& status);

// "<done_what>: N files copied (SIZE) to new owners, M surplus copies deleted",
// without a trailing newline; e.g. done_what = "added node 127.0.0.1:9104".
std::string FormatMigrationDone(std::string_view done_what, const v1::Migration& migration);

// The progress bar line, at most `width` columns and without '\r' or '\n':
// description, a bar of partitions_done/partitions_total and its percentage,
// files and bytes copied so far.
std::string FormatProgressLine(const v1::Migration& migration, int width);

// {"replication_factor", "placement_version", "nodes": [...]}, each node with
// every field of v1::Node, its state and health as names.
nlohmann::json NodesToJson(const v1::ListNodesResponse& nodes);

// Every field of the migration, its state as a name.
nlohmann::json MigrationToJson(const v1::Migration& migration);

// {"migration": {...} or null, "replication_factor", "placement_version",
// "nodes", "web_servers", "migration_runner", "repair": {...} or null}, nodes
// being the number of members.
nlohmann::json StatusToJson(const v1::StatusResponse& status);

}  // namespace streamgrid::admin_cli
