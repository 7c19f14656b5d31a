#include "migration/partition_copier.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cluster/cluster.h"
#include "cluster/test_nodes.h"
#include "common/ids.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/test_util.h"
#include "storage/testing/bit_rot.h"

namespace streamgrid {
namespace {

using storage::testing::Pattern;
using ::testing::HasSubstr;
using testing::TestNodes;

// A cluster of `nodes` (R = 3 so every node owns every partition) and a
// copier over it.
struct Fixture {
  explicit Fixture(TestNodes& nodes)
      : nodes(nodes),
        cluster(ClusterState{.current = *Placement::Create(nodes.RingNodes(), nodes.size())},
                [] {
                  ClusterOptions options;
                  options.client.call_timeout = std::chrono::seconds(5);
                  return options;
                }()),
        copier(cluster, throttle) {}

  absl::StatusOr<CopyOutcome> Copy(std::vector<PartitionCopy> partitions) {
    return copier.Copy(partitions, [](std::chrono::milliseconds) { return true; });
  }

  TestNodes& nodes;
  Cluster cluster;
  Throttle throttle{0};
  PartitionCopier copier;
};

// Stores `data` as video/name on node `i` directly.
void Put(TestNodes& nodes, int i, const std::string& video, const std::string& name,
         const std::string& data) {
  storage::StorageClient client(nodes.address(i));
  ASSERT_TRUE(client.PutBytes(video, name, data).ok());
}

std::string Sha(TestNodes& nodes, int i, const std::string& video, const std::string& name) {
  storage::StorageClient client(nodes.address(i));
  auto stat = client.Stat(video, name);
  return stat.ok() ? stat->sha256 : "";
}

uint32_t PartitionOf(const std::string& video, const std::string& name) {
  return Placement::PartitionOfKey(absl::StrCat(video, "/", name));
}

TEST(PartitionCopierTest, CopiesFromAnyLiveSourceWhenOneIsDead) {
  TestNodes nodes(3);
  Fixture f(nodes);
  const std::string video = NewVideoId();
  Put(nodes, 0, video, "a", Pattern(5000, 1));
  Put(nodes, 1, video, "a", Pattern(5000, 1));
  nodes.Stop(0);
  auto outcome = f.Copy({{.partition = PartitionOf(video, "a"),
                          .sources = {nodes.id(0), nodes.id(1)},
                          .destinations = {nodes.id(2)}}});
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_TRUE(outcome->complete()) << outcome->Describe();
  EXPECT_EQ(outcome->files_copied, 1u);
  EXPECT_EQ(outcome->bytes_copied, 5000u);
  EXPECT_TRUE(outcome->unlisted_sources.contains(nodes.id(0)));
  EXPECT_EQ(Sha(nodes, 2, video, "a"), Sha(nodes, 1, video, "a"));
}

// The same copies relayed through the copier (as for throttled copies and
// nodes that do not pull) as pulled node to node (the default).
TEST(PartitionCopierTest, CopiesTheSameWhetherPulledOrRelayed) {
  for (bool node_to_node : {true, false}) {
    TestNodes nodes(3);
    Fixture f(nodes);
    f.copier.set_node_to_node(node_to_node);
    const std::string video = NewVideoId();
    const std::string data = Pattern(3 * (1 << 20) + 5, 3);
    Put(nodes, 0, video, "big", data);
    Put(nodes, 1, video, "big", data);
    Put(nodes, 0, video, "small", Pattern(10, 4));
    auto outcome = f.Copy({{.partition = PartitionOf(video, "big"),
                            .sources = {nodes.id(0), nodes.id(1)},
                            .destinations = {nodes.id(2)}},
                           {.partition = PartitionOf(video, "small"),
                            .sources = {nodes.id(0)},
                            .destinations = {nodes.id(2)}}});
    ASSERT_TRUE(outcome.ok()) << outcome.status();
    EXPECT_TRUE(outcome->complete()) << outcome->Describe();
    EXPECT_EQ(outcome->files_copied, 2u) << node_to_node;
    EXPECT_EQ(outcome->bytes_copied, data.size() + 10) << node_to_node;
    EXPECT_EQ(Sha(nodes, 2, video, "big"), Sha(nodes, 0, video, "big"));
    EXPECT_EQ(Sha(nodes, 2, video, "small"), Sha(nodes, 0, video, "small"));
  }
}

// Flips one bit of node `i`'s copy of video/name in place, keeping its inode,
// size and mtime (bit rot: only reading the bytes shows it).
void FlipStoredBit(TestNodes& nodes, int i, const std::string& video, const std::string& name,
                   uint64_t offset) {
  storage::testing::FlipBitKeepingMtime(nodes.DataDir(i) / "content" / video / name, offset);
}

// A holder whose copy is damaged on its disk (the pull's source does not hash
// what it sends; the destination checks it): the copy comes from the next
// holder, nothing damaged is stored, and the damaged copy is quarantined.
// With no good holder left, the copy fails as DATA_LOSS naming the holder.
TEST(PartitionCopierTest, ADamagedHolderIsQuarantinedAndTheCopyTakenFromAnother) {
  TestNodes nodes(3);
  Fixture f(nodes);
  const std::string video = NewVideoId();
  const std::string data = Pattern(3 * (1 << 20) + 5, 6);
  Put(nodes, 0, video, "big", data);
  Put(nodes, 1, video, "big", data);
  const std::string sha = Sha(nodes, 1, video, "big");
  FlipStoredBit(nodes, 0, video, "big", (1 << 20) + 3);
  // Node 0 is listed first, so it is the first holder tried.
  auto outcome = f.Copy({{.partition = PartitionOf(video, "big"),
                          .sources = {nodes.id(0), nodes.id(1)},
                          .destinations = {nodes.id(2)}}});
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_TRUE(outcome->complete()) << outcome->Describe();
  EXPECT_EQ(outcome->files_copied, 1u);
  EXPECT_EQ(Sha(nodes, 2, video, "big"), sha);
  storage::StorageClient zero(nodes.address(0));
  EXPECT_TRUE(absl::IsNotFound(zero.Stat(video, "big").status()));
  auto quarantined = zero.ListQuarantined(0);
  ASSERT_TRUE(quarantined.ok()) << quarantined.status();
  ASSERT_EQ(quarantined->copies.size(), 1u);
  EXPECT_EQ(quarantined->copies[0].name(), "big");

  // The only holder damaged: nothing stored on the destination.
  const std::string other = NewVideoId();
  Put(nodes, 0, other, "big", data);
  FlipStoredBit(nodes, 0, other, "big", 5);
  auto failed = f.Copy({{.partition = PartitionOf(other, "big"),
                         .sources = {nodes.id(0)},
                         .destinations = {nodes.id(2)}}});
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_FALSE(failed->complete());
  EXPECT_THAT(failed->Describe(), HasSubstr(nodes.address(0))) << failed->Describe();
  EXPECT_THAT(failed->Describe(), HasSubstr("damaged")) << failed->Describe();
  storage::StorageClient two(nodes.address(2));
  EXPECT_TRUE(absl::IsNotFound(two.Stat(other, "big").status()));
  EXPECT_TRUE(absl::IsNotFound(zero.Stat(other, "big").status()));
}

// Several Copy() calls at once (a migration's overlapping batches) share the
// copier's slots and each completes its own partitions.
TEST(PartitionCopierTest, ConcurrentCopiesOfDisjointPartitionsAllComplete) {
  TestNodes nodes(3);
  Fixture f(nodes);
  f.copier.set_parallelism(2);
  // Four groups of files in distinct partitions, one Copy() per group.
  std::vector<std::vector<PartitionCopy>> groups(4);
  std::set<uint32_t> used;
  std::vector<std::pair<std::string, std::string>> keys;
  for (int i = 0; i < 24; ++i) {
    const std::string video = NewVideoId();
    const std::string name = absl::StrCat("f", i);
    const uint32_t partition = PartitionOf(video, name);
    if (!used.insert(partition).second) continue;
    Put(nodes, 0, video, name, Pattern(2000 + 300 * i, i));
    groups[i % groups.size()].push_back(
        {.partition = partition, .sources = {nodes.id(0)}, .destinations = {nodes.id(2)}});
    keys.emplace_back(video, name);
  }
  std::vector<absl::StatusOr<CopyOutcome>> outcomes(groups.size(), CopyOutcome{});
  {
    std::vector<std::thread> threads;
    for (size_t g = 0; g < groups.size(); ++g) {
      threads.emplace_back([&, g] { outcomes[g] = f.Copy(groups[g]); });
    }
    for (std::thread& t : threads) t.join();
  }
  uint64_t copied = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    ASSERT_TRUE(outcomes[g].ok()) << outcomes[g].status();
    EXPECT_TRUE(outcomes[g]->complete()) << outcomes[g]->Describe();
    EXPECT_EQ(outcomes[g]->files_copied, groups[g].size());
    copied += outcomes[g]->files_copied;
  }
  EXPECT_EQ(copied, keys.size());
  for (const auto& [video, name] : keys) {
    EXPECT_EQ(Sha(nodes, 2, video, name), Sha(nodes, 0, video, name)) << video << "/" << name;
  }
}

// A destination whose pulls the holders refuse (here: a wrong token) still
// gets its copies, relayed, and is relayed to from then on.
TEST(PartitionCopierTest, RelaysToADestinationWhosePullsFail) {
  TestNodes nodes(3, "cluster-secret");
  nodes.SetPullToken(2, "wrong-secret");
  ClusterOptions options;
  options.client.call_timeout = std::chrono::seconds(5);
  options.client.security.token = "cluster-secret";
  Cluster cluster(ClusterState{.current = *Placement::Create(nodes.RingNodes(), nodes.size())},
                  options);
  Throttle throttle(0);
  PartitionCopier copier(cluster, throttle);
  const std::string video = NewVideoId();
  storage::StorageClient client(nodes.address(0), {.security = {.token = "cluster-secret"}});
  std::vector<PartitionCopy> partitions;
  for (const std::string name : {"a", "b"}) {
    ASSERT_TRUE(client.PutBytes(video, name, Pattern(70000, name[0])).ok());
    partitions.push_back({.partition = PartitionOf(video, name),
                          .sources = {nodes.id(0)},
                          .destinations = {nodes.id(2)}});
  }
  auto outcome = copier.Copy(partitions, [](std::chrono::milliseconds) { return true; });
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_TRUE(outcome->complete()) << outcome->Describe();
  EXPECT_EQ(outcome->files_copied, 2u);
  EXPECT_THAT(nodes.NamesOn(2, video), ::testing::ElementsAre("a", "b"));
}

TEST(PartitionCopierTest, NamesThePartitionsWhoseSourcesAreAllDead) {
  TestNodes nodes(3);
  Fixture f(nodes);
  const std::string video = NewVideoId();
  Put(nodes, 0, video, "a", "x");
  nodes.Stop(0);
  nodes.Stop(1);
  const uint32_t partition = PartitionOf(video, "a");
  auto outcome = f.Copy({{.partition = partition,
                          .sources = {nodes.id(0), nodes.id(1)},
                          .destinations = {nodes.id(2)}}});
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_FALSE(outcome->complete());
  ASSERT_TRUE(outcome->unlisted.contains(partition));
  EXPECT_EQ(outcome->unlisted.at(partition), absl::StrCat(nodes.id(0), ", ", nodes.id(1)));
  EXPECT_THAT(outcome->Describe(),
              HasSubstr(absl::StrCat("no live replica to copy from for partitions ", partition)));
  EXPECT_EQ(outcome->files_copied, 0u);
}

TEST(PartitionCopierTest, TheVersionMostOwnersHoldWinsAndReplacesAnother) {
  TestNodes nodes(3);
  Fixture f(nodes);
  const std::string video = NewVideoId();
  Put(nodes, 0, video, "a", Pattern(3000, 1));
  Put(nodes, 1, video, "a", Pattern(3000, 1));
  Put(nodes, 2, video, "a", "a newer but lonely version");
  // Missing on node 2 only: copied there.
  Put(nodes, 0, video, "b", Pattern(100, 2));
  Put(nodes, 1, video, "b", Pattern(100, 2));
  const std::vector<std::string> all = {nodes.id(0), nodes.id(1), nodes.id(2)};
  std::vector<PartitionCopy> copies;
  for (const uint32_t p : std::set<uint32_t>{PartitionOf(video, "a"), PartitionOf(video, "b")}) {
    copies.push_back({.partition = p, .sources = all, .destinations = all});
  }
  auto outcome = f.Copy(copies);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_TRUE(outcome->complete()) << outcome->Describe();
  EXPECT_EQ(outcome->files_copied, 2u);
  EXPECT_EQ(Sha(nodes, 2, video, "a"), Sha(nodes, 0, video, "a"));
  EXPECT_EQ(Sha(nodes, 2, video, "b"), Sha(nodes, 0, video, "b"));
  // Nothing left to do.
  auto again = f.Copy(copies);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->files_copied, 0u);
}

TEST(PartitionCopierTest, ReportsADeadDestination) {
  TestNodes nodes(3);
  Fixture f(nodes);
  const std::string video = NewVideoId();
  Put(nodes, 0, video, "a", "x");
  nodes.Stop(2);
  auto outcome = f.Copy({{.partition = PartitionOf(video, "a"),
                          .sources = {nodes.id(0)},
                          .destinations = {nodes.id(1), nodes.id(2)}}});
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_FALSE(outcome->complete());
  EXPECT_TRUE(outcome->failed_destinations.contains(nodes.id(2)));
  EXPECT_THAT(outcome->Describe(), HasSubstr("cannot copy to " + nodes.id(2)));
  EXPECT_EQ(outcome->files_copied, 1u);  // node 1 got it all the same
  EXPECT_FALSE(Sha(nodes, 1, video, "a").empty());
}

TEST(PartitionCopierTest, DeletesStraysOnlyOnceEveryOwnerHoldsTheFile) {
  TestNodes nodes(3);
  Fixture f(nodes);
  f.copier.set_stray_grace(std::chrono::milliseconds(0));
  const std::string video = NewVideoId();
  Put(nodes, 0, video, "a", "payload");
  Put(nodes, 2, video, "a", "payload");  // a stray: node 2 does not own it
  const PartitionCopy copy{.partition = PartitionOf(video, "a"),
                           .sources = {nodes.id(0), nodes.id(1)},
                           .destinations = {nodes.id(0), nodes.id(1)},
                           .surplus = {nodes.id(2)}};
  // An owner is down: the stray may be standing in for it, so it stays.
  nodes.Stop(1);
  auto outcome = f.Copy({copy});
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(outcome->strays_deleted, 0u);
  EXPECT_FALSE(Sha(nodes, 2, video, "a").empty());
  // Both owners up: node 1 gets its copy, then the stray goes.
  nodes.Start(1);
  f.cluster.MarkSuccess(nodes.id(1));
  f.cluster.ReconnectAll(std::chrono::seconds(5));  // skip gRPC's reconnect back-off
  outcome = f.Copy({copy});
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_TRUE(outcome->complete()) << outcome->Describe();
  EXPECT_EQ(outcome->files_copied, 1u);
  EXPECT_EQ(outcome->strays_deleted, 1u);
  EXPECT_TRUE(Sha(nodes, 2, video, "a").empty());
  EXPECT_FALSE(Sha(nodes, 1, video, "a").empty());
}

TEST(PartitionCopierTest, KeepsYoungStrays) {
  TestNodes nodes(3);
  Fixture f(nodes);  // default grace: minutes
  const std::string video = NewVideoId();
  Put(nodes, 0, video, "a", "payload");
  Put(nodes, 1, video, "a", "payload");
  Put(nodes, 2, video, "a", "payload");
  auto outcome = f.Copy({{.partition = PartitionOf(video, "a"),
                          .sources = {nodes.id(0), nodes.id(1)},
                          .destinations = {nodes.id(0), nodes.id(1)},
                          .surplus = {nodes.id(2)}}});
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(outcome->strays_deleted, 0u);
  EXPECT_FALSE(Sha(nodes, 2, video, "a").empty());
}

TEST(PartitionCopierTest, StopsWhenTheCallerStops) {
  TestNodes nodes(2);
  Fixture f(nodes);
  const std::string video = NewVideoId();
  Put(nodes, 0, video, "a", "x");
  auto outcome = f.copier.Copy({{.partition = PartitionOf(video, "a"),
                                 .sources = {nodes.id(0)},
                                 .destinations = {nodes.id(1)}}},
                               [](std::chrono::milliseconds) { return false; });
  EXPECT_TRUE(absl::IsCancelled(outcome.status())) << outcome.status();
  EXPECT_TRUE(Sha(nodes, 1, video, "a").empty());
}

}  // namespace
}  // namespace streamgrid
