#include "repair/hint_handoff.h"

#include <chrono>
#include <map>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "cluster/cluster.h"
#include "cluster/network_video_content_service.h"
#include "cluster/test_cluster_options.h"
#include "cluster/test_nodes.h"
#include "common/ids.h"
#include "content/video_content_service_conformance.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/sha256.h"

namespace streamgrid::repair {
namespace {

using ::testing::IsEmpty;
using testing::TestNodes;

// Failed nodes are retried at once.
ClusterOptions FastOptions() { return testing::FastClusterOptions(std::chrono::milliseconds(10)); }

size_t HintCount(TestNodes& nodes, int i) {
  storage::StorageClient client(nodes.address(i));
  auto page = client.ListHints();
  if (!page.ok()) throw std::runtime_error(page.status().ToString());
  return page->hints.size();
}

class HintHandoffTest : public ::testing::Test {
 protected:
  HintHandoffTest()
      : nodes_(3),
        cluster_(ClusterState{.current = *Placement::Create(nodes_.RingNodes(), 2)}, FastOptions()),
        service_(cluster_) {}

  std::set<std::string> Owners(const std::string& name) {
    auto ids = cluster_.state()->current.ReplicaIdsFor(absl::StrCat(video_, "/", name));
    return {ids.begin(), ids.end()};
  }

  // Writes files while node 2 is down until `count` of them are owned by it;
  // returns their contents by name.
  std::map<std::string, std::string> WriteWhileNode2IsDown(int count) {
    nodes_.Stop(2);
    std::map<std::string, std::string> hinted;
    for (int f = 0; static_cast<int>(hinted.size()) < count; ++f) {
      const std::string name = absl::StrCat("seg-", f);
      const std::string data = TestBytes(200'000 + f, f);
      auto info = WriteContent(service_, video_, name, data, 64 * 1024);
      if (!info.ok()) throw std::runtime_error(info.status().ToString());
      if (Owners(name).contains("node2")) hinted[name] = data;
    }
    return hinted;
  }

  TestNodes nodes_;
  Cluster cluster_;
  NetworkVideoContentService service_;
  RepairStats stats_;
  const std::string video_ = NewVideoId();
};

TEST_F(HintHandoffTest, HandsCopiesBackWhenTheOwnerReturns) {
  std::map<std::string, std::string> hinted = WriteWhileNode2IsDown(5);
  EXPECT_EQ(HintCount(nodes_, 0) + HintCount(nodes_, 1), hinted.size());

  HintHandoff handoff(cluster_, stats_);
  // The owner is still down: nothing moves.
  HintHandoffPass pass = handoff.RunOnce();
  EXPECT_EQ(pass.handed_back, 0u);
  EXPECT_EQ(pass.kept, hinted.size());
  EXPECT_EQ(stats_.hints_pending.load(), hinted.size());

  nodes_.Start(2);
  pass = handoff.RunOnce();
  EXPECT_EQ(pass.handed_back, hinted.size());
  EXPECT_EQ(stats_.hints_handed_back.load(), hinted.size());
  EXPECT_EQ(stats_.hints_pending.load(), 0u);
  EXPECT_EQ(HintCount(nodes_, 0) + HintCount(nodes_, 1), 0u);
  storage::StorageClient owner(nodes_.address(2));
  for (const auto& [name, data] : hinted) {
    auto stat = owner.Stat(video_, name);
    ASSERT_TRUE(stat.ok()) << name << ": " << stat.status();
    EXPECT_EQ(stat->sha256, storage::Sha256::HexOf(data));
    // Exactly the owners hold it again: the stand-in's copy is gone.
    std::set<std::string> holders;
    for (int i = 0; i < 3; ++i) {
      if (nodes_.NamesOn(i, video_).contains(name)) holders.insert(nodes_.id(i));
    }
    EXPECT_EQ(holders, Owners(name)) << name;
  }
  // Nothing left to do.
  pass = handoff.RunOnce();
  EXPECT_EQ(pass.hints_seen, 0u);
}

TEST_F(HintHandoffTest, AHintForANodeNoLongerOwningTheKeyGoesToTheOwners) {
  std::map<std::string, std::string> hinted = WriteWhileNode2IsDown(3);
  // node2 leaves the placement for good: the two others own everything.
  ClusterState state = *cluster_.state();
  state.current = *state.current.WithNodeRemoved("node2");
  cluster_.Update(state);
  HintHandoff handoff(cluster_, stats_);
  HintHandoffPass pass = handoff.RunOnce();
  EXPECT_EQ(pass.handed_back, hinted.size());
  EXPECT_EQ(HintCount(nodes_, 0) + HintCount(nodes_, 1), 0u);
  // The stand-ins own the keys now, so they keep their copies.
  for (const auto& [name, data] : hinted) {
    EXPECT_TRUE(nodes_.NamesOn(0, video_).contains(name)) << name;
    EXPECT_TRUE(nodes_.NamesOn(1, video_).contains(name)) << name;
  }
}

TEST_F(HintHandoffTest, AStaleHintIsDroppedAndTheNewerCopyKept) {
  std::map<std::string, std::string> hinted = WriteWhileNode2IsDown(1);
  const std::string name = hinted.begin()->first;
  const int stand_in = Owners(name).contains("node0") ? 1 : 0;
  // The stand-in's copy is replaced by another version (not hinted).
  storage::StorageClient client(nodes_.address(stand_in));
  ASSERT_TRUE(client.PutBytes(video_, name, "another version").ok());
  nodes_.Start(2);
  HintHandoff handoff(cluster_, stats_);
  HintHandoffPass pass = handoff.RunOnce();
  EXPECT_EQ(pass.dropped_stale, 1u);
  EXPECT_EQ(pass.handed_back, 0u);
  EXPECT_EQ(HintCount(nodes_, stand_in), 0u);
  EXPECT_TRUE(client.Stat(video_, name).ok());
  EXPECT_EQ(storage::StorageClient(nodes_.address(2)).Stat(video_, name).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(HintHandoffTest, AnotherVersionOnTheStandInGoesOnceEveryOwnerHoldsIt) {
  std::map<std::string, std::string> hinted = WriteWhileNode2IsDown(1);
  const std::string name = hinted.begin()->first;
  const int stand_in = Owners(name).contains("node0") ? 1 : 0;
  const int other_owner = 1 - stand_in;
  // A later version reached the stand-in and, once node2 was back, both
  // owners: the stand-in's copy of it is surplus.
  storage::StorageClient client(nodes_.address(stand_in));
  ASSERT_TRUE(client.PutBytes(video_, name, "another version").ok());
  nodes_.Start(2);
  for (int owner : {other_owner, 2}) {
    ASSERT_TRUE(storage::StorageClient(nodes_.address(owner))
                    .PutBytes(video_, name, "another version")
                    .ok());
  }
  HintHandoff handoff(cluster_, stats_);
  HintHandoffPass pass = handoff.RunOnce();
  EXPECT_EQ(pass.kept, 0u);
  EXPECT_EQ(HintCount(nodes_, stand_in), 0u);
  EXPECT_EQ(client.Stat(video_, name).status().code(), absl::StatusCode::kNotFound);
  for (int owner : {other_owner, 2}) {
    auto stat = storage::StorageClient(nodes_.address(owner)).Stat(video_, name);
    ASSERT_TRUE(stat.ok()) << stat.status();
    EXPECT_EQ(stat->sha256, storage::Sha256::HexOf("another version"));
  }
}

TEST_F(HintHandoffTest, TheLoopRunsAndStopsPromptly) {
  std::map<std::string, std::string> hinted = WriteWhileNode2IsDown(2);
  nodes_.Start(2);
  HintHandoff handoff(cluster_, stats_, {.interval = std::chrono::milliseconds(50)});
  handoff.Start();
  EXPECT_TRUE(storage::testing::WaitFor(
      [&] { return stats_.hints_handed_back.load() == hinted.size(); }, std::chrono::seconds(30)));
  const auto before = std::chrono::steady_clock::now();
  handoff.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(5));

  HintHandoff idle(cluster_, stats_, {.interval = std::chrono::hours(1)});
  idle.Start();
  const auto started = std::chrono::steady_clock::now();
  idle.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
}

}  // namespace
}  // namespace streamgrid::repair
