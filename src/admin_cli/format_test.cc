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
            "ID              ADDRESS         STATE   REACHABLE  FILES     USED      FREE  SHARE  "
            "WEIGHT\n"
            "127.0.0.1:9101  127.0.0.1:9101  active  up          1234  1.5 GiB  10.0 GiB  66.7%  "
            "     1\n"
            "127.0.0.1:9102  127.0.0.1:9102  active  down           -        -         -  66.7%  "
            "     1\n"
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
            "ID   ADDRESS  STATE      REACHABLE  FILES     USED      FREE  SHARE  WEIGHT\n"
            "a:1  a:1      active     up          1234  1.5 GiB  10.0 GiB  50.0%       1\n"
            "b:1  b:1      active     up          1234  1.5 GiB  10.0 GiB  50.0%       1\n"
            "    not announced in etcd: its process is down, cut off from etcd, or started "
            "without --etcd\n"
            "c:1  c:1      available  up          1234  1.5 GiB  10.0 GiB      -       -\n"
            "replication factor 1, placement version 2\n");
  EXPECT_EQ(NodesToJson(nodes)["nodes"][2]["state"], "available");
  EXPECT_EQ(NodesToJson(nodes)["nodes"][2]["announced"], true);
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
