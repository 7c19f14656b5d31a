#include "admin_cli/format.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace streamgrid::admin_cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

v1::Node MakeNode(const std::string& address, v1::NodeState state, double share, double target) {
  v1::Node node;
  node.set_id(address);
  node.set_address(address);
  node.set_weight(1);
  node.set_state(state);
  node.set_reachable(true);
  node.set_files(1234);
  node.set_bytes_used(uint64_t{3} << 29);  // 1.5 GiB
  node.set_free_bytes(uint64_t{10} << 30);
  node.set_total_bytes(uint64_t{20} << 30);
  node.set_share_of_keyspace(share);
  node.set_target_share_of_keyspace(target);
  return node;
}

v1::Migration MakeMigration() {
  v1::Migration migration;
  migration.set_state(v1::MIGRATION_STATE_COPYING);
  migration.set_description("add node 127.0.0.1:9104");
  migration.set_partitions_total(40);
  migration.set_partitions_done(10);
  migration.set_files_copied(123);
  migration.set_bytes_copied(47815066);  // 45.6 MiB
  migration.set_files_deleted(7);
  migration.set_started_unix_ms(1714564800000);  // 2024-05-01 12:00:00 UTC
  migration.set_from_version(3);
  migration.set_to_version(4);
  return migration;
}

TEST(AdminHumanBytesTest, UsesBinaryUnitsWithOneDecimal) {
  EXPECT_EQ(HumanBytes(0), "0 B");
  EXPECT_EQ(HumanBytes(1023), "1023 B");
  EXPECT_EQ(HumanBytes(1024), "1.0 KiB");
  EXPECT_EQ(HumanBytes(uint64_t{3} << 29), "1.5 GiB");
  EXPECT_EQ(HumanBytes(47815066), "45.6 MiB");
  EXPECT_EQ(HumanBytes(1024 * 1024 - 1), "1.0 MiB");  // Not "1024.0 KiB".
  EXPECT_EQ(HumanBytes(UINT64_MAX), "16.0 EiB");
}

TEST(AdminFormatTest, PercentAndNames) {
  EXPECT_EQ(Percent(1.0 / 3), "33.3%");
  EXPECT_EQ(Percent(0.25), "25.0%");
  EXPECT_EQ(NodeStateName(v1::NODE_STATE_JOINING), "joining");
  EXPECT_EQ(MigrationStateName(v1::MIGRATION_STATE_CLEANING), "cleaning");
  EXPECT_EQ(DisplayWidth("a → b"), 5u);
}

TEST(AdminNodeTableTest, AlignsColumnsAndEndsWithTheSummary) {
  v1::ListNodesResponse nodes;
  nodes.set_replication_factor(2);
  nodes.set_placement_version(7);
  *nodes.add_nodes() = MakeNode("127.0.0.1:9101", v1::NODE_STATE_ACTIVE, 2.0 / 3, 0);
  v1::Node down = MakeNode("127.0.0.1:9102", v1::NODE_STATE_ACTIVE, 2.0 / 3, 0);
  down.set_reachable(false);
  down.set_error("connection refused");
  down.set_files(0);
  *nodes.add_nodes() = down;

  EXPECT_EQ(FormatNodeTable(nodes),
            "ID              ADDRESS         STATE   HEALTH  FILES     USED      FREE  SHARE  "
            "WEIGHT\n"
            "127.0.0.1:9101  127.0.0.1:9101  active  up       1234  1.5 GiB  10.0 GiB  66.7%  "
            "     1\n"
            "127.0.0.1:9102  127.0.0.1:9102  active  down        -        -         -  66.7%  "
            "     1\n"
            "    down\n"
            "    error: connection refused\n"
            "replication factor 2, placement version 7\n");
}

TEST(AdminNodeTableTest, ShowsAvailableNodesAndMembersThatDoNotAnnounceThemselves) {
  v1::ListNodesResponse nodes;
  nodes.set_replication_factor(1);
  nodes.set_placement_version(2);
  v1::Node announced = MakeNode("a:1", v1::NODE_STATE_ACTIVE, 0.5, 0.5);
  announced.set_announced(true);
  *nodes.add_nodes() = announced;
  *nodes.add_nodes() = MakeNode("b:1", v1::NODE_STATE_ACTIVE, 0.5, 0.5);
  v1::Node available = MakeNode("c:1", v1::NODE_STATE_AVAILABLE, 0, 0);
  available.set_announced(true);
  available.set_weight(0);
  *nodes.add_nodes() = available;

  EXPECT_EQ(FormatNodeTable(nodes),
            "ID   ADDRESS  STATE      HEALTH  FILES     USED      FREE  SHARE  WEIGHT\n"
            "a:1  a:1      active     up       1234  1.5 GiB  10.0 GiB  50.0%       1\n"
            "b:1  b:1      active     up       1234  1.5 GiB  10.0 GiB  50.0%       1\n"
            "    not announced in etcd: its process is down, cut off from etcd, or started "
            "without --etcd\n"
            "c:1  c:1      available  up       1234  1.5 GiB  10.0 GiB      -       -\n"
            "replication factor 1, placement version 2\n");
  EXPECT_EQ(NodesToJson(nodes)["nodes"][2]["state"], "available");
  EXPECT_EQ(NodesToJson(nodes)["nodes"][2]["announced"], true);
}

TEST(AdminNodeTableTest, ShowsHealthWithSinceWhenAndIntegrityFigures) {
  constexpr int64_t kNow = 1714564800000 + 133'000;  // 2024-05-01 12:02:13 UTC
  v1::ListNodesResponse nodes;
  nodes.set_replication_factor(2);
  nodes.set_placement_version(3);
  v1::Node up = MakeNode("a:1", v1::NODE_STATE_ACTIVE, 0.5, 0.5);
  up.set_health(v1::NODE_HEALTH_UP);
  up.set_health_since_unix_ms(1714564800000 - 3'600'000);
  up.set_quarantined(2);
  up.set_scrubbed_bytes(uint64_t{5} << 20);
  up.set_hints_pending(0);
  *nodes.add_nodes() = up;
  v1::Node suspect = MakeNode("b:1", v1::NODE_STATE_ACTIVE, 0.5, 0.5);
  suspect.set_health(v1::NODE_HEALTH_SUSPECT);
  suspect.set_health_since_unix_ms(kNow - 4'200);
  *nodes.add_nodes() = suspect;
  v1::Node down = MakeNode("c:1", v1::NODE_STATE_ACTIVE, 0.5, 0.5);
  down.set_health(v1::NODE_HEALTH_DOWN);
  down.set_health_since_unix_ms(1714564800000);  // 2m13s before kNow
  down.set_reachable(false);
  down.set_error("connection refused");
  down.set_hints_pending(17);
  *nodes.add_nodes() = down;

  EXPECT_EQ(FormatNodeTable(nodes, kNow),
            "ID   ADDRESS  STATE   HEALTH   FILES     USED      FREE  SHARE  WEIGHT  HINTS  "
            "QUARANTINED  SCRUBBED\n"
            "a:1  a:1      active  up        1234  1.5 GiB  10.0 GiB  50.0%       1      0  "
            "          2   5.0 MiB\n"
            "b:1  b:1      active  suspect   1234  1.5 GiB  10.0 GiB  50.0%       1      0  "
            "          0       0 B\n"
            "    suspect for 4.2s, since 2024-05-01 12:02:08 UTC\n"
            "c:1  c:1      active  down         -        -         -  50.0%       1     17  "
            "          0       0 B\n"
            "    down for 2m13s, since 2024-05-01 12:00:00 UTC\n"
            "    error: connection refused\n"
            "replication factor 2, placement version 3\n");
  nlohmann::json json = NodesToJson(nodes);
  EXPECT_EQ(json["nodes"][2]["health"], "down");
  EXPECT_EQ(json["nodes"][2]["health_since_unix_ms"], 1714564800000);
  EXPECT_EQ(json["nodes"][2]["hints_pending"], 17);
  EXPECT_EQ(json["nodes"][0]["quarantined"], 2);
  EXPECT_EQ(json["nodes"][0]["scrubbed_bytes"], uint64_t{5} << 20);
  EXPECT_EQ(NodeStateName(v1::NODE_STATE_OUT), "out");
}

TEST(AdminStatusTest, ShowsWhatRepairHasDone) {
  v1::StatusResponse status;
  status.set_nodes(3);
  status.set_replication_factor(2);
  status.set_placement_version(3);
  v1::RepairStatus* repair = status.mutable_repair();
  repair->set_hints_pending(3);
  repair->set_hints_handed_back(5);
  repair->set_files_repaired(7);
  repair->set_bytes_repaired(47815066);
  repair->set_damaged_reported(2);
  repair->set_anti_entropy_passes(4);
  repair->set_last_anti_entropy_unix_ms(1714564800000);
  repair->set_files_unrecoverable(1);
  repair->set_last_error("no live replica of v/seg");
  EXPECT_EQ(FormatStatus(status),
            "no migration has run\ncluster: 3 nodes, replication factor 2, placement version 3\n"
            "repair (this web server, since it started):\n"
            "  hints:        3 pending, 5 handed back\n"
            "  repaired:     7 files (45.6 MiB)\n"
            "  damaged:      2 copies reported, 1 unrecoverable\n"
            "  anti-entropy: 4 passes, last ended 2024-05-01 12:00:00 UTC\n"
            "  last error:   no live replica of v/seg\n");
  nlohmann::json json = StatusToJson(status);
  EXPECT_EQ(json["repair"]["files_repaired"], 7);
  EXPECT_EQ(json["repair"]["last_error"], "no live replica of v/seg");
  status.clear_repair();
  EXPECT_TRUE(StatusToJson(status)["repair"].is_null());
}

TEST(AdminNodeTableTest, ShowsTargetSharesDuringAMigration) {
  v1::ListNodesResponse nodes;
  *nodes.add_nodes() = MakeNode("a:1", v1::NODE_STATE_ACTIVE, 1.0 / 3, 0.25);
  *nodes.add_nodes() = MakeNode("d:1", v1::NODE_STATE_JOINING, 0, 0.25);
  const std::string table = FormatNodeTable(nodes);
  EXPECT_THAT(table, HasSubstr("33.3% → 25.0%"));
  EXPECT_THAT(table, HasSubstr(" 0.0% → 25.0%"));  // Right-aligned in its column.
  EXPECT_THAT(table, HasSubstr("joining"));
}

TEST(AdminStatusTest, NamesTheWebServersAndTheMigrationRunner) {
  v1::StatusResponse status;
  status.set_nodes(3);
  status.set_replication_factor(2);
  status.set_placement_version(3);
  v1::WebServer* a = status.add_web_servers();
  a->set_id("a:8080");
  a->set_state_revision(40);
  a->set_drained_revision(40);
  v1::WebServer* b = status.add_web_servers();
  b->set_id("b:8080");
  b->set_state_revision(40);
  b->set_drained_revision(31);
  status.set_migration_runner("a:8080");
  EXPECT_EQ(FormatStatus(status),
            "no migration has run\ncluster: 3 nodes, replication factor 2, placement version 3\n"
            "web servers: a:8080 (state 40, runs migrations), b:8080 (state 40, writes under 31 "
            "still running)\n");
  nlohmann::json json = StatusToJson(status);
  EXPECT_EQ(json["migration_runner"], "a:8080");
  ASSERT_EQ(json["web_servers"].size(), 2u);
  EXPECT_EQ(json["web_servers"][1]["drained_revision"], 31);
}

TEST(AdminStatusTest, DescribesTheMigrationAndTheCluster) {
  v1::StatusResponse status;
  status.set_nodes(3);
  status.set_replication_factor(2);
  status.set_placement_version(3);
  EXPECT_EQ(FormatStatus(status),
            "no migration has run\ncluster: 3 nodes, replication factor 2, placement version 3\n");

  v1::Migration migration = MakeMigration();
  migration.set_state(v1::MIGRATION_STATE_FAILED);
  migration.set_error("node 127.0.0.1:9104 unreachable");
  migration.set_finished_unix_ms(migration.started_unix_ms() + 125000);
  *status.mutable_migration() = migration;
  const std::string text = FormatStatus(status);
  EXPECT_THAT(text, StartsWith("migration: add node 127.0.0.1:9104\n  state:      failed\n"));
  EXPECT_THAT(text, HasSubstr("10/40 partitions copied (25.0%)"));
  EXPECT_THAT(text, HasSubstr("123 files (45.6 MiB)"));
  EXPECT_THAT(text, HasSubstr("started:    2024-05-01 12:00:00 UTC"));
  EXPECT_THAT(text, HasSubstr("finished:   2024-05-01 12:02:05 UTC (took 2m05s)"));
  EXPECT_THAT(text, HasSubstr("error:      node 127.0.0.1:9104 unreachable"));
  EXPECT_THAT(text, HasSubstr("placement:  version 3 → 4"));
}

TEST(AdminMigrationDoneTest, PrintsThePlainFileCount) {
  EXPECT_EQ(FormatMigrationDone("added node 127.0.0.1:9104", MakeMigration()),
            "added node 127.0.0.1:9104: 123 files copied (45.6 MiB) to new owners, 7 surplus "
            "copies deleted");
}

TEST(AdminProgressLineTest, FitsTheWidth) {
  const v1::Migration migration = MakeMigration();
  const std::string line = FormatProgressLine(migration, 79);
  EXPECT_EQ(line,
            "add node 127.0.0.1:9104 [###.........] 10/40  25%  copying, 123 files, 45.6 MiB");
  EXPECT_LE(DisplayWidth(line), 79u);
  EXPECT_THAT(line, Not(HasSubstr("\n")));

  for (int width : {10, 30, 50, 200}) {
    const std::string fitted = FormatProgressLine(migration, width);
    EXPECT_LE(DisplayWidth(fitted), static_cast<size_t>(width)) << fitted;
  }
  EXPECT_THAT(FormatProgressLine(migration, 120),
              StartsWith("add node 127.0.0.1:9104 [#######.......................] 10/40"));
  // Too narrow for the description: the figures stay.
  EXPECT_THAT(FormatProgressLine(migration, 60), StartsWith("[##"));
}

TEST(AdminProgressLineTest, FullWhenCleaning) {
  v1::Migration migration = MakeMigration();
  migration.set_state(v1::MIGRATION_STATE_CLEANING);
  migration.set_partitions_done(40);
  EXPECT_THAT(FormatProgressLine(migration, 100), HasSubstr("##########] 40/40 100%  cleaning"));
}

TEST(AdminJsonTest, HasEveryField) {
  v1::ListNodesResponse nodes;
  nodes.set_replication_factor(2);
  nodes.set_placement_version(7);
  *nodes.add_nodes() = MakeNode("d:1", v1::NODE_STATE_LEAVING, 0.5, 0);
  const nlohmann::json list = NodesToJson(nodes);
  EXPECT_EQ(list["replication_factor"], 2);
  EXPECT_EQ(list["placement_version"], 7);
  ASSERT_EQ(list["nodes"].size(), 1u);
  const nlohmann::json& node = list["nodes"][0];
  EXPECT_EQ(node["state"], "leaving");
  EXPECT_EQ(node["reachable"], true);
  EXPECT_EQ(node["bytes_used"], uint64_t{3} << 29);
  EXPECT_EQ(node["share_of_keyspace"], 0.5);
  for (const char* key : {"id", "address", "weight", "error", "files", "free_bytes", "total_bytes",
                          "target_share_of_keyspace"}) {
    EXPECT_TRUE(node.contains(key)) << key;
  }

  const nlohmann::json migration = MigrationToJson(MakeMigration());
  EXPECT_EQ(migration["state"], "copying");
  EXPECT_EQ(migration["files_copied"], 123);
  EXPECT_EQ(migration["to_version"], 4);
  EXPECT_EQ(migration.size(), 12u);

  v1::StatusResponse status;
  status.set_nodes(3);
  EXPECT_TRUE(StatusToJson(status)["migration"].is_null());
  *status.mutable_migration() = MakeMigration();
  EXPECT_EQ(StatusToJson(status)["migration"]["description"], "add node 127.0.0.1:9104");
  EXPECT_EQ(StatusToJson(status)["nodes"], 3);
}

}  // namespace
}  // namespace streamgrid::admin_cli
