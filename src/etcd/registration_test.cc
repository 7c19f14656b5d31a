#include "etcd/registration.h"

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "etcd/lease.h"
#include "etcd/testing/etcd_test_cluster.h"
#include "gtest/gtest.h"

namespace streamgrid::etcd {
namespace {

using testing::Eventually;
using testing::RevokeLease;
using testing::SharedEtcdClusterTest;
using namespace std::chrono_literals;

class RegistrationTest : public SharedEtcdClusterTest {
 protected:
  void SetUp() override {
    SharedEtcdClusterTest::SetUp();
    client_ = ConnectClient();
    ASSERT_NE(client_, nullptr);
  }

  // The stored key, or nullopt (failing the test on a read error).
  std::optional<KeyValue> Read(const std::string& key) {
    absl::StatusOr<std::optional<KeyValue>> kv = client_->Get(key);
    EXPECT_TRUE(kv.ok()) << kv.status();
    return kv.ok() ? *kv : std::nullopt;
  }
  std::string ValueOf(const std::string& key) {
    std::optional<KeyValue> kv = Read(key);
    return kv ? kv->value : "<absent>";
  }

  std::unique_ptr<EtcdClient> client_;
};

TEST_F(RegistrationTest, WritesUnderALeaseUpdatesAndVanishesOnStop) {
  auto registration = Registration::Create(*client_, {.key = "reg/a", .value = "v1", .ttl = 5s});
  ASSERT_TRUE(registration.ok()) << registration.status();
  Registration& r = **registration;
  EXPECT_TRUE(r.registered());
  std::optional<KeyValue> kv = Read("reg/a");
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->value, "v1");
  EXPECT_NE(kv->lease, 0);
  EXPECT_EQ(kv->lease, r.lease_id());
  EXPECT_EQ(r.written_value(), "v1");

  r.Set("v2");
  r.Set("v3");  // may collapse with v2; the last value wins
  ASSERT_TRUE(Eventually([&] { return ValueOf("reg/a") == "v3"; }, 10s));
  EXPECT_TRUE(Eventually([&] { return r.written_value() == "v3"; }, 5s));
  EXPECT_EQ(Read("reg/a")->lease, r.lease_id());

  r.Stop();
  EXPECT_FALSE(r.registered());
  EXPECT_EQ(r.lease_id(), 0);
  EXPECT_FALSE(Read("reg/a").has_value());  // revoked, not left to expire
  r.Stop();                                 // idempotent
}

TEST_F(RegistrationTest, ADeadProcessesKeyExpiresWithItsLease) {
  auto registration = Registration::Create(*client_, {.key = "reg/dead", .value = "x", .ttl = 2s});
  ASSERT_TRUE(registration.ok()) << registration.status();
  (*registration)->AbandonForTesting();
  EXPECT_TRUE(Read("reg/dead").has_value());
  EXPECT_TRUE(Eventually([&] { return !Read("reg/dead").has_value(); }, 15s));
}

TEST_F(RegistrationTest, RegistersAgainAfterItsLeaseIsLost) {
  std::atomic<int> lost = 0;
  std::atomic<int> restored = 0;
  auto registration = Registration::Create(
      *client_, {.key = "reg/again", .value = "v", .ttl = 3s, .on_change = [&](bool registered) {
                   ++(registered ? restored : lost);
                 }});
  ASSERT_TRUE(registration.ok()) << registration.status();
  Registration& r = **registration;
  const int64_t first_lease = r.lease_id();
  ASSERT_NE(first_lease, 0);

  // Someone revokes the lease (as etcd does when it expires): the key goes,
  // and the registration notices at its next refresh.
  RevokeLease(*client_, first_lease);
  EXPECT_FALSE(Read("reg/again").has_value());
  r.Set("after");
  ASSERT_TRUE(Eventually([&] { return restored.load() == 1; }, 15s));
  EXPECT_EQ(lost.load(), 1);
  EXPECT_TRUE(r.registered());
  EXPECT_NE(r.lease_id(), first_lease);
  ASSERT_TRUE(Eventually([&] { return ValueOf("reg/again") == "after"; }, 10s));
  EXPECT_EQ(Read("reg/again")->lease, r.lease_id());
}

TEST_F(RegistrationTest, CreateFailsWhenEtcdDoesNotAnswer) {
  // A port nobody listens on (etcd's own client port of a member that is not
  // there): every attempt is refused at once.
  auto client = EtcdClient::Create({.endpoints = {"127.0.0.1:1"}, .call_timeout = 500ms});
  ASSERT_TRUE(client.ok());
  auto registration =
      Registration::Create(**client, {.key = "reg/none", .value = "x", .ttl = 2s}, 2s);
  ASSERT_FALSE(registration.ok());
  EXPECT_TRUE(absl::IsUnavailable(registration.status()) ||
              absl::IsDeadlineExceeded(registration.status()))
      << registration.status();
  EXPECT_NE(registration.status().message().find("reg/none"), std::string::npos);
}

TEST_F(RegistrationTest, RejectsBadOptions) {
  EXPECT_TRUE(absl::IsInvalidArgument(Registration::Create(*client_, {.key = ""}).status()));
  EXPECT_TRUE(
      absl::IsInvalidArgument(Registration::Create(*client_, {.key = "k", .ttl = 1s}).status()));
}

}  // namespace
}  // namespace streamgrid::etcd
