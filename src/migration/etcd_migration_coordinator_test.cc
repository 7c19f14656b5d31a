#include "migration/etcd_migration_coordinator.h"

#include <atomic>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cluster/cluster.h"
#include "cluster/cluster_state_follower.h"
#include "cluster/etcd_cluster_state_store.h"
#include "cluster/network_video_content_service.h"
#include "cluster/test_nodes.h"
#include "common/ids.h"
#include "etcd/testing/etcd_test_cluster.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "migration/migrator.h"
#include "storage/test_util.h"

namespace streamgrid {
namespace {

using etcd::testing::SharedEtcdClusterTest;
using storage::testing::Pattern;
using storage::testing::WaitFor;
using ::testing::HasSubstr;
using testing::TestNodes;
using namespace std::chrono_literals;

// A web server of a test: registered in etcd before it loads the shared
// cluster state, following it, with its own content service and migrator.
class WebServer {
 public:
  WebServer(etcd::EtcdClient& client, std::string prefix, std::string id) : store_(client, prefix) {
    auto coordinator = EtcdMigrationCoordinator::Create(
        client, {.server_id = id, .key_prefix = prefix, .lease_ttl = 3s, .poll_interval = 20ms});
    EXPECT_TRUE(coordinator.ok()) << coordinator.status();
    coordinator_ = *std::move(coordinator);
    auto loaded = store_.Load();
    EXPECT_TRUE(loaded.ok() && loaded->has_value());
    cluster_ = std::make_unique<Cluster>(**std::move(loaded));
    content_ = std::make_unique<NetworkVideoContentService>(*cluster_);
    follower_ = std::make_unique<ClusterStateFollower>(*cluster_, store_, client);
    follower_->Start();
    coordinator_->Attach(*cluster_, [this] { follower_->Reload(); });
    migrator_ = std::make_unique<Migrator>(
        *cluster_, store_, MigratorOptions{.retry_backoff = 100ms, .idle_poll = 50ms},
        coordinator_.get());
    migrator_->Start();
  }
  ~WebServer() {
    migrator_->Stop();
    follower_->Stop();
    coordinator_->Stop();
  }

  Cluster& cluster() { return *cluster_; }
  NetworkVideoContentService& content() { return *content_; }
  Migrator& migrator() { return *migrator_; }
  EtcdMigrationCoordinator& coordinator() { return *coordinator_; }

  // This server's entry in the registry, as every server reads it.
  std::optional<RegisteredServer> Entry(const std::string& id) {
    auto servers = coordinator_->Servers();
    if (!servers.ok()) return std::nullopt;
    for (const RegisteredServer& server : *servers) {
      if (server.server_id == id) return server;
    }
    return std::nullopt;
  }

 private:
  EtcdClusterStateStore store_;
  std::unique_ptr<EtcdMigrationCoordinator> coordinator_;
  std::unique_ptr<Cluster> cluster_;
  std::unique_ptr<NetworkVideoContentService> content_;
  std::unique_ptr<ClusterStateFollower> follower_;
  std::unique_ptr<Migrator> migrator_;
};

// Starts one more node, adds it through `server` and waits for the migration
// to end; its final phase (kFailed also when it could not start or finish).
MigrationPhase AddNodeAndWait(WebServer& server, TestNodes& nodes) {
  const int added = nodes.Add();
  auto started =
      server.migrator().AddNode({.id = nodes.id(added), .address = nodes.address(added)});
  EXPECT_TRUE(started.ok()) << started.status();
  if (!started.ok()) return MigrationPhase::kFailed;
  auto over = server.migrator().WaitUntilOver(started->record.to_version,
                                              std::chrono::system_clock::now() + 120s, {});
  EXPECT_TRUE(over.ok()) << over.status();
  if (!over.ok()) return MigrationPhase::kFailed;
  return over->record.phase;
}

class EtcdMigrationCoordinatorTest : public SharedEtcdClusterTest {
 protected:
  void SetUp() override {
    SharedEtcdClusterTest::SetUp();
    client_ = ConnectClient();
    ASSERT_NE(client_, nullptr);
    // Each test its own namespace in the shared etcd.
    prefix_ = absl::StrCat("/coordinator-test-", NewVideoId(), "/");
  }

  // Stores the first cluster state over `nodes`, as the first web server does.
  void CreateCluster(TestNodes& nodes, int replicas) {
    auto placement = Placement::Create(nodes.RingNodes(), replicas);
    ASSERT_TRUE(placement.ok()) << placement.status();
    EtcdClusterStateStore store(*client_, prefix_);
    ASSERT_TRUE(store.Save(ClusterState{.current = *placement}, 0).ok());
  }

  std::unique_ptr<etcd::EtcdClient> client_;
  std::string prefix_;
};

TEST_F(EtcdMigrationCoordinatorTest, AWriteStillOpenOnAnotherServerHoldsTheMigrationBack) {
  TestNodes nodes(3);
  CreateCluster(nodes, 2);
  WebServer a(*client_, prefix_, "a");
  WebServer b(*client_, prefix_, "b");

  // Server b starts writing a file under the placement of three nodes.
  const std::string video = NewVideoId();
  const std::string data = Pattern(300'000, 7);
  auto writer = b.content().OpenWriter(video, "slow.m4s");
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->Append(std::string_view(data).substr(0, 100'000)).ok());

  // Server a adds a fourth node while that write is open.
  const int added = nodes.Add();
  auto started = a.migrator().AddNode({.id = nodes.id(added), .address = nodes.address(added)});
  ASSERT_TRUE(started.ok()) << started.status();
  const uint64_t target_revision = a.cluster().state()->revision;

  // b has the target in force, yet reports its open write as undrained, so no
  // partition is copied: copying now could miss what b is about to commit.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto entry = a.Entry("b");
        return entry && entry->state_revision >= target_revision;
      },
      15s));
  EXPECT_LT(a.Entry("b")->drained_revision, target_revision);
  ASSERT_TRUE(a.migrator().Progress().has_value());
  EXPECT_EQ(a.migrator().Progress()->record.phase, MigrationPhase::kCopying);
  EXPECT_EQ(a.migrator().Progress()->partitions_done, 0u);

  // Once the write is over the migration goes on, and the file b wrote to the
  // old owners only ends up on exactly its new ones.
  ASSERT_TRUE((*writer)->Append(std::string_view(data).substr(100'000)).ok());
  ASSERT_TRUE((*writer)->Commit().ok());
  writer->reset();
  auto over = a.migrator().WaitUntilOver(started->record.to_version,
                                         std::chrono::system_clock::now() + 120s, {});
  ASSERT_TRUE(over.ok()) << over.status();
  EXPECT_EQ(over->record.phase, MigrationPhase::kDone) << over->record.error;
  ASSERT_TRUE(WaitFor(
      [&] { return b.cluster().state()->current.version() == started->record.to_version; }, 15s));
  const std::string key = absl::StrCat(video, "/slow.m4s");
  std::set<std::string> owners;
  for (const std::string& id : a.cluster().state()->current.ReplicaIdsFor(key)) owners.insert(id);
  for (int i = 0; i < nodes.size(); ++i) {
    EXPECT_EQ(nodes.NamesOn(i, video).contains("slow.m4s"), owners.contains(nodes.id(i)))
        << nodes.id(i);
  }
}

TEST_F(EtcdMigrationCoordinatorTest, OneServerRunsMigrationsAndAnotherTakesOverWhenItDies) {
  TestNodes nodes(3);
  CreateCluster(nodes, 2);
  auto a = std::make_unique<WebServer>(*client_, prefix_, "a");
  WebServer b(*client_, prefix_, "b");
  ASSERT_TRUE(a->coordinator().TryBecomeRunner());
  EXPECT_TRUE(a->coordinator().TryBecomeRunner());  // still, and without asking etcd
  EXPECT_FALSE(b.coordinator().TryBecomeRunner());
  auto runner = client_->Get(a->coordinator().RunnerKey());
  ASSERT_TRUE(runner.ok() && runner->has_value());
  EXPECT_EQ((*runner)->value, "a");

  // a hangs: its registration and runner key expire with its lease, and b
  // takes over.
  a->coordinator().AbandonForTesting();
  EXPECT_TRUE(WaitFor([&] { return b.coordinator().TryBecomeRunner(); }, 20s));
  EXPECT_FALSE(b.Entry("a").has_value());
  runner = client_->Get(b.coordinator().RunnerKey());
  ASSERT_TRUE(runner.ok() && runner->has_value());
  EXPECT_EQ((*runner)->value, "b");

  // A membership change started through b is carried out by b.
  EXPECT_EQ(AddNodeAndWait(b, nodes), MigrationPhase::kDone);
}

TEST_F(EtcdMigrationCoordinatorTest, AMigrationStartedOnOneServerIsRunByTheRunner) {
  TestNodes nodes(3);
  CreateCluster(nodes, 2);
  WebServer a(*client_, prefix_, "a");
  ASSERT_TRUE(a.coordinator().TryBecomeRunner());
  WebServer b(*client_, prefix_, "b");
  // b follows the progress a makes, to the end.
  EXPECT_EQ(AddNodeAndWait(b, nodes), MigrationPhase::kDone);
  EXPECT_FALSE(b.coordinator().TryBecomeRunner());
}

TEST_F(EtcdMigrationCoordinatorTest, ALostRegistrationFencesWritesUntilItIsBack) {
  TestNodes nodes(3);
  CreateCluster(nodes, 2);
  WebServer a(*client_, prefix_, "a");
  ASSERT_TRUE(a.content().CheckWritable().ok());
  auto entry = a.Entry("a");
  ASSERT_TRUE(entry.has_value());

  // Its lease is revoked (as when it expired while this server was cut off).
  auto kv = client_->Get(a.coordinator().ServerKey("a"));
  ASSERT_TRUE(kv.ok() && kv->has_value());
  etcd::testing::RevokeLease(*client_, (*kv)->lease);
  // The registration notices at its next refresh, fences writes (what that
  // does is NetworkContentTest.FencedWritesAreRefusedWhileReadsGoOn), registers
  // again and, once it has reloaded the state, lets writes through again.
  ASSERT_TRUE(WaitFor(
      [&] {
        return a.coordinator().registrations_lost() == 1 && a.cluster().WriteFence().ok() &&
               a.Entry("a").has_value();
      },
      20s));
  ASSERT_TRUE(a.Entry("a").has_value());
  auto writer = a.content().OpenWriter(NewVideoId(), "after.m4s");
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->Append("x").ok());
  EXPECT_TRUE((*writer)->Commit().ok());
}

TEST_F(EtcdMigrationCoordinatorTest, AwaitingAServerThatDoesNotDrainTimesOutNamingIt) {
  TestNodes nodes(3);
  CreateCluster(nodes, 2);
  WebServer a(*client_, prefix_, "a");
  WebServer b(*client_, prefix_, "b");
  const uint64_t revision = a.cluster().state()->revision;
  ASSERT_TRUE(
      WaitFor([&] { return a.coordinator().AwaitWritesDrained(revision, 10ms, {}).ok(); }, 15s));
  absl::Status status = a.coordinator().AwaitWritesDrained(revision + 1000, 200ms, {});
  EXPECT_TRUE(absl::IsDeadlineExceeded(status)) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("a (drained"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("b (drained"));
  status = a.coordinator().AwaitWritesDrained(revision + 1000, 60s, [] { return true; });
  EXPECT_TRUE(absl::IsCancelled(status)) << status;
}

}  // namespace
}  // namespace streamgrid
