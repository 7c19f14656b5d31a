#include "cluster/network_video_content_service.h"

#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cluster/cluster.h"
#include "cluster/test_cluster_options.h"
#include "cluster/test_nodes.h"
#include "common/ids.h"
#include "content/video_content_service_conformance.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/storage_client.h"
#include "storage/storage_engine.h"
#include "storage/storage_service.h"
#include "storage/test_util.h"

namespace streamgrid {
namespace {

using storage::StorageEngine;
using storage::StorageServer;
using storage::testing::TempDir;
using ::testing::IsEmpty;
using testing::TestNodes;

// Health marks must not expire while a test runs, however loaded the machine:
// the tests assert them. A marked node is only tried last, never skipped.
ClusterOptions FastOptions() { return testing::FastClusterOptions(std::chrono::minutes(10)); }

class ClusterHarness : public ContentServiceHarness {
 public:
  ClusterHarness()
      : nodes_(3),
        cluster_(ClusterState{.current = *Placement::Create(nodes_.RingNodes(), 2)}, FastOptions()),
        service_(cluster_) {}
  VideoContentService& service() override { return service_; }

 private:
  TestNodes nodes_;
  Cluster cluster_;
  NetworkVideoContentService service_;
};

INSTANTIATE_TEST_SUITE_P(Cluster, VideoContentServiceConformanceTest,
                         ::testing::Values(ContentServiceFactory{
                             "Cluster3R2", [] { return std::make_unique<ClusterHarness>(); }}),
                         ContentServiceFactoryName);

class NetworkContentTest : public ::testing::Test {
 protected:
  NetworkContentTest()
      : nodes_(3),
        cluster_(ClusterState{.current = *Placement::Create(nodes_.RingNodes(), 2)}, FastOptions()),
        service_(cluster_) {}

  std::set<std::string> ReplicaIds(const Placement& placement, const std::string& video_id,
                                   const std::string& name) {
    auto ids = placement.ReplicaIdsFor(video_id + "/" + name);
    return {ids.begin(), ids.end()};
  }

  TestNodes nodes_;
  Cluster cluster_;
  NetworkVideoContentService service_;
};

TEST_F(NetworkContentTest, EachFileIsOnExactlyItsReplicas) {
  const std::string id = NewVideoId();
  for (int f = 0; f < 30; ++f) {
    auto info = WriteContent(service_, id, absl::StrCat("seg-", f, ".m4s"), TestBytes(1000 + f, f));
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->etag.front(), '"');
    EXPECT_EQ(info->etag.size(), 66u);  // quoted SHA-256
  }
  std::vector<std::set<std::string>> on_node;
  for (int i = 0; i < nodes_.size(); ++i) on_node.push_back(nodes_.NamesOn(i, id));
  const Placement& placement = cluster_.state()->current;
  for (int f = 0; f < 30; ++f) {
    const std::string name = absl::StrCat("seg-", f, ".m4s");
    std::set<std::string> holders;
    for (int i = 0; i < nodes_.size(); ++i) {
      if (on_node[i].contains(name)) holders.insert(nodes_.id(i));
    }
    EXPECT_EQ(holders, ReplicaIds(placement, id, name)) << name;
  }
  // Every node got some: the files of one video spread over the ring.
  for (const auto& names : on_node) EXPECT_FALSE(names.empty());
  EXPECT_EQ(service_.List(id)->size(), 30u);
}

TEST_F(NetworkContentTest, ReadsSurviveOneStoppedNode) {
  const std::string id = NewVideoId();
  std::map<std::string, std::string> files;
  for (int f = 0; f < 20; ++f) {
    const std::string name = absl::StrCat("f", f);
    files[name] = TestBytes(20'000 + f, 100 + f);
    ASSERT_TRUE(WriteContent(service_, id, name, files[name]).ok());
  }
  nodes_.Stop(1);
  for (const auto& [name, data] : files) {
    auto read = ReadContent(service_, id, name);
    ASSERT_TRUE(read.ok()) << name << ": " << read.status();
    EXPECT_TRUE(*read == data) << name;
    auto stat = service_.Stat(id, name);
    ASSERT_TRUE(stat.ok()) << stat.status();
    EXPECT_EQ(stat->size, data.size());
    EXPECT_EQ(ReadContent(service_, id, name, 10, 100).value_or("error"), data.substr(10, 100));
  }
  EXPECT_EQ(service_.List(id)->size(), files.size());
  EXPECT_EQ(service_.Stat(id, "missing").status().code(), absl::StatusCode::kNotFound);
  // The stopped node is now marked, so it is tried last.
  EXPECT_FALSE(cluster_.IsHealthy(nodes_.id(1)));
  // Deleting while a node is down must not silently leave copies behind.
  EXPECT_EQ(service_.DeleteVideo(id).code(), absl::StatusCode::kUnavailable);
}

TEST_F(NetworkContentTest, FencedWritesAreRefusedWhileReadsGoOn) {
  const std::string id = NewVideoId();
  ASSERT_TRUE(WriteContent(service_, id, "before", "data").ok());
  // A writer opened before the fence may finish.
  auto open = service_.OpenWriter(id, "open");
  ASSERT_TRUE(open.ok()) << open.status();

  cluster_.FenceWrites("cut off from etcd");
  EXPECT_EQ(cluster_.WriteFence().code(), absl::StatusCode::kUnavailable);
  auto refused = service_.OpenWriter(id, "during");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(refused.status().message(), "cut off from etcd");
  EXPECT_EQ(service_.CheckWritable().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReadContent(service_, id, "before").value_or("error"), "data");
  ASSERT_TRUE((*open)->Append("x").ok());
  EXPECT_TRUE((*open)->Commit().ok());

  cluster_.UnfenceWrites();
  EXPECT_TRUE(cluster_.WriteFence().ok());
  EXPECT_TRUE(service_.CheckWritable().ok());
  EXPECT_TRUE(WriteContent(service_, id, "after", "data").ok());
}

TEST_F(NetworkContentTest, NoReplicaUpIsUnavailable) {
  const std::string id = NewVideoId();
  ASSERT_TRUE(WriteContent(service_, id, "f", "data").ok());
  for (int i = 0; i < nodes_.size(); ++i) nodes_.Stop(i);
  auto read = service_.OpenReader(id, "f");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(read.status().message()), ::testing::HasSubstr("no storage node"));
  EXPECT_EQ(service_.Stat(id, "f").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(service_.List(id).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(NetworkContentTest, ReaderFailsOverMidStream) {
  const std::string id = NewVideoId();
  // Far more than gRPC's flow-control windows can hold, so stopping the node
  // really cuts the stream instead of leaving the rest already buffered.
  const std::string data = TestBytes(48 * 1024 * 1024, 7);
  ASSERT_TRUE(WriteContent(service_, id, "original", data, 256 * 1024).ok());
  const std::string first = cluster_.ReadNodes(id, "original")[0].id;

  auto reader = service_.OpenReader(id, "original", 1000);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::string read;
  std::vector<char> buffer(64 * 1024);
  while (read.size() < 512 * 1024) {
    auto n = (*reader)->Read(buffer);
    ASSERT_TRUE(n.ok() && *n > 0);
    read.append(buffer.data(), *n);
  }
  nodes_.Stop(nodes_.IndexOf(first));  // cancels the stream the reader is on
  while (true) {
    auto n = (*reader)->Read(buffer);
    ASSERT_TRUE(n.ok()) << n.status();
    if (*n == 0) break;
    read.append(buffer.data(), *n);
  }
  EXPECT_EQ(read.size(), data.size() - 1000);
  EXPECT_TRUE(read == data.substr(1000));
  EXPECT_FALSE(cluster_.IsHealthy(first));
}

TEST_F(NetworkContentTest, ASlowReaderHoldsNoNodeStream) {
  // Small pieces, so a modest file takes many of them.
  NetworkVideoContentService service(cluster_, std::chrono::seconds(2), 64 * 1024);
  const std::string id = NewVideoId();
  const std::string data = TestBytes(1'000'000, 9);
  ASSERT_TRUE(WriteContent(service, id, "original", data).ok());
  for (uint64_t offset : {uint64_t{0}, uint64_t{12'345}}) {
    auto reader = service.OpenReader(id, "original", offset);
    ASSERT_TRUE(reader.ok()) << reader.status();
    EXPECT_EQ((*reader)->info().size, data.size());
    std::vector<char> buffer(10'000);
    std::string read;
    auto n = (*reader)->Read(buffer);
    ASSERT_TRUE(n.ok() && *n > 0);
    read.append(buffer.data(), *n);
    // The reader stalls here, as a slow HTTP client would make it: no node
    // keeps a stream open for it meanwhile.
    for (int i = 0; i < nodes_.size(); ++i) EXPECT_EQ(nodes_.OpenGetStreams(i), 0) << i;
    while (true) {
      n = (*reader)->Read(buffer);
      ASSERT_TRUE(n.ok()) << n.status();
      if (*n == 0) break;
      read.append(buffer.data(), *n);
    }
    EXPECT_TRUE(read == data.substr(offset)) << offset;
  }
  // A bounded range ends where it should, even inside a piece.
  EXPECT_EQ(ReadContent(service, id, "original", 70'000, 100'000).value_or("error"),
            data.substr(70'000, 100'000));
}

// The hints node `i` holds, as "video_id/name>intended_node".
std::set<std::string> HintsOn(TestNodes& nodes, int i) {
  storage::StorageClient client(nodes.address(i));
  std::set<std::string> hints;
  std::string token;
  do {
    auto page = client.ListHints("", token);
    if (!page.ok()) throw std::runtime_error(page.status().ToString());
    for (const auto& h : page->hints) {
      hints.insert(absl::StrCat(h.video_id, "/", h.name, ">", h.intended_node));
    }
    token = page->next_page_token;
  } while (!token.empty());
  return hints;
}

TEST_F(NetworkContentTest, AStandInTakesTheCopyOfAnOwnerThatIsDown) {
  nodes_.Stop(2);
  EXPECT_TRUE(service_.CheckWritable().ok());
  const std::string id = NewVideoId();
  std::set<std::string> want_hints;
  for (int f = 0; f < 12; ++f) {
    const std::string name = absl::StrCat("f", f);
    const std::string data = TestBytes(300'000, f);
    auto info = WriteContent(service_, id, name, data, 64 * 1024);
    ASSERT_TRUE(info.ok()) << name << ": " << info.status();
    // Two copies on the two live nodes whatever the owners; the copy meant
    // for node2 sits on the other live node with a hint naming node2.
    EXPECT_TRUE(nodes_.NamesOn(0, id).contains(name)) << name;
    EXPECT_TRUE(nodes_.NamesOn(1, id).contains(name)) << name;
    const std::set<std::string> owners = ReplicaIds(cluster_.state()->current, id, name);
    if (owners.contains(nodes_.id(2))) {
      const int stand_in = owners.contains(nodes_.id(0)) ? 1 : 0;
      want_hints.insert(absl::StrCat(id, "/", name, ">", nodes_.id(2)));
      EXPECT_TRUE(HintsOn(nodes_, stand_in).contains(absl::StrCat(id, "/", name, ">node2")));
    }
    EXPECT_EQ(ReadContent(service_, id, name).value_or("error"), data);
  }
  ASSERT_FALSE(want_hints.empty());
  std::set<std::string> hints = HintsOn(nodes_, 0);
  for (const std::string& h : HintsOn(nodes_, 1)) hints.insert(h);
  EXPECT_EQ(hints, want_hints);
}

TEST_F(NetworkContentTest, AStandInsCopyIsReadWhenNoOwnerHasOne) {
  // node2 is down while the file is written: its copy goes to the stand-in.
  nodes_.Stop(2);
  const std::string id = NewVideoId();
  std::string name;
  for (int f = 0; name.empty(); ++f) {
    const std::string candidate = absl::StrCat("s", f);
    const auto owners = ReplicaIds(cluster_.state()->current, id, candidate);
    if (owners.contains(nodes_.id(2)) && owners.contains(nodes_.id(0))) name = candidate;
  }
  const std::string data = TestBytes(200'000, 3);
  ASSERT_TRUE(WriteContent(service_, id, name, data, 64 * 1024).ok());
  ASSERT_TRUE(nodes_.NamesOn(1, id).contains(name));
  // node2 is back (empty of it: not handed back yet) and the other owner is
  // down: only the stand-in node1 holds a copy.
  nodes_.Start(2);
  nodes_.Stop(0);
  cluster_.MarkSuccess(nodes_.id(2));
  EXPECT_EQ(ReadContent(service_, id, name).value_or("error"), data);
  auto info = service_.Stat(id, name);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->size, data.size());
}

TEST_F(NetworkContentTest, DeleteRemovesAStandInsCopyAndItsHint) {
  nodes_.Stop(2);
  const std::string id = NewVideoId();
  std::string name;
  for (int f = 0; name.empty(); ++f) {
    std::string candidate = absl::StrCat("h", f);
    if (ReplicaIds(cluster_.state()->current, id, candidate).contains(nodes_.id(2))) {
      name = candidate;
    }
  }
  ASSERT_TRUE(WriteContent(service_, id, name, "hinted").ok());
  nodes_.Start(2);
  // Until every owner answered (the restarted one may take a moment); a retry
  // after a partial delete finds nothing left.
  ASSERT_TRUE(storage::testing::WaitFor(
      [&] {
        absl::Status s = service_.Delete(id, name);
        return s.ok() || absl::IsNotFound(s);
      },
      std::chrono::seconds(30)));
  for (int i = 0; i < nodes_.size(); ++i) {
    EXPECT_FALSE(nodes_.NamesOn(i, id).contains(name)) << i;
    EXPECT_THAT(HintsOn(nodes_, i), IsEmpty()) << i;
  }
}

TEST_F(NetworkContentTest, FewerLiveNodesThanCopiesIsUnavailableAndLeavesNothing) {
  nodes_.Stop(1);
  nodes_.Stop(2);
  EXPECT_EQ(service_.CheckWritable().code(), absl::StatusCode::kUnavailable);
  const std::string id = NewVideoId();
  for (int f = 0; f < 4; ++f) {
    auto info = WriteContent(service_, id, absl::StrCat("f", f), TestBytes(1000, f));
    EXPECT_EQ(info.status().code(), absl::StatusCode::kUnavailable) << info.status();
  }
  EXPECT_THAT(nodes_.NamesOn(0, id), IsEmpty());
  EXPECT_THAT(HintsOn(nodes_, 0), IsEmpty());
}

TEST_F(NetworkContentTest, AReplicaDyingMidWriteFailsItAndARetryUsesAStandIn) {
  const std::string id = NewVideoId();
  std::string name;
  for (int f = 0; name.empty(); ++f) {
    std::string candidate = absl::StrCat("g", f);
    auto replicas = ReplicaIds(cluster_.state()->current, id, candidate);
    if (replicas.contains(nodes_.id(0)) && replicas.contains(nodes_.id(1))) name = candidate;
  }
  auto writer = service_.OpenWriter(id, name);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->Append(TestBytes(2 << 20, 1)).ok());
  nodes_.Stop(0);
  absl::Status status = (*writer)->Append(TestBytes(2 << 20, 2));
  if (status.ok()) status = (*writer)->Commit().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  writer->reset();
  EXPECT_FALSE(nodes_.NamesOn(1, id).contains(name));
  EXPECT_FALSE(nodes_.NamesOn(2, id).contains(name));

  // What the callers that store files do: write again from their own copy.
  const std::string data = TestBytes(4 << 20, 3);
  auto info = WriteContent(service_, id, name, data, 256 * 1024);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(nodes_.NamesOn(1, id).contains(name));
  EXPECT_TRUE(nodes_.NamesOn(2, id).contains(name));
  EXPECT_EQ(HintsOn(nodes_, 2), (std::set<std::string>{absl::StrCat(id, "/", name, ">node0")}));
  EXPECT_EQ(ReadContent(service_, id, name).value_or("error"), data);
}

TEST_F(NetworkContentTest, PlannedStandInsAreEveryNodeButTheOwners) {
  TestNodes extra(1);
  const std::string id = NewVideoId();
  for (bool migrating : {false, true}) {
    if (migrating) {
      ClusterState state = *cluster_.state();
      state.target = *state.current.WithNodeAdded({.id = "extra", .address = extra.address(0)});
      cluster_.Update(state);
    }
    for (int f = 0; f < 20; ++f) {
      const std::string name = absl::StrCat("seg-", f);
      Cluster::WritePlan plan = cluster_.PlanWrite(id, name);
      std::set<std::string> owners, stand_ins;
      for (const ClusterNode& n : plan.nodes) owners.insert(n.id);
      for (const ClusterNode& n : plan.stand_ins) {
        EXPECT_FALSE(owners.contains(n.id)) << n.id;
        EXPECT_TRUE(stand_ins.insert(n.id).second) << n.id;
      }
      EXPECT_EQ(owners.size() + stand_ins.size(), migrating ? 4u : 3u) << name;
    }
  }
}

TEST(HandoffOrderTest, EveryOtherNodeOnceStartingWithTheNextPartitions) {
  std::vector<RingNode> nodes;
  for (int i = 0; i < 6; ++i) nodes.push_back({.id = absl::StrCat("n", i), .address = "x"});
  const Placement placement = *Placement::Create(nodes, 2);
  for (int k = 0; k < 50; ++k) {
    const std::string key = absl::StrCat("01hx5v0000000000000000000a/seg-", k);
    const std::vector<std::string> owners = placement.ReplicaIdsFor(key);
    const std::vector<std::string> order = Cluster::HandoffOrder(placement, key, owners);
    ASSERT_EQ(order.size(), 4u) << key;
    std::set<std::string> distinct(order.begin(), order.end());
    EXPECT_EQ(distinct.size(), 4u);
    for (const std::string& owner : owners) EXPECT_FALSE(distinct.contains(owner));
    // The first stand-in is the first node of the following partitions' rows
    // that is not an owner.
    std::string first;
    for (uint32_t p = Placement::PartitionOfKey(key) + 1; first.empty(); ++p) {
      for (NodeIndex index : placement.ReplicasForPartition(p % Placement::kPartitionCount)) {
        const std::string& id = placement.node(index).id;
        if (first.empty() && std::find(owners.begin(), owners.end(), id) == owners.end()) {
          first = id;
        }
      }
    }
    EXPECT_EQ(order.front(), first) << key;
    EXPECT_EQ(Cluster::HandoffOrder(placement, key, owners), order);  // deterministic
  }
}

TEST_F(NetworkContentTest, MigrationWritesToUnionAndReadsMigratedFromTarget) {
  // The target placement drops node2 and (through a fourth node) moves data.
  TestNodes extra(1);
  ClusterState state = *cluster_.state();
  state.target = *state.current.WithNodeAdded({.id = "extra", .address = extra.address(0)});
  cluster_.Update(state);
  const Placement& current = state.current;
  const Placement& target = *state.target;

  const std::string id = NewVideoId();
  std::string moved;  // a file whose replica set differs between the placements
  for (int f = 0; moved.empty() && f < 10'000; ++f) {
    std::string name = absl::StrCat("seg-", f);
    if (ReplicaIds(current, id, name) != ReplicaIds(target, id, name)) moved = name;
  }
  ASSERT_FALSE(moved.empty());
  ASSERT_TRUE(WriteContent(service_, id, moved, "v1").ok());
  std::set<std::string> holders;
  for (int i = 0; i < nodes_.size(); ++i) {
    if (nodes_.NamesOn(i, id).contains(moved)) holders.insert(nodes_.id(i));
  }
  if (extra.NamesOn(0, id).contains(moved)) holders.insert("extra");
  std::set<std::string> expected = ReplicaIds(current, id, moved);
  for (const std::string& n : ReplicaIds(target, id, moved)) expected.insert(n);
  EXPECT_EQ(holders, expected);

  // Reads try current owners first while the partition is not migrated...
  auto order = cluster_.ReadNodes(id, moved);
  EXPECT_EQ((std::set<std::string>{order[0].id, order[1].id}), ReplicaIds(current, id, moved));
  // ... and target owners first once it is.
  state.migrated_partitions.insert(Placement::PartitionOfKey(absl::StrCat(id, "/", moved)));
  cluster_.Update(state);
  order = cluster_.ReadNodes(id, moved);
  EXPECT_EQ((std::set<std::string>{order[0].id, order[1].id}), ReplicaIds(target, id, moved));
  // A target owner missing the file falls back to the current owners.
  storage::StorageClient(extra.address(0)).Delete(id, moved).IgnoreError();
  EXPECT_EQ(ReadContent(service_, id, moved).value_or("error"), "v1");
}

TEST_F(NetworkContentTest, UpdateKeepsClientsOfNodesThatStay) {
  auto before = cluster_.AllNodes();
  ClusterState state = *cluster_.state();
  state.current = *state.current.WithNodeRemoved(nodes_.id(2));
  cluster_.Update(state);
  auto after = cluster_.AllNodes();
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].client, before[0].client);
  EXPECT_EQ(after[1].client, before[1].client);
}

}  // namespace
}  // namespace streamgrid
