#include "storage/node_announcement.h"

#include <atomic>
#include <string>

#include "common/ids.h"
#include "etcd/testing/etcd_test_cluster.h"
#include "gtest/gtest.h"
#include "storage/sha256.h"
#include "storage/test_util.h"

namespace streamgrid::storage {
namespace {

using etcd::testing::SharedEtcdClusterTest;
using testing::WaitFor;
using namespace std::chrono_literals;

TEST(NodeAnnouncementJsonTest, RoundTripsAndRejectsOtherValues) {
  NodeAnnouncement a{.node_id = "n1",
                     .address = "127.0.0.1:9101",
                     .usage = {.files = 3, .bytes_used = 1000, .free_bytes = 5, .total_bytes = 9},
                     .started_unix_ms = 11,
                     .updated_unix_ms = 12};
  absl::StatusOr<NodeAnnouncement> back = NodeAnnouncementFromJson(ToJson(a));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->node_id, a.node_id);
  EXPECT_EQ(back->address, a.address);
  EXPECT_EQ(back->usage.files, 3u);
  EXPECT_EQ(back->usage.bytes_used, 1000u);
  EXPECT_EQ(back->usage.free_bytes, 5u);
  EXPECT_EQ(back->usage.total_bytes, 9u);
  EXPECT_EQ(back->started_unix_ms, 11);
  EXPECT_EQ(back->updated_unix_ms, 12);
  for (const char* bad : {"", "[]", "{}", R"({"node_id": "n", "address": 1})",
                          R"({"node_id": "n", "address": "a", "files": -1})"}) {
    EXPECT_TRUE(absl::IsDataLoss(NodeAnnouncementFromJson(bad).status())) << bad;
  }
  EXPECT_EQ(NodeAnnouncementKey("/sg/", "n1"), "/sg/nodes/n1");
}

class NodeAnnouncerTest : public SharedEtcdClusterTest {
 protected:
  void SetUp() override {
    SharedEtcdClusterTest::SetUp();
    client_ = ConnectClient();
    ASSERT_NE(client_, nullptr);
    prefix_ = "/announce-test-" + NewVideoId() + "/";
  }

  std::vector<NodeAnnouncement> Listed() {
    auto listed = ListNodeAnnouncements(*client_, prefix_);
    EXPECT_TRUE(listed.ok()) << listed.status();
    return listed.value_or(std::vector<NodeAnnouncement>{});
  }

  std::unique_ptr<etcd::EtcdClient> client_;
  std::string prefix_;
};

TEST_F(NodeAnnouncerTest, AnnouncesTheNodeKeepsItsUsageCurrentAndWithdrawsOnStop) {
  testing::TempDir dir;
  auto engine = StorageEngine::Open(dir.path());
  ASSERT_TRUE(engine.ok()) << engine.status();
  auto announcer = NodeAnnouncer::Start(
      *client_,
      {.node_id = "n1", .address = "127.0.0.1:9", .key_prefix = prefix_, .usage_interval = 50ms},
      [&] { return (*engine)->Usage(); });
  ASSERT_TRUE(announcer.ok()) << announcer.status();

  ASSERT_TRUE(WaitFor([&] { return (*announcer)->announced(); }, 15s));
  std::vector<NodeAnnouncement> listed = Listed();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].node_id, "n1");
  EXPECT_EQ(listed[0].address, "127.0.0.1:9");
  EXPECT_EQ(listed[0].usage.files, 0u);
  EXPECT_GT(listed[0].usage.total_bytes, 0u);
  EXPECT_GT(listed[0].started_unix_ms, 0);

  // A file stored on the node shows in its announcement shortly.
  auto upload = (*engine)->StartUpload(NewVideoId(), "a.m4s");
  ASSERT_TRUE(upload.ok()) << upload.status();
  const std::string data = "12345";
  ASSERT_TRUE((*upload)->Append(data).ok());
  ASSERT_TRUE((*upload)->Commit(Sha256::HexOf(data)).ok());
  EXPECT_TRUE(WaitFor(
      [&] {
        std::vector<NodeAnnouncement> now = Listed();
        return now.size() == 1 && now[0].usage.files == 1 && now[0].usage.bytes_used == 5;
      },
      10s));

  // A value that is not an announcement does not hide the others.
  ASSERT_TRUE(client_->Put(NodeAnnouncementKey(prefix_, "junk"), "not json").ok());
  EXPECT_EQ(Listed().size(), 1u);

  (*announcer)->Stop();
  listed = Listed();
  EXPECT_TRUE(listed.empty());
}

TEST(NodeAnnouncerOutageTest, ANodeStartedWhileEtcdIsDownAnnouncesItselfOnceItIsBack) {
  auto cluster = etcd::testing::EtcdTestCluster::Start(1);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_TRUE((*cluster)->Stop(0).ok());
  auto client =
      etcd::EtcdClient::Create({.endpoints = (*cluster)->client_endpoints(), .call_timeout = 1s});
  ASSERT_TRUE(client.ok()) << client.status();
  auto announcer = NodeAnnouncer::Start(**client, {.node_id = "late", .address = "127.0.0.1:9"},
                                        [] { return StorageUsage{.files = 4}; });
  ASSERT_TRUE(announcer.ok()) << announcer.status();
  EXPECT_FALSE((*announcer)->announced());

  ASSERT_TRUE((*cluster)->Restart(0).ok());
  ASSERT_TRUE((*cluster)->WaitHealthy(0).ok());
  ASSERT_TRUE(WaitFor([&] { return (*announcer)->announced(); }, 30s));
  auto listed = ListNodeAnnouncements(**client, "/streamgrid/");
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].node_id, "late");
  EXPECT_EQ((*listed)[0].usage.files, 4u);
}

TEST(NodeAnnouncerOutageTest, StopIsPromptWhileEtcdDoesNotAnswer) {
  auto client = etcd::EtcdClient::Create({.endpoints = {"127.0.0.1:1"}, .call_timeout = 500ms});
  ASSERT_TRUE(client.ok());
  auto announcer = NodeAnnouncer::Start(**client, {.node_id = "n", .address = "127.0.0.1:9"}, {});
  ASSERT_TRUE(announcer.ok()) << announcer.status();
  const auto start = std::chrono::steady_clock::now();
  (*announcer)->Stop();
  // One registration attempt is bounded by a few seconds.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_FALSE((*announcer)->announced());
}

TEST_F(NodeAnnouncerTest, RejectsAnAnnouncementWithoutIdOrAddress) {
  EXPECT_TRUE(absl::IsInvalidArgument(
      NodeAnnouncer::Start(*client_, {.node_id = "", .address = "a:1"}, {}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      NodeAnnouncer::Start(*client_, {.node_id = "n", .address = ""}, {}).status()));
}

}  // namespace
}  // namespace streamgrid::storage
