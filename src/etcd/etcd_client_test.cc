#include "etcd/etcd_client.h"

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "etcd/lease.h"
#include "etcd/testing/etcd_test_cluster.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace streamgrid::etcd {
namespace {

using ::testing::ElementsAre;
using testing::Eventually;
using testing::SharedEtcdClusterTest;

TEST(PrefixEndTest, IncrementsTheLastByteThatCan) {
  EXPECT_EQ(PrefixEnd("videos/"), "videos0");
  EXPECT_EQ(PrefixEnd("a\xff"), "b");
  EXPECT_EQ(PrefixEnd("\xff\xff"), std::string(1, '\0'));
  EXPECT_EQ(PrefixEnd(""), std::string(1, '\0'));
}

TEST(EtcdClientOptionsTest, RejectsBadEndpoints) {
  EXPECT_FALSE(EtcdClient::Create({}).ok());
  EXPECT_FALSE(EtcdClient::Create({.endpoints = {"localhost"}}).ok());
  EXPECT_FALSE(EtcdClient::Create({.endpoints = {"127.0.0.1:0"}}).ok());
  EXPECT_TRUE(EtcdClient::Create({.endpoints = {"http://127.0.0.1:2379"}}).ok());
}

// One 3-member cluster for the whole suite; tests use their own key prefixes,
// and the fault tests restore every member they stop.
class EtcdClientTest : public SharedEtcdClusterTest {
 protected:
  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    auto client = EtcdClient::Create({.endpoints = cluster_->client_endpoints()});
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  std::unique_ptr<EtcdClient> client_;
};

TEST_F(EtcdClientTest, PutGetDelete) {
  EXPECT_EQ(client_->Get("basic/missing").value(), std::nullopt);
  absl::StatusOr<int64_t> revision = client_->Put("basic/a", "1");
  ASSERT_TRUE(revision.ok()) << revision.status();
  auto got = client_->Get("basic/a");
  ASSERT_TRUE(got.ok() && got->has_value()) << got.status();
  EXPECT_EQ((*got)->value, "1");
  EXPECT_EQ((*got)->mod_revision, *revision);
  EXPECT_EQ((*got)->create_revision, *revision);
  EXPECT_EQ((*got)->version, 1);
  ASSERT_TRUE(client_->Put("basic/a", "2").ok());
  EXPECT_EQ(client_->Get("basic/a").value()->version, 2);
  EXPECT_EQ(client_->Delete("basic/a").value(), 1);
  EXPECT_EQ(client_->Delete("basic/a").value(), 0);
  EXPECT_EQ(client_->Get("basic/a").value(), std::nullopt);
}

TEST_F(EtcdClientTest, ListPrefixPagesThroughOneSnapshot) {
  for (int i = 0; i < 250; ++i) {
    ASSERT_TRUE(client_->Put(absl::StrCat("list/", 1000 + i), absl::StrCat("v", i)).ok());
  }
  ASSERT_TRUE(client_->Put("list0", "outside").ok());  // just past the prefix
  ASSERT_TRUE(client_->Put("lis", "outside").ok());
  int64_t revision = 0;
  auto all = client_->ListPrefix("list/", 40, &revision);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 250u);
  for (int i = 0; i < 250; ++i) {
    EXPECT_EQ((*all)[i].key, absl::StrCat("list/", 1000 + i));
    EXPECT_EQ((*all)[i].value, absl::StrCat("v", i));
  }
  EXPECT_GT(revision, 0);
  EXPECT_EQ(client_->DeletePrefix("list/").value(), 250);
  EXPECT_TRUE(client_->ListPrefix("list/").value().empty());
  EXPECT_EQ(client_->Get("list0").value()->value, "outside");
}

TEST_F(EtcdClientTest, TxnCreatesOnlyIfAbsent) {
  Txn create;
  create.IfAbsent("txn/video").ThenPut("txn/video", "first").ElseGet("txn/video");
  auto first = client_->Commit(create);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->succeeded);
  Txn again;
  again.IfAbsent("txn/video").ThenPut("txn/video", "second").ElseGet("txn/video");
  auto second = client_->Commit(again);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(second->succeeded);
  ASSERT_EQ(second->gets.size(), 1u);
  ASSERT_TRUE(second->gets[0].has_value());
  EXPECT_EQ(second->gets[0]->value, "first");
}

TEST_F(EtcdClientTest, ConcurrentCompareAndSetHasOneWinner) {
  ASSERT_TRUE(client_->Put("cas/counter", "0").ok());
  // Eight writers each add one with read-modify-write guarded by the mod
  // revision they read; conflicts re-read. The total must be exact.
  std::atomic<int> conflicts{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 8; ++w) {
    writers.emplace_back([&] {
      auto client = EtcdClient::Create({.endpoints = cluster_->client_endpoints()});
      ASSERT_TRUE(client.ok());
      for (int n = 0; n < 5; ++n) {
        for (int attempt = 0; attempt < 200; ++attempt) {
          auto kv = (*client)->Get("cas/counter");
          ASSERT_TRUE(kv.ok() && kv->has_value()) << kv.status();
          const int value = std::stoi((*kv)->value);
          Txn txn;
          txn.IfUnchangedSince("cas/counter", (*kv)->mod_revision)
              .ThenPut("cas/counter", std::to_string(value + 1));
          auto result = (*client)->Commit(txn);
          ASSERT_TRUE(result.ok()) << result.status();
          if (result->succeeded) break;
          ++conflicts;
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  EXPECT_EQ(client_->Get("cas/counter").value()->value, "40");
  EXPECT_GT(conflicts.load(), 0);  // the writers did race
}

TEST_F(EtcdClientTest, LeasedKeysVanishWhenTheLeaseIsNotKeptAlive) {
  auto kept = Lease::Grant(*client_, std::chrono::seconds(4));
  ASSERT_TRUE(kept.ok()) << kept.status();
  auto dropped = Lease::Grant(*client_, std::chrono::seconds(4));
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  ASSERT_TRUE(client_->Put("lease/kept", "x", (*kept)->id()).ok());
  ASSERT_TRUE(client_->Put("lease/dropped", "x", (*dropped)->id()).ok());
  EXPECT_EQ(client_->Get("lease/kept").value()->lease, (*kept)->id());
  const int64_t dropped_id = (*dropped)->id();
  dropped->reset();  // stops refreshing without revoking, like a crashed holder

  // The unrefreshed lease expires (TTL 4 s), taking its key along...
  EXPECT_TRUE(Eventually([&] { return !client_->Get("lease/dropped").value().has_value(); },
                         std::chrono::seconds(15)));
  EXPECT_EQ(Lease::TimeToLive(*client_, dropped_id).value(), -1);
  // ...while the refreshed one outlives several TTLs.
  EXPECT_TRUE(client_->Get("lease/kept").value().has_value());
  EXPECT_TRUE((*kept)->alive());
  EXPECT_GT(Lease::TimeToLive(*client_, (*kept)->id()).value(), 0);

  // Revoking removes its keys at once.
  ASSERT_TRUE((*kept)->Revoke().ok());
  EXPECT_FALSE(client_->Get("lease/kept").value().has_value());
  EXPECT_FALSE((*kept)->alive());
  EXPECT_TRUE((*kept)->Revoke().ok());  // idempotent
}

TEST_F(EtcdClientTest, ALeaseRevokedElsewhereIsReportedLost) {
  std::atomic<bool> lost{false};
  auto lease = Lease::Grant(*client_, std::chrono::seconds(3), [&] { lost = true; });
  ASSERT_TRUE(lease.ok()) << lease.status();
  // Someone else (an operator, or etcd after a long partition) ends it.
  auto other = Lease::Grant(*client_, std::chrono::seconds(3));
  ASSERT_TRUE(other.ok());
  etcdserverpb::Lease::Stub stub(client_->PreferredChannel(nullptr));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id((*lease)->id());
  etcdserverpb::LeaseRevokeResponse response;
  ASSERT_TRUE(stub.LeaseRevoke(&context, request, &response).ok());
  EXPECT_TRUE(Eventually([&] { return lost.load(); }, std::chrono::seconds(10)));
  EXPECT_FALSE((*lease)->alive());
}

TEST_F(EtcdClientTest, WorksOnWhileAMemberIsDown) {
  ASSERT_TRUE(client_->Put("fail/key", "before").ok());
  // The client prefers the first endpoint: stop exactly that one.
  ASSERT_TRUE(cluster_->Kill(0).ok());
  auto read = client_->Get("fail/key");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ((*read)->value, "before");
  // A write to the dead member never leaves the process, so it moves on.
  auto fresh = EtcdClient::Create({.endpoints = cluster_->client_endpoints()});
  ASSERT_TRUE(fresh.ok());
  absl::StatusOr<int64_t> written = absl::UnavailableError("not tried");
  ASSERT_TRUE(Eventually(
      [&] {
        written = (*fresh)->Put("fail/key", "during");
        return written.ok();
      },
      std::chrono::seconds(20)))
      << written.status();
  EXPECT_EQ(client_->Get("fail/key").value()->value, "during");
  ASSERT_TRUE(cluster_->Restart(0).ok());
  ASSERT_TRUE(cluster_->WaitHealthy(0).ok());
}

TEST_F(EtcdClientTest, ReadsAndWritesResumeAfterTheLeaderIsKilled) {
  auto leader = cluster_->LeaderIndex();
  ASSERT_TRUE(leader.ok()) << leader.status();
  ASSERT_TRUE(cluster_->Kill(*leader).ok());
  // Within a re-election the client's bounded retries find the new leader.
  absl::StatusOr<int64_t> written = absl::UnavailableError("not tried");
  ASSERT_TRUE(Eventually(
      [&] {
        written = client_->Put("leader/key", "after");
        return written.ok();
      },
      std::chrono::seconds(20)))
      << written.status();
  EXPECT_EQ(client_->Get("leader/key").value()->value, "after");
  ASSERT_TRUE(cluster_->Restart(*leader).ok());
  ASSERT_TRUE(cluster_->WaitHealthy(*leader).ok());
}

TEST_F(EtcdClientTest, WithoutAQuorumWritesFailClearly) {
  auto client = EtcdClient::Create({.endpoints = cluster_->client_endpoints(),
                                    .call_timeout = std::chrono::seconds(2),
                                    .read_attempts = 3});
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(cluster_->Kill(1).ok());
  ASSERT_TRUE(cluster_->Kill(2).ok());
  absl::StatusOr<int64_t> written = (*client)->Put("quorum/key", "x");
  EXPECT_TRUE(EtcdClient::IsRetriable(written.status())) << written.status();
  auto read = (*client)->Get("quorum/key");
  EXPECT_TRUE(EtcdClient::IsRetriable(read.status())) << read.status();
  ASSERT_TRUE(cluster_->Restart(1).ok());
  ASSERT_TRUE(cluster_->Restart(2).ok());
  ASSERT_TRUE(cluster_->WaitHealthy(1).ok());
  ASSERT_TRUE(cluster_->WaitHealthy(2).ok());
  absl::StatusOr<int64_t> again = absl::UnavailableError("not tried");
  EXPECT_TRUE(Eventually(
      [&] {
        again = (*client)->Put("quorum/key", "y");
        return again.ok();
      },
      std::chrono::seconds(20)))
      << again.status();
}

}  // namespace
}  // namespace streamgrid::etcd
