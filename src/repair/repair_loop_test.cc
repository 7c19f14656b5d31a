#include "repair/repair_loop.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cluster/cluster.h"
#include "cluster/network_video_content_service.h"
#include "cluster/sqlite_cluster_state_store.h"
#include "cluster/test_nodes.h"
#include "common/ids.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "migration/migrator.h"
#include "storage/test_util.h"
#include "storage/testing/bit_rot.h"

namespace streamgrid::repair {
namespace {

using storage::testing::Pattern;
using storage::testing::TempDir;
using storage::testing::WaitFor;
using streamgrid::testing::TestNodes;

constexpr auto kLongWait = std::chrono::seconds(120);

RepairOptions FastRepair() {
  return {.repair_after = std::chrono::milliseconds(0),
          .anti_entropy_interval = std::chrono::milliseconds(0),
          .tick = std::chrono::milliseconds(50),
          .probe_timeout = std::chrono::seconds(2)};
}

// A web server's view of TestNodes: store, cluster, content service, migrator
// and the repair loop.
class Server {
 public:
  Server(TestNodes& nodes, int replicas, RepairOptions options = FastRepair()) {
    auto store = SqliteClusterStateStore::Open(dir_.path() / "cluster.db");
    EXPECT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    ClusterState state{.current = *Placement::Create(nodes.RingNodes(), replicas)};
    state.revision = *store_->Save(state, 0);
    ClusterOptions cluster_options;
    cluster_options.client.call_timeout = std::chrono::seconds(5);
    cluster_options.down_after = std::chrono::milliseconds(300);
    cluster_options.min_backoff = std::chrono::milliseconds(50);
    cluster_ = std::make_unique<Cluster>(std::move(state), cluster_options);
    content_ = std::make_unique<NetworkVideoContentService>(*cluster_);
    migrator_ =
        std::make_unique<Migrator>(*cluster_, *store_,
                                   MigratorOptions{.retry_backoff = std::chrono::milliseconds(100),
                                                   .idle_poll = std::chrono::milliseconds(50)});
    loop_ =
        std::make_unique<RepairLoop>(*cluster_, migrator_->membership(), nullptr, stats_, options);
  }
  ~Server() {
    loop_.reset();
    migrator_.reset();
  }

  Cluster& cluster() { return *cluster_; }
  Migrator& migrator() { return *migrator_; }
  RepairLoop& loop() { return *loop_; }
  RepairStats& stats() { return stats_; }

  std::map<std::string, std::string> WriteFiles(int count) {
    std::map<std::string, std::string> files;
    const std::string video = NewVideoId();
    for (int i = 0; i < count; ++i) {
      const std::string name = absl::StrCat("seg-", i, ".m4s");
      std::string data = Pattern(2000 + i, i);
      auto writer = content_->OpenWriter(video, name);
      EXPECT_TRUE(writer.ok()) << writer.status();
      EXPECT_TRUE((*writer)->Append(data).ok());
      EXPECT_TRUE((*writer)->Commit().ok());
      files[absl::StrCat(video, "/", name)] = std::move(data);
    }
    return files;
  }

 private:
  TempDir dir_;
  RepairStats stats_;
  std::unique_ptr<ClusterStateStore> store_;
  std::unique_ptr<Cluster> cluster_;
  std::unique_ptr<NetworkVideoContentService> content_;
  std::unique_ptr<Migrator> migrator_;
  std::unique_ptr<RepairLoop> loop_;
};

std::pair<std::string, std::string> Split(const std::string& key) {
  const size_t slash = key.find('/');
  return {key.substr(0, slash), key.substr(slash + 1)};
}

// Keys of `files` missing on one of their owners (nodes in `dead` not asked).
std::set<std::string> MissingOnOwners(TestNodes& nodes, const Placement& placement,
                                      const std::map<std::string, std::string>& files,
                                      const std::set<int>& dead = {}) {
  std::map<std::string, std::set<std::string>> held;
  for (int i = 0; i < nodes.size(); ++i) {
    if (!dead.contains(i)) held[nodes.id(i)] = nodes.KeysOn(i);
  }
  std::set<std::string> missing;
  for (const auto& [key, data] : files) {
    for (const std::string& id : placement.ReplicaIdsFor(key)) {
      if (held.contains(id) && !held[id].contains(key)) missing.insert(key + " on " + id);
    }
  }
  return missing;
}

TEST(RepairLoopTest, AntiEntropyRestoresMissingCopies) {
  TestNodes nodes(3);
  Server server(nodes, 2);
  const auto files = server.WriteFiles(60);
  const Placement placement = server.cluster().state()->current;
  // Lose some copies behind the cluster's back.
  int deleted = 0;
  for (const auto& [key, data] : files) {
    if (deleted == 10) break;
    const std::string owner = placement.ReplicaIdsFor(key)[0];
    storage::StorageClient client(nodes.address(nodes.IndexOf(owner)));
    auto [video, name] = Split(key);
    ASSERT_TRUE(client.Delete(video, name).ok());
    ++deleted;
  }
  ASSERT_EQ(MissingOnOwners(nodes, placement, files).size(), 10u);
  ASSERT_TRUE(server.loop().AntiEntropyPass().ok());
  EXPECT_TRUE(MissingOnOwners(nodes, placement, files).empty());
  EXPECT_EQ(server.stats().files_repaired.load(), 10u);
  EXPECT_EQ(server.stats().anti_entropy_passes.load(), 1u);
  EXPECT_GT(server.stats().last_anti_entropy_unix_ms.load(), 0);
  // Nothing left to do: a second pass copies nothing.
  ASSERT_TRUE(server.loop().AntiEntropyPass().ok());
  EXPECT_EQ(server.stats().files_repaired.load(), 10u);
}

TEST(RepairLoopTest, AntiEntropyReplacesACopyTheOtherOwnersDisagreeWith) {
  TestNodes nodes(3);
  Server server(nodes, 3);
  const auto files = server.WriteFiles(5);
  const auto& [key, data] = *files.begin();
  auto [video, name] = Split(key);
  storage::StorageClient client(nodes.address(1));
  ASSERT_TRUE(client.PutBytes(video, name, "something else").ok());
  ASSERT_TRUE(server.loop().AntiEntropyPass().ok());
  auto stat = client.Stat(video, name);
  ASSERT_TRUE(stat.ok()) << stat.status();
  EXPECT_EQ(stat->size, data.size());
  EXPECT_EQ(server.stats().files_repaired.load(), 1u);
}

TEST(RepairLoopTest, RefillsANodeThatComesBackEmptyWithoutAPass) {
  TestNodes nodes(3);
  Server server(nodes, 2);
  const auto files = server.WriteFiles(60);
  const Placement placement = server.cluster().state()->current;
  server.loop().Start();
  // Node 1 loses everything, then is away for a while.
  storage::StorageClient client(nodes.address(1));
  for (const std::string& key : nodes.KeysOn(1)) {
    auto [video, name] = Split(key);
    ASSERT_TRUE(client.Delete(video, name).ok());
  }
  ASSERT_FALSE(MissingOnOwners(nodes, placement, files).empty());
  nodes.Stop(1);
  ASSERT_TRUE(
      WaitFor([&] { return server.cluster().Liveness(nodes.id(1)).liveness != NodeLiveness::kUp; },
              kLongWait));
  nodes.Start(1);
  EXPECT_TRUE(WaitFor([&] { return MissingOnOwners(nodes, placement, files).empty(); }, kLongWait));
  EXPECT_EQ(server.stats().anti_entropy_passes.load(), 0u);
}

TEST(RepairLoopTest, RepairsReportedDamagePromptly) {
  TestNodes nodes(3);
  Server server(nodes, 2);
  const auto files = server.WriteFiles(10);
  const Placement placement = server.cluster().state()->current;
  const auto& [key, data] = *files.begin();
  const std::string owner = placement.ReplicaIdsFor(key)[1];
  auto [video, name] = Split(key);
  storage::StorageClient client(nodes.address(nodes.IndexOf(owner)));
  ASSERT_TRUE(client.Delete(video, name).ok());
  server.loop().Start();
  server.cluster().ReportDamage(
      {.node_id = owner, .video_id = video, .name = name, .reason = "test"});
  EXPECT_TRUE(WaitFor([&] { return client.Stat(video, name).ok(); }, kLongWait));
  EXPECT_EQ(server.stats().damaged_reported.load(), 1u);
}

// Flips a byte of node `i`'s copy of `key` in place, its mtime put back.
void Corrupt(TestNodes& nodes, int i, const std::string& key) {
  auto [video, name] = Split(key);
  storage::testing::FlipBitKeepingMtime(nodes.DataDir(i) / "content" / video / name, 7);
}

// Whether node `i` holds `data` as `key`, read through its verified Get.
bool HoldsIntact(TestNodes& nodes, int i, const std::string& key, const std::string& data) {
  auto [video, name] = Split(key);
  storage::StorageClient client(nodes.address(i));
  std::string got;
  auto file = client.Get(video, name, 0, 0, [&](std::span<const char> chunk) {
    got.append(chunk.data(), chunk.size());
    return absl::OkStatus();
  });
  return file.ok() && got == data;
}

TEST(RepairLoopTest, RepairsCopiesTheNodesQuarantinedWithoutAPassOrAReport) {
  TestNodes nodes(3);
  Server server(nodes, 2);  // no anti-entropy pass
  const auto files = server.WriteFiles(10);
  const Placement placement = server.cluster().state()->current;
  // Started first: whenever the loop first reads a node's log, it replays
  // what the node keeps.
  server.loop().Start();

  // Damage three copies on their first owners; a direct read finds each and
  // the node quarantines it (no damage report reaches the cluster).
  std::vector<std::pair<int, std::string>> damaged;
  for (const auto& [key, data] : files) {
    if (damaged.size() == 3) break;
    const int owner = nodes.IndexOf(placement.ReplicaIdsFor(key)[0]);
    Corrupt(nodes, owner, key);
    ASSERT_FALSE(HoldsIntact(nodes, owner, key, data)) << key;
    damaged.emplace_back(owner, key);
  }
  for (const auto& [owner, key] : damaged) {
    EXPECT_TRUE(WaitFor([&] { return HoldsIntact(nodes, owner, key, files.at(key)); }, kLongWait))
        << key << " on " << nodes.id(owner);
  }
  EXPECT_EQ(server.stats().damaged_reported.load(), 3u);
  // Counted once the copier's batch returns, just after the copies land.
  EXPECT_TRUE(WaitFor([&] { return server.stats().files_repaired.load() >= 3u; }, kLongWait));
  EXPECT_EQ(server.stats().anti_entropy_passes.load(), 0u);
  EXPECT_TRUE(MissingOnOwners(nodes, placement, files).empty());
}

TEST(RepairLoopTest, RefillsANodeThatRestartedBetweenTwoProbes) {
  TestNodes nodes(3);
  RepairOptions options = FastRepair();
  options.tick = std::chrono::milliseconds(1000);  // a restart fits between two probes
  Server server(nodes, 2, options);
  const auto files = server.WriteFiles(30);
  const Placement placement = server.cluster().state()->current;
  server.loop().Start();
  // The loop must have seen node 1's first instance.
  ASSERT_TRUE(WaitFor([&] { return !server.loop().InstanceSeen(nodes.id(1)).empty(); }, kLongWait));
  // Node 1 loses its files and restarts at once, most likely between two
  // probes: its new instance id tells the loop (its uptime barely differs).
  storage::StorageClient client(nodes.address(1));
  for (const std::string& key : nodes.KeysOn(1)) {
    auto [video, name] = Split(key);
    ASSERT_TRUE(client.Delete(video, name).ok());
  }
  nodes.Stop(1);
  nodes.Start(1);
  EXPECT_TRUE(WaitFor([&] { return MissingOnOwners(nodes, placement, files).empty(); }, kLongWait));
  EXPECT_EQ(server.stats().anti_entropy_passes.load(), 0u);
}

TEST(RepairLoopTest, TakesOutANodeDownTooLongAndPutsItBackWhenItReturns) {
  TestNodes nodes(4);
  RepairOptions options = FastRepair();
  options.repair_after = std::chrono::milliseconds(300);
  Server server(nodes, 2, options);
  const auto files = server.WriteFiles(100);
  server.migrator().Start();
  server.loop().Start();
  nodes.Stop(3);
  // Out, and its share re-replicated from the survivors.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto state = server.cluster().state();
        return state->out.size() == 1 && !state->target && !state->previous;
      },
      kLongWait));
  auto state = server.cluster().state();
  EXPECT_EQ(state->out[0].node.id, nodes.id(3));
  EXPECT_FALSE(state->current.IndexOf(nodes.id(3)));
  EXPECT_EQ(state->migration->phase, MigrationPhase::kDone) << state->migration->error;
  EXPECT_TRUE(MissingOnOwners(nodes, state->current, files, {3}).empty());

  // Back: put back in, and the interim copies removed again.
  nodes.Start(3);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto s = server.cluster().state();
        return s->out.empty() && s->migration->phase == MigrationPhase::kDone;
      },
      kLongWait));
  state = server.cluster().state();
  EXPECT_EQ(state->migration->description, "put back node " + nodes.id(3));
  EXPECT_TRUE(state->current.IndexOf(nodes.id(3)));
  EXPECT_TRUE(MissingOnOwners(nodes, state->current, files).empty());
  for (int i = 0; i < 3; ++i) {
    for (const std::string& key : nodes.KeysOn(i)) {
      const auto owners = state->current.ReplicaIdsFor(key);
      EXPECT_NE(std::find(owners.begin(), owners.end(), nodes.id(i)), owners.end())
          << key << " left on " << nodes.id(i);
    }
  }
}

TEST(RepairLoopTest, StopsPromptly) {
  TestNodes nodes(3);
  RepairOptions options = FastRepair();
  options.anti_entropy_interval = std::chrono::milliseconds(1);
  Server server(nodes, 2, options);
  server.WriteFiles(20);
  server.loop().Start();
  ASSERT_TRUE(WaitFor([&] { return server.stats().anti_entropy_passes.load() > 0; }, kLongWait));
  const auto before = std::chrono::steady_clock::now();
  server.loop().Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(5));
}

}  // namespace
}  // namespace streamgrid::repair
