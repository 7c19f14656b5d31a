#include "admin_cli/format.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/strings.h"

namespace streamgrid::admin_cli {
namespace {

// Shares closer than this (a twentieth of the shown precision) count as equal.
constexpr double kShareEpsilon = 0.00005;

bool Migrating(const v1::ListNodesResponse& nodes) {
  for (const v1::Node& node : nodes.nodes()) {
    if (node.state() == v1::NODE_STATE_JOINING || node.state() == v1::NODE_STATE_LEAVING) {
      return true;
    }
    // A server may leave the target unset (0) outside migrations.
    if (node.target_share_of_keyspace() > 0 &&
        std::abs(node.target_share_of_keyspace() - node.share_of_keyspace()) > kShareEpsilon) {
      return true;
    }
  }
  return false;
}

std::string Weight(double weight) { return absl::StrFormat("%g", weight); }

// `text` cut to at most `width` code points, "..." marking a cut.
std::string Truncate(std::string_view text, size_t width) {
  if (DisplayWidth(text) <= width) return std::string(text);
  const size_t keep = width > 3 ? width - 3 : width;
  size_t points = 0;
  size_t end = 0;
  for (; end < text.size(); ++end) {
    if ((static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) continue;
    if (points == keep) break;
    ++points;
  }
  std::string out(text.substr(0, end));
  if (width > 3) out += "...";
  return out;
}

// `unix_ms` as "2024-05-01 12:00:03 UTC".
std::string UtcTime(int64_t unix_ms) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buffer;
}

// `ms` as "3h02m05s", "2m05s" or "5.2s".
std::string Duration(int64_t ms) {
  if (ms < 0) ms = 0;
  const int64_t s = ms / 1000;
  if (s >= 3600) return absl::StrFormat("%dh%02dm%02ds", s / 3600, s / 60 % 60, s % 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%.1fs", ms / 1000.0);
}

// Done fraction of a migration's copying, for the bar and its percentage.
double CopiedFraction(const v1::Migration& migration) {
  if (migration.partitions_total() > 0) {
    return std::min(
        1.0, static_cast<double>(migration.partitions_done()) / migration.partitions_total());
  }
  return migration.state() == v1::MIGRATION_STATE_CLEANING ||
                 migration.state() == v1::MIGRATION_STATE_DONE
             ? 1.0
             : 0.0;
}

}  // namespace

std::string HumanBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  double value = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  // Step up before rounding would show "1024.0".
  while (value >= 1023.95 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  return absl::StrFormat("%.1f %s", value, kUnits[unit]);
}

std::string Percent(double fraction) { return absl::StrFormat("%.1f%%", fraction * 100); }

std::string_view NodeStateName(v1::NodeState state) {
  switch (state) {
    case v1::NODE_STATE_ACTIVE:
      return "active";
    case v1::NODE_STATE_JOINING:
      return "joining";
    case v1::NODE_STATE_LEAVING:
      return "leaving";
    case v1::NODE_STATE_AVAILABLE:
      return "available";
    case v1::NODE_STATE_OUT:
      return "out";
    default:
      return "unknown";
  }
}

std::string_view NodeHealthName(v1::NodeHealth health) {
  switch (health) {
    case v1::NODE_HEALTH_UP:
      return "up";
    case v1::NODE_HEALTH_SUSPECT:
      return "suspect";
    case v1::NODE_HEALTH_DOWN:
      return "down";
    default:
      return "unknown";
  }
}

std::string_view ShownHealth(const v1::Node& node) {
  if (node.health() == v1::NODE_HEALTH_UNSPECIFIED) return node.reachable() ? "up" : "down";
  return NodeHealthName(node.health());
}

std::string HealthSince(const v1::Node& node, int64_t now_unix_ms) {
  std::string out(ShownHealth(node));
  if (node.health_since_unix_ms() <= 0) return out;
  absl::StrAppend(&out, " for ", Duration(now_unix_ms - node.health_since_unix_ms()), ", since ",
                  UtcTime(node.health_since_unix_ms()));
  return out;
}

std::string_view MigrationStateName(v1::MigrationState state) {
  switch (state) {
    case v1::MIGRATION_STATE_COPYING:
      return "copying";
    case v1::MIGRATION_STATE_CLEANING:
      return "cleaning";
    case v1::MIGRATION_STATE_DONE:
      return "done";
    case v1::MIGRATION_STATE_FAILED:
      return "failed";
    default:
      return "unknown";
  }
}

size_t DisplayWidth(std::string_view text) {
  return std::count_if(text.begin(), text.end(),
                       [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
}

std::string FormatNodeTable(const v1::ListNodesResponse& nodes) {
  return FormatNodeTable(nodes, std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count());
}

std::string FormatNodeTable(const v1::ListNodesResponse& nodes, int64_t now_unix_ms) {
  struct Column {
    std::string_view title;
    bool right_aligned;
  };
  static constexpr Column kColumns[] = {
      {"ID", false},    {"ADDRESS", false}, {"STATE", false},      {"HEALTH", false},
      {"FILES", true},  {"USED", true},     {"FREE", true},        {"SHARE", true},
      {"WEIGHT", true}, {"HINTS", true},    {"QUARANTINED", true}, {"SCRUBBED", true}};
  // The integrity columns only once some node has such figures: most
  // clusters, most of the time, have none to show.
  const bool integrity =
      std::any_of(nodes.nodes().begin(), nodes.nodes().end(), [](const v1::Node& node) {
        return node.hints_pending() > 0 || node.quarantined() > 0 || node.scrubbed_bytes() > 0;
      });
  const size_t column_count = integrity ? std::size(kColumns) : std::size(kColumns) - 3;

  const bool migrating = Migrating(nodes);
  // Nodes announce themselves only where the cluster uses etcd: say which do
  // not only then.
  const bool announcing = std::any_of(nodes.nodes().begin(), nodes.nodes().end(),
                                      [](const v1::Node& node) { return node.announced(); });
  std::vector<std::vector<std::string>> rows;
  rows.emplace_back();
  for (size_t i = 0; i < column_count; ++i) rows.back().emplace_back(kColumns[i].title);
  for (const v1::Node& node : nodes.nodes()) {
    const bool up = node.reachable();
    std::string share = Percent(node.share_of_keyspace());
    if (migrating) share += " → " + Percent(node.target_share_of_keyspace());
    const bool member = node.state() != v1::NODE_STATE_AVAILABLE;
    rows.push_back({node.id(), node.address(), std::string(NodeStateName(node.state())),
                    std::string(ShownHealth(node)), up ? absl::StrCat(node.files()) : "-",
                    up ? HumanBytes(node.bytes_used()) : "-",
                    up ? HumanBytes(node.free_bytes()) : "-", member ? share : "-",
                    member ? Weight(node.weight()) : "-"});
    if (integrity) {
      rows.back().push_back(absl::StrCat(node.hints_pending()));
      rows.back().push_back(absl::StrCat(node.quarantined()));
      rows.back().push_back(HumanBytes(node.scrubbed_bytes()));
    }
  }

  std::vector<size_t> widths(column_count, 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < column_count; ++i) widths[i] = std::max(widths[i], DisplayWidth(row[i]));
  }

  std::string out;
  for (size_t r = 0; r < rows.size(); ++r) {
    std::string line;
    for (size_t i = 0; i < column_count; ++i) {
      const std::string& cell = rows[r][i];
      const std::string pad(widths[i] - DisplayWidth(cell), ' ');
      if (i > 0) line += "  ";
      line += kColumns[i].right_aligned ? pad + cell : cell + pad;
    }
    line.erase(line.find_last_not_of(' ') + 1);
    absl::StrAppend(&out, line, "\n");
    if (r > 0) {
      const v1::Node& node = nodes.nodes(static_cast<int>(r - 1));
      if (ShownHealth(node) != "up") {
        absl::StrAppend(&out, "    ", HealthSince(node, now_unix_ms), "\n");
      }
      if (!node.reachable()) {
        absl::StrAppend(&out, "    error: ", node.error().empty() ? "no answer" : node.error(),
                        "\n");
      }
      if (announcing && !node.announced()) {
        absl::StrAppend(&out,
                        "    not announced in etcd: its process is down, cut off from etcd, or "
                        "started without --etcd\n");
      }
    }
  }
  absl::StrAppend(&out, "replication factor ", nodes.replication_factor(), ", placement version ",
                  nodes.placement_version(), "\n");
  return out;
}

std::string FormatStatus(const v1::StatusResponse& status) {
  std::string out;
  if (!status.has_migration()) {
    out = "no migration has run\n";
  } else {
    const v1::Migration& m = status.migration();
    absl::StrAppend(&out, "migration: ", m.description(), "\n");
    absl::StrAppend(&out, "  state:      ", ToAbsl(MigrationStateName(m.state())), "\n");
    absl::StrAppend(&out, "  progress:   ", m.partitions_done(), "/", m.partitions_total(),
                    " partitions copied (", Percent(CopiedFraction(m)), ")\n");
    absl::StrAppend(&out, "  copied:     ", m.files_copied(), " files (",
                    HumanBytes(m.bytes_copied()), ")\n");
    absl::StrAppend(&out, "  deleted:    ", m.files_deleted(), " surplus copies\n");
    absl::StrAppend(&out, "  placement:  version ", m.from_version(), " → ", m.to_version(), "\n");
    if (m.started_unix_ms() > 0) {
      absl::StrAppend(&out, "  started:    ", UtcTime(m.started_unix_ms()), "\n");
    }
    if (m.finished_unix_ms() > 0) {
      absl::StrAppend(&out, "  finished:   ", UtcTime(m.finished_unix_ms()));
      if (m.started_unix_ms() > 0) {
        absl::StrAppend(&out, " (took ", Duration(m.finished_unix_ms() - m.started_unix_ms()), ")");
      }
      out += "\n";
    }
    if (!m.error().empty()) {
      // A running migration's error is the last one it is retrying after.
      const bool failed = m.state() == v1::MIGRATION_STATE_FAILED;
      absl::StrAppend(&out, failed ? "  error:      " : "  last error: ", m.error(), "\n");
    }
  }
  absl::StrAppend(&out, "cluster: ", status.nodes(), " nodes, replication factor ",
                  status.replication_factor(), ", placement version ", status.placement_version(),
                  "\n");
  if (status.web_servers_size() > 0) {
    std::vector<std::string> servers;
    for (const v1::WebServer& server : status.web_servers()) {
      std::string line = absl::StrCat(server.id(), " (state ", server.state_revision());
      if (server.drained_revision() < server.state_revision()) {
        absl::StrAppend(&line, ", writes under ", server.drained_revision(), " still running");
      }
      line += server.id() == status.migration_runner() ? ", runs migrations)" : ")";
      servers.push_back(std::move(line));
    }
    absl::StrAppend(&out, "web servers: ", absl::StrJoin(servers, ", "), "\n");
  }
  if (status.has_repair()) {
    const v1::RepairStatus& r = status.repair();
    absl::StrAppend(&out, "repair (this web server, since it started):\n");
    absl::StrAppend(&out, "  hints:        ", r.hints_pending(), " pending, ",
                    r.hints_handed_back(), " handed back\n");
    absl::StrAppend(&out, "  repaired:     ", r.files_repaired(), " files (",
                    HumanBytes(r.bytes_repaired()), ")\n");
    absl::StrAppend(&out, "  damaged:      ", r.damaged_reported(), " copies reported, ",
                    r.files_unrecoverable(), " unrecoverable\n");
    absl::StrAppend(&out, "  anti-entropy: ", r.anti_entropy_passes(), " passes");
    if (r.last_anti_entropy_unix_ms() > 0) {
      absl::StrAppend(&out, ", last ended ", UtcTime(r.last_anti_entropy_unix_ms()));
    }
    out += "\n";
    if (!r.last_error().empty()) absl::StrAppend(&out, "  last error:   ", r.last_error(), "\n");
  }
  return out;
}

std::string FormatMigrationDone(std::string_view done_what, const v1::Migration& migration) {
  return absl::StrCat(ToAbsl(done_what), ": ", migration.files_copied(), " files copied (",
                      HumanBytes(migration.bytes_copied()), ") to new owners, ",
                      migration.files_deleted(), " surplus copies deleted");
}

std::string FormatProgressLine(const v1::Migration& migration, int width) {
  constexpr int kMinBar = 10;
  constexpr int kMaxBar = 30;
  const double fraction = CopiedFraction(migration);
  const std::string counts = absl::StrFormat(
      "%u/%u %3d%%  %s, %d files, %s", migration.partitions_done(), migration.partitions_total(),
      static_cast<int>(std::floor(fraction * 100)), MigrationStateName(migration.state()),
      migration.files_copied(), HumanBytes(migration.bytes_copied()));
  const int available = std::max(width, 1);
  const std::string& description = migration.description();
  // Layout: "<description> [<bar>] <counts>".
  const int fixed = static_cast<int>(DisplayWidth(counts)) + 4;
  int bar =
      std::clamp(available - fixed - static_cast<int>(DisplayWidth(description)), kMinBar, kMaxBar);
  const int room_for_description = available - fixed - bar;
  std::string shown_description;
  if (room_for_description >= 8) {
    shown_description = Truncate(description, static_cast<size_t>(room_for_description));
  } else {
    bar = kMinBar;  // No room for the description: keep the figures.
  }
  const int filled = static_cast<int>(std::floor(fraction * bar));
  std::string line =
      absl::StrCat(shown_description, shown_description.empty() ? "" : " ", "[",
                   std::string(filled, '#'), std::string(bar - filled, '.'), "] ", counts);
  return Truncate(line, static_cast<size_t>(available));
}

nlohmann::json NodesToJson(const v1::ListNodesResponse& nodes) {
  nlohmann::json list = nlohmann::json::array();
  for (const v1::Node& node : nodes.nodes()) {
    list.push_back({{"id", node.id()},
                    {"address", node.address()},
                    {"weight", node.weight()},
                    {"state", NodeStateName(node.state())},
                    {"reachable", node.reachable()},
                    {"announced", node.announced()},
                    {"error", node.error()},
                    {"files", node.files()},
                    {"bytes_used", node.bytes_used()},
                    {"free_bytes", node.free_bytes()},
                    {"total_bytes", node.total_bytes()},
                    {"share_of_keyspace", node.share_of_keyspace()},
                    {"target_share_of_keyspace", node.target_share_of_keyspace()},
                    {"health", ShownHealth(node)},
                    {"health_since_unix_ms", node.health_since_unix_ms()},
                    {"hints_pending", node.hints_pending()},
                    {"quarantined", node.quarantined()},
                    {"scrubbed_bytes", node.scrubbed_bytes()}});
  }
  return {{"replication_factor", nodes.replication_factor()},
          {"placement_version", nodes.placement_version()},
          {"nodes", std::move(list)}};
}

nlohmann::json MigrationToJson(const v1::Migration& migration) {
  return {{"state", MigrationStateName(migration.state())},
          {"description", migration.description()},
          {"partitions_total", migration.partitions_total()},
          {"partitions_done", migration.partitions_done()},
          {"files_copied", migration.files_copied()},
          {"bytes_copied", migration.bytes_copied()},
          {"files_deleted", migration.files_deleted()},
          {"error", migration.error()},
          {"started_unix_ms", migration.started_unix_ms()},
          {"finished_unix_ms", migration.finished_unix_ms()},
          {"from_version", migration.from_version()},
          {"to_version", migration.to_version()}};
}

namespace {

nlohmann::json WebServersToJson(const v1::StatusResponse& status) {
  nlohmann::json list = nlohmann::json::array();
  for (const v1::WebServer& server : status.web_servers()) {
    list.push_back({{"id", server.id()},
                    {"state_revision", server.state_revision()},
                    {"drained_revision", server.drained_revision()}});
  }
  return list;
}

nlohmann::json RepairToJson(const v1::RepairStatus& repair) {
  return {{"hints_pending", repair.hints_pending()},
          {"hints_handed_back", repair.hints_handed_back()},
          {"files_repaired", repair.files_repaired()},
          {"bytes_repaired", repair.bytes_repaired()},
          {"damaged_reported", repair.damaged_reported()},
          {"anti_entropy_passes", repair.anti_entropy_passes()},
          {"last_anti_entropy_unix_ms", repair.last_anti_entropy_unix_ms()},
          {"files_unrecoverable", repair.files_unrecoverable()},
          {"last_error", repair.last_error()}};
}

}  // namespace

nlohmann::json StatusToJson(const v1::StatusResponse& status) {
  return {{"migration", status.has_migration() ? MigrationToJson(status.migration()) : nullptr},
          {"replication_factor", status.replication_factor()},
          {"placement_version", status.placement_version()},
          {"nodes", status.nodes()},
          {"web_servers", WebServersToJson(status)},
          {"migration_runner", status.migration_runner()},
          {"repair", status.has_repair() ? RepairToJson(status.repair()) : nullptr}};
}

}  // namespace streamgrid::admin_cli
