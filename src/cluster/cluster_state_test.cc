#include "cluster/cluster_state.h"

#include <thread>
#include <vector>

#include "cluster/cluster_setup.h"
#include "cluster/sqlite_cluster_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/test_util.h"

namespace streamgrid {
namespace {

using storage::testing::TempDir;
using ::testing::ElementsAre;

Placement ThreeNodes(int replication_factor = 2) {
  return *Placement::Create({{.id = "a", .address = "127.0.0.1:1"},
                             {.id = "b", .address = "127.0.0.1:2"},
                             {.id = "c", .address = "127.0.0.1:3"}},
                            replication_factor);
}

TEST(ClusterStateTest, JsonRoundTrip) {
  ClusterState state{.current = ThreeNodes()};
  state.target = *state.current.WithNodeAdded({.id = "d", .address = "127.0.0.1:4"});
  state.migrated_partitions = {0, 7, 4095};
  state.revision = 12;
  auto back = ClusterStateFromJson(ClusterStateToJson(state));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->current == state.current);
  ASSERT_TRUE(back->target.has_value());
  EXPECT_TRUE(*back->target == *state.target);
  EXPECT_EQ(back->migrated_partitions, state.migrated_partitions);
  EXPECT_EQ(back->revision, 12u);

  ClusterState plain{.current = ThreeNodes()};
  auto plain_back = ClusterStateFromJson(ClusterStateToJson(plain));
  ASSERT_TRUE(plain_back.ok());
  EXPECT_FALSE(plain_back->target.has_value());
  EXPECT_TRUE(plain_back->migrated_partitions.empty());
}

TEST(ClusterStateTest, OutNodesRoundTripAndAreOptional) {
  ClusterState state{.current = ThreeNodes()};
  state.out.push_back(
      {.node = {.id = "d", .address = "127.0.0.1:4", .weight = 2}, .since_unix_ms = 1234});
  auto back = ClusterStateFromJson(ClusterStateToJson(state));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->out, state.out);

  // A state written before out nodes existed has none.
  ClusterState plain{.current = ThreeNodes()};
  const std::string json = ClusterStateToJson(plain);
  EXPECT_EQ(json.find("\"out\""), std::string::npos);
  auto plain_back = ClusterStateFromJson(json);
  ASSERT_TRUE(plain_back.ok());
  EXPECT_TRUE(plain_back->out.empty());
}

TEST(ClusterStateTest, RejectsMalformedJson) {
  EXPECT_EQ(ClusterStateFromJson("not json").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ClusterStateFromJson("{}").status().code(), absl::StatusCode::kInvalidArgument);
  ClusterState state{.current = ThreeNodes()};
  std::string json = ClusterStateToJson(state);
  std::string bad = json.substr(0, json.size() - 1) + ",\"migrated_partitions\":[4096]}";
  EXPECT_EQ(ClusterStateFromJson(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SqliteClusterStateStoreTest, CompareAndSet) {
  TempDir dir;
  auto store = SqliteClusterStateStore::Open(dir.path() / "cluster.db");
  ASSERT_TRUE(store.ok()) << store.status();
  auto empty = (*store)->Load();
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->has_value());

  ClusterState state{.current = ThreeNodes()};
  EXPECT_EQ((*store)->Save(state, 5).status().code(), absl::StatusCode::kAborted);
  auto first = (*store)->Save(state, 0);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, 1u);
  EXPECT_EQ((*store)->Save(state, 0).status().code(), absl::StatusCode::kAborted);

  state.target = *state.current.WithNodeRemoved("c");
  auto second = (*store)->Save(state, *first);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, 2u);
  EXPECT_EQ((*store)->Save(state, *first).status().code(), absl::StatusCode::kAborted);

  // Another connection (another process) sees the same state.
  auto other = SqliteClusterStateStore::Open(dir.path() / "cluster.db");
  ASSERT_TRUE(other.ok());
  auto loaded = (*other)->Load();
  ASSERT_TRUE(loaded.ok() && loaded->has_value());
  EXPECT_EQ((*loaded)->revision, 2u);
  EXPECT_TRUE((*loaded)->current == state.current);
  ASSERT_TRUE((*loaded)->target.has_value());
  EXPECT_TRUE(*(*loaded)->target == *state.target);
}

TEST(SqliteClusterStateStoreTest, ConcurrentSavesOfOneRevisionHaveOneWinner) {
  TempDir dir;
  auto a = SqliteClusterStateStore::Open(dir.path() / "cluster.db");
  auto b = SqliteClusterStateStore::Open(dir.path() / "cluster.db");
  ASSERT_TRUE(a.ok() && b.ok());
  ClusterState state{.current = ThreeNodes()};
  std::atomic<int> wins = 0;
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto saved = (i % 2 ? **a : **b).Save(state, 0);
      if (saved.ok()) ++wins;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wins.load(), 1);
}

TEST(ClusterSetupTest, ParsesAddresses) {
  EXPECT_THAT(*ParseNodeAddresses("127.0.0.1:1, 127.0.0.1:2"),
              ElementsAre("127.0.0.1:1", "127.0.0.1:2"));
  EXPECT_FALSE(ParseNodeAddresses("").ok());
  EXPECT_FALSE(ParseNodeAddresses("host").ok());
  EXPECT_FALSE(ParseNodeAddresses("h:1,h:1").ok());
}

TEST(ClusterSetupTest, CreatesOnceThenLoads) {
  TempDir dir;
  auto store = SqliteClusterStateStore::Open(dir.path() / "cluster.db");
  ASSERT_TRUE(store.ok());
  auto created = LoadOrCreateClusterState(**store, {"h:1", "h:2", "h:3"}, 2);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->revision, 1u);
  EXPECT_EQ(created->current.replication_factor(), 2);
  EXPECT_EQ(created->current.nodes().size(), 3u);
  EXPECT_EQ(created->current.nodes()[0].id, "h:1");
  // Other flags later do not change the stored cluster.
  auto loaded = LoadOrCreateClusterState(**store, {"h:9"}, 1);
  ASSERT_TRUE(loaded.ok());
  EXPECT_TRUE(loaded->current == created->current);
  EXPECT_EQ(loaded->revision, 1u);
  // Without addresses: the stored cluster.
  auto joined = LoadOrCreateClusterState(**store, {}, 2);
  ASSERT_TRUE(joined.ok()) << joined.status();
  EXPECT_TRUE(joined->current == created->current);
}

TEST(ClusterSetupTest, JoiningWithoutAddressesNeedsAStoredCluster) {
  TempDir dir;
  auto store = SqliteClusterStateStore::Open(dir.path() / "cluster.db");
  ASSERT_TRUE(store.ok());
  auto joined = LoadOrCreateClusterState(**store, {}, 2);
  EXPECT_TRUE(absl::IsFailedPrecondition(joined.status())) << joined.status();
  EXPECT_THAT(std::string(joined.status().message()), ::testing::HasSubstr("cluster:HOST:PORT"));
  // Nothing was created.
  auto loaded = (*store)->Load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_FALSE(loaded->has_value());
}

}  // namespace
}  // namespace streamgrid
