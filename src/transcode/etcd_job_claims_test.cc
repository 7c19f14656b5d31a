#include "transcode/etcd_job_claims.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "etcd/testing/etcd_test_cluster.h"
#include "gtest/gtest.h"

namespace streamgrid {
namespace {

using etcd::testing::SharedEtcdClusterTest;
using std::chrono::milliseconds;

// Polls `condition` until it holds or `timeout` passes; returns its last value.
bool Eventually(const std::function<bool()>& condition, milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return condition();
    std::this_thread::sleep_for(milliseconds(50));  // polling interval, not a fixed wait
  }
  return true;
}

// One 3-member cluster for the suite; each test keeps its keys under its own
// prefix.
class EtcdJobClaimsTest : public SharedEtcdClusterTest {
 protected:
  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    auto client = etcd::EtcdClient::Create({.endpoints = cluster_->client_endpoints()});
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
    prefix_ =
        absl::StrCat("/", ::testing::UnitTest::GetInstance()->current_test_info()->name(), "/");
  }

  // A claims set as one web server would have it, on its own client.
  std::unique_ptr<EtcdJobClaims> Server(const std::string& id) {
    auto client = etcd::EtcdClient::Create({.endpoints = cluster_->client_endpoints()});
    EXPECT_TRUE(client.ok()) << client.status();
    clients_.push_back(*std::move(client));
    auto claims = EtcdJobClaims::Create(
        *clients_.back(),
        {.server_id = id, .key_prefix = prefix_, .lease_ttl = std::chrono::seconds(4)});
    EXPECT_TRUE(claims.ok()) << claims.status();
    if (!claims.ok()) return nullptr;
    EXPECT_NE((*claims)->lease_id(), 0);
    return *std::move(claims);
  }

  std::unique_ptr<JobClaim> Claim(EtcdJobClaims& claims, const std::string& video_id,
                                  std::function<void()> on_lost = {}) {
    absl::StatusOr<std::unique_ptr<JobClaim>> claim = claims.TryClaim(video_id, on_lost);
    EXPECT_TRUE(claim.ok()) << claim.status();
    return claim.ok() ? *std::move(claim) : nullptr;
  }

  std::optional<etcd::KeyValue> Key(const std::string& video_id) {
    auto kv = client_->Get(prefix_ + "claims/" + video_id);
    EXPECT_TRUE(kv.ok()) << kv.status();
    return kv.ok() ? *kv : std::nullopt;
  }

  // Ends `lease` the way etcd would after a partition longer than its TTL.
  void RevokeElsewhere(int64_t lease) {
    etcdserverpb::Lease::Stub stub(client_->PreferredChannel(nullptr));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    etcdserverpb::LeaseRevokeRequest request;
    request.set_id(lease);
    etcdserverpb::LeaseRevokeResponse response;
    ASSERT_TRUE(stub.LeaseRevoke(&context, request, &response).ok());
  }

  std::unique_ptr<etcd::EtcdClient> client_;
  std::vector<std::unique_ptr<etcd::EtcdClient>> clients_;  // outlive the claims sets
  std::string prefix_;
};

TEST_F(EtcdJobClaimsTest, RejectsBadOptions) {
  EXPECT_EQ(EtcdJobClaims::Create(*client_, {.server_id = ""}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      EtcdJobClaims::Create(*client_, {.server_id = "A", .lease_ttl = std::chrono::seconds(1)})
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_F(EtcdJobClaimsTest, AClaimIsExclusive) {
  auto a = Server("A");
  auto b = Server("B");
  std::unique_ptr<JobClaim> held = Claim(*a, "v1");
  ASSERT_NE(held, nullptr);
  EXPECT_FALSE(held->lost());
  EXPECT_EQ(Claim(*b, "v1"), nullptr);
  EXPECT_EQ(Claim(*a, "v1"), nullptr);  // held here already
  std::optional<etcd::KeyValue> key = Key("v1");
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(key->value, "A");
  EXPECT_EQ(key->lease, a->lease_id());
  // Other videos are unaffected.
  EXPECT_NE(Claim(*b, "v2"), nullptr);
}

TEST_F(EtcdJobClaimsTest, ReleasingLetsAnotherServerClaim) {
  auto a = Server("A");
  auto b = Server("B");
  std::unique_ptr<JobClaim> held = Claim(*a, "v1");
  ASSERT_NE(held, nullptr);
  held.reset();
  EXPECT_FALSE(Key("v1").has_value());
  std::unique_ptr<JobClaim> taken = Claim(*b, "v1");
  ASSERT_NE(taken, nullptr);
  EXPECT_EQ(Key("v1")->value, "B");
}

TEST_F(EtcdJobClaimsTest, ReleaseLeavesALaterHoldersClaimAlone) {
  auto a = Server("A");
  auto b = Server("B");
  std::unique_ptr<JobClaim> stale = Claim(*a, "v1");
  ASSERT_NE(stale, nullptr);
  // A's claim vanished (say, an operator deleted it) and B claimed the video.
  ASSERT_TRUE(client_->Delete(prefix_ + "claims/v1").ok());
  std::unique_ptr<JobClaim> taken = Claim(*b, "v1");
  ASSERT_NE(taken, nullptr);
  stale.reset();
  ASSERT_TRUE(Key("v1").has_value());
  EXPECT_EQ(Key("v1")->value, "B");
}

TEST_F(EtcdJobClaimsTest, ADeadServersClaimsExpireWithItsLease) {
  auto a = Server("A");
  auto b = Server("B");
  std::atomic<bool> lost{false};
  std::unique_ptr<JobClaim> held = Claim(*a, "v1", [&] { lost = true; });
  ASSERT_NE(held, nullptr);
  a->AbandonForTesting();
  EXPECT_TRUE(lost);
  EXPECT_TRUE(held->lost());
  EXPECT_FALSE(a->TryClaim("v2", {}).ok());
  // Until the lease's TTL runs out, the claim still stands.
  EXPECT_EQ(Claim(*b, "v1"), nullptr);
  std::unique_ptr<JobClaim> taken;
  EXPECT_TRUE(Eventually(
      [&] {
        taken = Claim(*b, "v1");
        return taken != nullptr;
      },
      std::chrono::seconds(10)));
  // The dead server's release does not touch B's claim.
  held.reset();
  ASSERT_TRUE(Key("v1").has_value());
  EXPECT_EQ(Key("v1")->value, "B");
}

TEST_F(EtcdJobClaimsTest, LosingTheLeaseCancelsClaimsAndANewLeaseFollows) {
  auto a = Server("A");
  auto b = Server("B");
  std::atomic<int> lost{0};
  std::unique_ptr<JobClaim> held = Claim(*a, "v1", [&] { ++lost; });
  ASSERT_NE(held, nullptr);
  const int64_t first_lease = a->lease_id();
  RevokeElsewhere(first_lease);
  ASSERT_TRUE(Eventually([&] { return lost > 0; }, std::chrono::seconds(10)));
  EXPECT_TRUE(held->lost());
  // The revoked lease took the key along: B may take the job over.
  std::unique_ptr<JobClaim> taken = Claim(*b, "v1");
  ASSERT_NE(taken, nullptr);
  // A gets a new lease for later claims.
  ASSERT_TRUE(Eventually([&] { return a->lease_id() != 0 && a->lease_id() != first_lease; },
                         std::chrono::seconds(10)));
  std::unique_ptr<JobClaim> later = Claim(*a, "v2");
  ASSERT_NE(later, nullptr);
  EXPECT_EQ(Key("v2")->lease, a->lease_id());
  EXPECT_EQ(Claim(*a, "v1"), nullptr);  // still B's
  held.reset();
  EXPECT_EQ(Key("v1")->value, "B");
  EXPECT_EQ(lost, 1);
}

TEST_F(EtcdJobClaimsTest, StopRevokesTheLeaseAndItsClaims) {
  auto a = Server("A");
  std::atomic<bool> lost{false};
  std::unique_ptr<JobClaim> held = Claim(*a, "v1", [&] { lost = true; });
  ASSERT_NE(held, nullptr);
  a->Stop();
  EXPECT_TRUE(lost);
  EXPECT_FALSE(Key("v1").has_value());
  EXPECT_EQ(a->TryClaim("v2", {}).status().code(), absl::StatusCode::kUnavailable);
  held.reset();
}

}  // namespace
}  // namespace streamgrid
