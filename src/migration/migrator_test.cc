#include "migration/migrator.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
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
#include "storage/test_util.h"

namespace streamgrid {
namespace {

using storage::testing::Pattern;
using storage::testing::TempDir;
using storage::testing::WaitFor;
using ::testing::HasSubstr;
using testing::TestNodes;

constexpr auto kLongWait = std::chrono::seconds(120);

// A valid video id, the same for the same `n` within a test run.
std::string VideoId(int n) {
  static std::map<int, std::string> ids;
  auto [it, added] = ids.try_emplace(n);
  if (added) it->second = NewVideoId();
  return it->second;
}

ClusterOptions TestClusterOptions() {
  ClusterOptions options;
  options.client.call_timeout = std::chrono::seconds(5);
  options.client.transfer_timeout = std::chrono::seconds(60);
  return options;
}

MigratorOptions FastMigrator() {
  MigratorOptions options;
  options.batch_partitions = 256;
  options.retry_backoff = std::chrono::milliseconds(100);
  options.max_attempts = 3;
  options.probe_timeout = std::chrono::seconds(2);
  return options;
}

// A web server's view of a cluster of TestNodes: the state store, the live
// cluster, the content service over it and a migrator; Reopen() simulates a
// restart of the web server.
class Server {
 public:
  Server(TestNodes& nodes, int replicas, MigratorOptions options = FastMigrator())
      : options_(options) {
    auto store = SqliteClusterStateStore::Open(dir_.path() / "cluster.db");
    EXPECT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    auto placement = Placement::Create(nodes.RingNodes(), replicas);
    EXPECT_TRUE(placement.ok()) << placement.status();
    ClusterState state{.current = *placement};
    auto revision = store_->Save(state, 0);
    EXPECT_TRUE(revision.ok()) << revision.status();
    state.revision = *revision;
    Open(std::move(state));
  }

  void Reopen(MigratorOptions options) {
    migrator_.reset();
    options_ = options;
    auto loaded = store_->Load();
    ASSERT_TRUE(loaded.ok() && loaded->has_value());
    Open(**std::move(loaded));
  }

  Cluster& cluster() { return *cluster_; }
  NetworkVideoContentService& content() { return *content_; }
  Migrator& migrator() { return *migrator_; }
  ClusterStateStore& store() { return *store_; }

  // Stores `count` files of a few KiB over `videos` videos; returns key → data.
  std::map<std::string, std::string> WriteFiles(int videos, int count, size_t size = 3000) {
    std::map<std::string, std::string> files;
    for (int i = 0; i < count; ++i) {
      const std::string video = VideoId(i % videos);
      const std::string name = absl::StrCat("seg-", i, ".m4s");
      std::string data = Pattern(size + i, i);
      auto writer = content_->OpenWriter(video, name);
      EXPECT_TRUE(writer.ok()) << writer.status();
      EXPECT_TRUE((*writer)->Append(data).ok());
      EXPECT_TRUE((*writer)->Commit().ok());
      files[absl::StrCat(video, "/", name)] = std::move(data);
    }
    return files;
  }

  // Reads `key` back through the content service.
  absl::StatusOr<std::string> Read(const std::string& key) {
    const size_t slash = key.find('/');
    auto reader = content_->OpenReader(key.substr(0, slash), key.substr(slash + 1));
    if (!reader.ok()) return reader.status();
    std::string data;
    char buffer[4096];
    while (true) {
      absl::StatusOr<size_t> n = (*reader)->Read(buffer);
      if (!n.ok()) return n.status();
      if (*n == 0) return data;
      data.append(buffer, *n);
    }
  }

 private:
  void Open(ClusterState state) {
    migrator_.reset();
    content_.reset();
    cluster_ = std::make_unique<Cluster>(std::move(state), TestClusterOptions());
    content_ = std::make_unique<NetworkVideoContentService>(*cluster_);
    migrator_ = std::make_unique<Migrator>(*cluster_, *store_, options_);
  }

  TempDir dir_;
  MigratorOptions options_;
  std::unique_ptr<ClusterStateStore> store_;
  std::unique_ptr<Cluster> cluster_;
  std::unique_ptr<NetworkVideoContentService> content_;
  std::unique_ptr<Migrator> migrator_;
};

MigrationProgress WaitDone(Migrator& migrator, uint64_t to_version) {
  auto over = migrator.WaitUntilOver(to_version, std::chrono::system_clock::now() + kLongWait, {});
  EXPECT_TRUE(over.ok()) << over.status();
  return over.ok() ? *over : MigrationProgress{};
}

// Every key of `files` is on exactly the replicas `placement` gives it, and no
// node holds anything else.
void ExpectExactlyOnOwners(TestNodes& nodes, const Placement& placement,
                           const std::map<std::string, std::string>& files) {
  for (int i = 0; i < nodes.size(); ++i) {
    std::set<std::string> expected;
    if (placement.IndexOf(nodes.id(i))) {
      for (const auto& [key, data] : files) {
        for (const std::string& id : placement.ReplicaIdsFor(key)) {
          if (id == nodes.id(i)) expected.insert(key);
        }
      }
    }
    EXPECT_EQ(nodes.KeysOn(i), expected) << "files on " << nodes.id(i);
  }
}

// Every key of `files` is on every replica `placement` gives it (other copies
// may be left, e.g. on a node that was down during a cleanup).
// Nodes in `dead` are not asked.
void ExpectOnOwners(TestNodes& nodes, const Placement& placement,
                    const std::map<std::string, std::string>& files, std::set<int> dead = {}) {
  std::map<std::string, std::set<std::string>> held;
  for (int i = 0; i < nodes.size(); ++i) {
    if (!dead.contains(i)) held[nodes.id(i)] = nodes.KeysOn(i);
  }
  for (const auto& [key, data] : files) {
    for (const std::string& id : placement.ReplicaIdsFor(key)) {
      if (!held.contains(id)) continue;
      EXPECT_TRUE(held[id].contains(key)) << key << " missing on " << id;
    }
  }
}

TEST(MigratorTest, AddNodeMovesExactlyTheFilesItNowOwns) {
  TestNodes nodes(3);
  Server server(nodes, 2);
  const auto files = server.WriteFiles(20, 400);
  server.migrator().Start();
  const int added = nodes.Add();
  auto started =
      server.migrator().AddNode({.id = nodes.id(added), .address = nodes.address(added)});
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(started->record.description, "add node " + nodes.id(added));
  EXPECT_GT(started->record.partitions_total, 0u);

  MigrationProgress done = WaitDone(server.migrator(), started->record.to_version);
  EXPECT_EQ(done.record.phase, MigrationPhase::kDone) << done.record.error;
  std::shared_ptr<const ClusterState> state = server.cluster().state();
  EXPECT_FALSE(state->target);
  EXPECT_FALSE(state->previous);
  EXPECT_EQ(state->current.version(), started->record.to_version);
  ASSERT_TRUE(state->current.IndexOf(nodes.id(added)));

  // Only the new node gained files; each moved file was copied once and its
  // surplus copy deleted.
  const size_t on_new = nodes.KeysOn(added).size();
  EXPECT_GT(on_new, 0u);
  EXPECT_EQ(done.record.files_copied, on_new);
  EXPECT_EQ(done.record.files_deleted, on_new);
  EXPECT_EQ(done.partitions_done, done.record.partitions_total);
  ExpectExactlyOnOwners(nodes, state->current, files);
  for (const auto& [key, data] : files) EXPECT_EQ(server.Read(key).value_or(""), data) << key;

  // The new placement survives a restart of the web server.
  server.Reopen(FastMigrator());
  EXPECT_EQ(server.cluster().state()->current.version(), started->record.to_version);
}

TEST(MigratorTest, RemoveNodeMovesItsFilesToTheOthers) {
  TestNodes nodes(4);
  Server server(nodes, 2);
  const auto files = server.WriteFiles(10, 300);
  server.migrator().Start();
  const size_t on_removed = nodes.KeysOn(1).size();
  auto started = server.migrator().RemoveNode(nodes.id(1));
  ASSERT_TRUE(started.ok()) << started.status();
  MigrationProgress done = WaitDone(server.migrator(), started->record.to_version);
  EXPECT_EQ(done.record.phase, MigrationPhase::kDone) << done.record.error;
  EXPECT_EQ(done.record.files_copied, on_removed);
  EXPECT_EQ(done.record.files_deleted, on_removed);
  EXPECT_FALSE(server.cluster().state()->current.IndexOf(nodes.id(1)));
  ExpectExactlyOnOwners(nodes, server.cluster().state()->current, files);
  for (const auto& [key, data] : files) EXPECT_EQ(server.Read(key).value_or(""), data) << key;
}

TEST(MigratorTest, RefusesBadChanges) {
  TestNodes nodes(3);
  Server server(nodes, 2);
  auto twice = server.migrator().AddNode({.address = nodes.address(0)});
  EXPECT_TRUE(absl::IsAlreadyExists(twice.status())) << twice.status();
  auto same_id = server.migrator().AddNode({.id = nodes.id(1), .address = "127.0.0.1:1"});
  EXPECT_TRUE(absl::IsAlreadyExists(same_id.status())) << same_id.status();
  auto bad = server.migrator().AddNode({.address = "no-port"});
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  // Nothing listens on port 1.
  auto unreachable = server.migrator().AddNode({.address = "127.0.0.1:1"});
  EXPECT_TRUE(absl::IsUnavailable(unreachable.status())) << unreachable.status();
  EXPECT_THAT(unreachable.status().message(), HasSubstr("does not answer"));
  auto unknown = server.migrator().RemoveNode("nosuchnode");
  EXPECT_TRUE(absl::IsNotFound(unknown.status())) << unknown.status();

  Server small(nodes, 3);
  auto too_few = small.migrator().RemoveNode(nodes.id(0));
  EXPECT_TRUE(absl::IsFailedPrecondition(too_few.status())) << too_few.status();
  EXPECT_THAT(too_few.status().message(), HasSubstr("fewer than the 3 replicas"));
  // None of that changed the cluster.
  EXPECT_EQ(server.cluster().state()->current.version(), 1u);
  EXPECT_FALSE(server.migrator().Progress());
}

TEST(MigratorTest, OneChangeAtATime) {
  TestNodes nodes(3);
  Server server(nodes, 2);
  server.WriteFiles(4, 40);
  const int added = nodes.Add();
  // Not started: the migration stays pending.
  auto first = server.migrator().AddNode({.id = nodes.id(added), .address = nodes.address(added)});
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = server.migrator().RemoveNode(nodes.id(0));
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr("in progress"));
  server.migrator().Start();
  EXPECT_EQ(WaitDone(server.migrator(), first->record.to_version).record.phase,
            MigrationPhase::kDone);
  auto third = server.migrator().RemoveNode(nodes.id(0));
  EXPECT_TRUE(third.ok()) << third.status();
}

TEST(MigratorTest, ResumesAfterARestartFromPersistedProgress) {
  TestNodes nodes(3);
  MigratorOptions slow = FastMigrator();
  slow.batch_partitions = 16;
  slow.max_bytes_per_second = 64 * 1024;  // a few files per second
  Server server(nodes, 2, slow);
  const auto files = server.WriteFiles(20, 300, 8000);
  const int added = nodes.Add();
  server.migrator().Start();
  auto started =
      server.migrator().AddNode({.id = nodes.id(added), .address = nodes.address(added)});
  ASSERT_TRUE(started.ok()) << started.status();
  ASSERT_TRUE(WaitFor([&] { return server.cluster().state()->migrated_partitions.size() >= 32; },
                      kLongWait));
  server.migrator().Stop();

  auto stored = server.store().Load();
  ASSERT_TRUE(stored.ok() && stored->has_value());
  const ClusterState& mid = **stored;
  ASSERT_TRUE(mid.target);
  const size_t migrated = mid.migrated_partitions.size();
  EXPECT_GE(migrated, 32u);
  EXPECT_LT(migrated, mid.migration->partitions_total);
  // Reads still work mid-way.
  for (const auto& [key, data] : files) EXPECT_EQ(server.Read(key).value_or(""), data) << key;

  server.Reopen(FastMigrator());
  EXPECT_EQ(server.cluster().state()->migrated_partitions.size(), migrated);
  server.migrator().Start();
  MigrationProgress done = WaitDone(server.migrator(), started->record.to_version);
  EXPECT_EQ(done.record.phase, MigrationPhase::kDone) << done.record.error;
  // Copies made before the restart are neither repeated nor lost from the count.
  EXPECT_EQ(done.record.files_copied, nodes.KeysOn(added).size());
  ExpectExactlyOnOwners(nodes, server.cluster().state()->current, files);
}

// Batches overlap: a batch whose one large file is still being copied does not
// hold up the others, which are recorded as each completes.
TEST(MigratorTest, ABatchWithALargeFileDoesNotHoldUpTheOthers) {
  TestNodes nodes(3);
  MigratorOptions options = FastMigrator();
  options.batch_partitions = 64;
  options.batches_in_flight = 3;
  // Throttled so that the large file takes about 24 s while the few small
  // ones pass in a fraction of that (each may wait behind one of its 512 KiB
  // chunks: half a second).
  options.max_bytes_per_second = 1 << 20;
  Server server(nodes, 2, options);
  auto files = server.WriteFiles(6, 12);
  const int added = nodes.Add();
  const RingNode node{.id = nodes.id(added), .address = nodes.address(added)};
  // A key in the first batch (the first partitions the new node gains, in the
  // order they are copied), so that without overlap it would hold up all others.
  absl::StatusOr<Placement> target = server.cluster().state()->current.WithNodeAdded(node);
  ASSERT_TRUE(target.ok()) << target.status();
  std::set<uint32_t> moved;
  for (const PartitionMove& move : Diff(server.cluster().state()->current, *target)) {
    if (moved.size() < options.batch_partitions) moved.insert(move.partition);
  }
  std::string big_video;
  for (int i = 0; big_video.empty() && i < 10000; ++i) {
    std::string video = NewVideoId();
    if (moved.contains(Placement::PartitionOfKey(video + "/big.mp4"))) big_video = video;
  }
  ASSERT_FALSE(big_video.empty());
  const uint32_t big_partition = Placement::PartitionOfKey(big_video + "/big.mp4");
  {
    std::string data = Pattern(24 << 20, 77);
    auto writer = server.content().OpenWriter(big_video, "big.mp4");
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->Append(data).ok());
    ASSERT_TRUE((*writer)->Commit().ok());
    files[big_video + "/big.mp4"] = std::move(data);
  }

  server.migrator().Start();
  auto started = server.migrator().AddNode(node);
  ASSERT_TRUE(started.ok()) << started.status();
  const size_t total = started->record.partitions_total;
  // Every partition but those of the large file's batch is recorded while
  // that file is still on its way.
  bool others_first = false;
  ASSERT_TRUE(WaitFor(
      [&] {
        std::shared_ptr<const ClusterState> state = server.cluster().state();
        if (!state->target) return true;  // flipped: all done
        if (state->migrated_partitions.contains(big_partition)) return true;
        if (state->migrated_partitions.size() + options.batch_partitions >= total) {
          others_first = true;
          return true;
        }
        return false;
      },
      kLongWait));
  EXPECT_TRUE(others_first);
  MigrationProgress done = WaitDone(server.migrator(), started->record.to_version);
  EXPECT_EQ(done.record.phase, MigrationPhase::kDone) << done.record.error;
  EXPECT_EQ(done.record.files_copied, nodes.KeysOn(added).size());
  ExpectExactlyOnOwners(nodes, server.cluster().state()->current, files);
  for (const auto& [key, data] : files) EXPECT_EQ(server.Read(key).value_or(""), data) << key;
}

TEST(MigratorTest, ReadsAndWritesKeepWorkingDuringAMigration) {
  TestNodes nodes(3);
  MigratorOptions slow = FastMigrator();
  slow.batch_partitions = 32;
  slow.max_bytes_per_second = 256 * 1024;
  Server server(nodes, 2, slow);
  auto files = server.WriteFiles(10, 200, 4000);
  const int added = nodes.Add();
  auto started =
      server.migrator().AddNode({.id = nodes.id(added), .address = nodes.address(added)});
  ASSERT_TRUE(started.ok()) << started.status();
  // Written once the change is published but before any copying: they must
  // reach the new owners through the write path itself.
  std::map<std::string, std::string> written;
  auto write = [&](int i) {
    const std::string name = absl::StrCat("live-", i);
    std::string data = Pattern(1000 + i, 7000 + i);
    auto writer = server.content().OpenWriter(VideoId(999), name);
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->Append(data).ok());
    ASSERT_TRUE((*writer)->Commit().ok());
    written[VideoId(999) + "/" + name] = std::move(data);
  };
  for (int i = 0; i < 30; ++i) write(i);
  server.migrator().Start();

  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::atomic<int> reads{0};
  std::thread reader([&] {
    while (!stop) {
      for (const auto& [key, data] : files) {
        absl::StatusOr<std::string> got = server.Read(key);
        if (!got.ok() || *got != data) ++failures;
        ++reads;
      }
    }
  });
  // And more while the copying runs.
  while (server.migrator().Progress()->record.phase == MigrationPhase::kCopying &&
         written.size() < 400) {
    write(static_cast<int>(written.size()));
  }
  MigrationProgress done = WaitDone(server.migrator(), started->record.to_version);
  stop = true;
  reader.join();
  EXPECT_EQ(done.record.phase, MigrationPhase::kDone) << done.record.error;
  EXPECT_EQ(failures, 0) << "of " << reads << " reads";
  files.insert(written.begin(), written.end());
  ExpectExactlyOnOwners(nodes, server.cluster().state()->current, files);
  for (const auto& [key, data] : files) EXPECT_EQ(server.Read(key).value_or(""), data) << key;
}

TEST(MigratorTest, FailsAfterRepeatedErrorsAndResumes) {
  TestNodes nodes(3);
  Server server(nodes, 2);
  const auto files = server.WriteFiles(10, 100);
  const int added = nodes.Add();
  auto started =
      server.migrator().AddNode({.id = nodes.id(added), .address = nodes.address(added)});
  ASSERT_TRUE(started.ok()) << started.status();
  nodes.Stop(added);  // gone before the first copy
  server.migrator().Start();
  MigrationProgress failed = WaitDone(server.migrator(), started->record.to_version);
  EXPECT_EQ(failed.record.phase, MigrationPhase::kFailed);
  EXPECT_THAT(failed.record.error, HasSubstr(nodes.address(added)));
  // The old placement still serves everything.
  for (const auto& [key, data] : files) EXPECT_EQ(server.Read(key).value_or(""), data) << key;
  auto refused = server.migrator().RemoveNode(nodes.id(0));
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("resume"));

  nodes.Start(added);
  auto resumed = server.migrator().Resume();
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  MigrationProgress done = WaitDone(server.migrator(), started->record.to_version);
  EXPECT_EQ(done.record.phase, MigrationPhase::kDone) << done.record.error;
  ExpectExactlyOnOwners(nodes, server.cluster().state()->current, files);
  EXPECT_TRUE(absl::IsFailedPrecondition(server.migrator().Resume().status()));
}

TEST(MigratorTest, RemovesADeadNodeFromTheSurvivingReplicas) {
  TestNodes nodes(4);
  Server server(nodes, 2);
  const auto files = server.WriteFiles(10, 200);
  nodes.Stop(1);
  server.migrator().Start();
  auto started = server.migrator().RemoveNode(nodes.id(1));
  ASSERT_TRUE(started.ok()) << started.status();
  MigrationProgress done = WaitDone(server.migrator(), started->record.to_version);
  EXPECT_EQ(done.record.phase, MigrationPhase::kDone) << done.record.error;
  EXPECT_GT(done.record.files_copied, 0u);
  const Placement& current = server.cluster().state()->current;
  EXPECT_FALSE(current.IndexOf(nodes.id(1)));
  // Node 1 was dead throughout: it keeps what it had; every owner has its files.
  nodes.Start(1);
  ExpectOnOwners(nodes, current, files);
  for (const auto& [key, data] : files) EXPECT_EQ(server.Read(key).value_or(""), data) << key;
}

TEST(MigratorTest, AddsANodeWhileAnotherIsDown) {
  TestNodes nodes(3);
  Server server(nodes, 2);
  const auto files = server.WriteFiles(10, 200);
  nodes.Stop(0);
  const int added = nodes.Add();
  server.migrator().Start();
  auto started =
      server.migrator().AddNode({.id = nodes.id(added), .address = nodes.address(added)});
  ASSERT_TRUE(started.ok()) << started.status();
  MigrationProgress done = WaitDone(server.migrator(), started->record.to_version);
  EXPECT_EQ(done.record.phase, MigrationPhase::kDone) << done.record.error;
  EXPECT_GT(nodes.KeysOn(added).size(), 0u);
  // Every live owner holds its files; the dead node's cleanup waits for it.
  nodes.Start(0);
  ExpectOnOwners(nodes, server.cluster().state()->current, files);
  for (const auto& [key, data] : files) EXPECT_EQ(server.Read(key).value_or(""), data) << key;
}

TEST(MigratorTest, SaysWhichPartitionsHaveNoLiveReplicaAndResumesWithTheDeadStillDead) {
  TestNodes nodes(4);
  Server server(nodes, 2);
  const auto files = server.WriteFiles(20, 300);
  nodes.Stop(0);
  nodes.Stop(1);
  server.migrator().Start();
  auto started = server.migrator().RemoveNode(nodes.id(0));
  ASSERT_TRUE(started.ok()) << started.status();
  MigrationProgress failed = WaitDone(server.migrator(), started->record.to_version);
  EXPECT_EQ(failed.record.phase, MigrationPhase::kFailed);
  EXPECT_THAT(failed.record.error, HasSubstr("no live replica to copy from for partitions"));
  EXPECT_THAT(failed.record.error, HasSubstr("owners node0, node1"));
  EXPECT_LT(failed.record.error.size(), 2000u) << "short enough to read";

  // Node 1 comes back, node 0 stays dead: the resumed migration finishes.
  nodes.Start(1);
  auto resumed = server.migrator().Resume();
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  MigrationProgress done = WaitDone(server.migrator(), started->record.to_version);
  EXPECT_EQ(done.record.phase, MigrationPhase::kDone) << done.record.error;
  ExpectOnOwners(nodes, server.cluster().state()->current, files, {0});
}

TEST(MigratorTest, ReReplicationHasTheRepairBandwidthLimit) {
  TestNodes nodes(4);
  MigratorOptions options = FastMigrator();
  options.max_bytes_per_second = 0;             // operators' migrations: no limit
  options.repair_bytes_per_second = 32 * 1024;  // re-replication: 32 KiB/s
  Server server(nodes, 2, options);
  server.WriteFiles(10, 40, 8000);
  server.migrator().Start();
  nodes.Stop(2);
  const auto start = std::chrono::steady_clock::now();
  auto out = server.migrator().TakeOut(nodes.id(2));
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_TRUE(IsReReplication(out->record.description));
  MigrationProgress taken = WaitDone(server.migrator(), out->record.to_version);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(taken.record.phase, MigrationPhase::kDone) << taken.record.error;
  // Node 2 held about half of the 320 KB; at 32 KiB/s (a second's burst
  // allowed) that copy cannot take much less than its bytes at the rate.
  const uint64_t bytes = taken.record.bytes_copied;
  ASSERT_GT(bytes, 64u * 1024);
  EXPECT_GE(took, std::chrono::milliseconds(1000 * (bytes - 32 * 1024) / (32 * 1024) - 500))
      << bytes << " bytes";
}

TEST(MigratorTest, TakesOutADownNodeAndPutsItBack) {
  TestNodes nodes(4);
  Server server(nodes, 2);
  const auto files = server.WriteFiles(10, 200);
  server.migrator().Start();
  nodes.Stop(2);
  auto out = server.migrator().TakeOut(nodes.id(2));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->record.description, "take out down node " + nodes.id(2));
  MigrationProgress taken = WaitDone(server.migrator(), out->record.to_version);
  EXPECT_EQ(taken.record.phase, MigrationPhase::kDone) << taken.record.error;
  std::shared_ptr<const ClusterState> state = server.cluster().state();
  ASSERT_EQ(state->out.size(), 1u);
  EXPECT_EQ(state->out[0].node.id, nodes.id(2));
  EXPECT_EQ(state->out[0].node.address, nodes.address(2));
  EXPECT_GT(state->out[0].since_unix_ms, 0);
  ExpectOnOwners(nodes, state->current, files, {2});

  nodes.Start(2);
  auto back = server.migrator().PutBack(nodes.id(2));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->record.description, "put back node " + nodes.id(2));
  MigrationProgress returned = WaitDone(server.migrator(), back->record.to_version);
  EXPECT_EQ(returned.record.phase, MigrationPhase::kDone) << returned.record.error;
  state = server.cluster().state();
  EXPECT_TRUE(state->out.empty());
  ASSERT_TRUE(state->current.IndexOf(nodes.id(2)));
  ExpectOnOwners(nodes, state->current, files);
  // The interim copies on the others are gone again.
  for (int i : {0, 1, 3}) {
    for (const std::string& key : nodes.KeysOn(i)) {
      const auto owners = state->current.ReplicaIdsFor(key);
      EXPECT_NE(std::find(owners.begin(), owners.end(), nodes.id(i)), owners.end())
          << key << " left on " << nodes.id(i);
    }
  }
  EXPECT_TRUE(absl::IsNotFound(server.migrator().PutBack(nodes.id(2)).status()));
}

TEST(MigratorTest, AnOperatorRemovingAnOutNodeForgetsIt) {
  TestNodes nodes(4);
  Server server(nodes, 2);
  server.migrator().Start();
  nodes.Stop(3);
  auto out = server.migrator().TakeOut(nodes.id(3));
  ASSERT_TRUE(out.ok()) << out.status();
  WaitDone(server.migrator(), out->record.to_version);
  auto removed = server.migrator().RemoveNode(nodes.id(3));
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_TRUE(server.cluster().state()->out.empty());
  EXPECT_TRUE(absl::IsNotFound(server.migrator().PutBack(nodes.id(3)).status()));
}

}  // namespace
}  // namespace streamgrid
