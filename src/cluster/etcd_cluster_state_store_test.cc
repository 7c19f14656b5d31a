#include "cluster/etcd_cluster_state_store.h"

#include <memory>
#include <thread>
#include <vector>

#include "cluster/cluster_setup.h"
#include "etcd/etcd_client.h"
#include "etcd/testing/etcd_test_cluster.h"
#include "gtest/gtest.h"

namespace streamgrid {
namespace {

using etcd::testing::SharedEtcdClusterTest;

Placement ThreeNodes(int replicas = 2) {
  return *Placement::Create({{.id = "a", .address = "127.0.0.1:1"},
                             {.id = "b", .address = "127.0.0.1:2"},
                             {.id = "c", .address = "127.0.0.1:3"}},
                            replicas);
}

class EtcdClusterStateStoreTest : public SharedEtcdClusterTest {
 protected:
  std::unique_ptr<etcd::EtcdClient> Client() {
    auto client = etcd::EtcdClient::Create({.endpoints = cluster_->client_endpoints()});
    EXPECT_TRUE(client.ok()) << client.status();
    return *std::move(client);
  }
};

TEST_F(EtcdClusterStateStoreTest, SavesWithCompareAndSet) {
  auto client = Client();
  EtcdClusterStateStore store(*client, "/cas-test/");
  EXPECT_EQ(store.Load().value(), std::nullopt);

  ClusterState first{.current = ThreeNodes()};
  absl::StatusOr<uint64_t> revision = store.Save(first, 0);
  ASSERT_TRUE(revision.ok()) << revision.status();
  EXPECT_TRUE(absl::IsAborted(store.Save(first, 0).status()));

  ClusterState second = first;
  second.target = *first.current.WithNodeAdded({.id = "d", .address = "127.0.0.1:4"});
  second.migrated_partitions = {1, 2, 3};
  second.migration = MigrationRecord{.description = "add node d", .partitions_total = 9};
  absl::StatusOr<uint64_t> next = store.Save(second, *revision);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_GT(*next, *revision);
  // A writer that read the first revision loses.
  EXPECT_TRUE(absl::IsAborted(store.Save(first, *revision).status()));

  auto loaded = store.Load();
  ASSERT_TRUE(loaded.ok() && loaded->has_value()) << loaded.status();
  EXPECT_EQ((*loaded)->revision, *next);
  EXPECT_EQ((*loaded)->current, second.current);
  EXPECT_EQ((*loaded)->target, second.target);
  EXPECT_EQ((*loaded)->migrated_partitions, second.migrated_partitions);
  EXPECT_EQ((*loaded)->migration, second.migration);
}

TEST_F(EtcdClusterStateStoreTest, ServersStartingTogetherAgreeOnOneCluster) {
  // Each "server" seeds with other flags; exactly one seed wins, all load it.
  std::vector<absl::StatusOr<ClusterState>> states(4, absl::UnknownError("not run"));
  std::vector<std::thread> servers;
  for (int i = 0; i < 4; ++i) {
    servers.emplace_back([&, i] {
      auto client = Client();
      EtcdClusterStateStore store(*client, "/seed-test/");
      std::vector<std::string> addresses = {"127.0.0.1:11", "127.0.0.1:12", "127.0.0.1:13"};
      if (i % 2) addresses.push_back("127.0.0.1:14");
      states[i] = LoadOrCreateClusterState(store, addresses, 2);
    });
  }
  for (auto& t : servers) t.join();
  for (const auto& state : states) {
    ASSERT_TRUE(state.ok()) << state.status();
    EXPECT_EQ(state->current, states[0]->current);
    EXPECT_EQ(state->revision, states[0]->revision);
  }
}

}  // namespace
}  // namespace streamgrid
