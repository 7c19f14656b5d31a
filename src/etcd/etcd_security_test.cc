// The etcd client against real etcd members with authentication and TLS:
// KV, transactions, leases and watches as an authenticated user, refused
// credentials, tokens that expire or are forgotten by a restarted member, and
// TLS with and without the CA and a client certificate.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "etcd/etcd_client.h"
#include "etcd/etcd_flags.h"
#include "etcd/lease.h"
#include "etcd/testing/etcd_test_cluster.h"
#include "etcd/watcher.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace streamgrid::etcd {
namespace {

using testing::EtcdTestCluster;
using testing::Eventually;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

constexpr char kRootPassword[] = "s3cret-Root!";
// etcd's simple tokens die after this many seconds unused.
constexpr int kTokenTtlSeconds = 2;

std::string WriteTempFile(const std::string& name, const std::string& contents) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            absl::StrCat("sg-etcd-security-", ::getpid(), "-", name))
                               .string();
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

// Keys a watcher delivered, for the test thread to wait on.
class SeenKeys {
 public:
  Watcher::Handler Handler() {
    return [this](const WatchBatch& batch) {
      std::lock_guard lock(mu_);
      for (const WatchEvent& event : batch.events) keys_.push_back(event.kv.key);
    };
  }
  bool Saw(const std::string& key) {
    std::lock_guard lock(mu_);
    return std::find(keys_.begin(), keys_.end(), key) != keys_.end();
  }

 private:
  std::mutex mu_;
  std::vector<std::string> keys_;
};

// Waits until `duration` has passed, failing the test if `alive` turns false
// meanwhile. A lease has to be watched for its TTL to show it survived.
void StaysAliveFor(const std::function<bool()>& alive, std::chrono::milliseconds duration) {
  const auto until = std::chrono::steady_clock::now() + duration;
  bool died = false;
  Eventually(
      [&] {
        if (!alive()) died = true;
        return died || std::chrono::steady_clock::now() >= until;
      },
      duration + 5s);
  EXPECT_FALSE(died);
}

TEST(EtcdSecurityOptionsTest, RejectsInconsistentSettings) {
  // A certificate needs its key.
  EXPECT_FALSE(
      EtcdClient::Create({.endpoints = {"127.0.0.1:2379"}, .tls_cert_file = "c.pem"}).ok());
  // Plain http:// with TLS files, and mixed schemes.
  EXPECT_FALSE(
      EtcdClient::Create({.endpoints = {"http://127.0.0.1:2379"}, .tls_ca_file = "ca.pem"}).ok());
  EXPECT_FALSE(
      EtcdClient::Create({.endpoints = {"http://127.0.0.1:2379", "https://127.0.0.1:2380"}}).ok());
  // A CA file that is not there or holds no certificate.
  absl::StatusOr<std::unique_ptr<EtcdClient>> missing =
      EtcdClient::Create({.endpoints = {"127.0.0.1:2379"}, .tls_ca_file = "/nonexistent/ca.pem"});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("/nonexistent/ca.pem"));
  const std::string junk = WriteTempFile("junk.pem", "not a certificate\n");
  EXPECT_FALSE(EtcdClient::Create({.endpoints = {"127.0.0.1:2379"}, .tls_ca_file = junk}).ok());
  std::filesystem::remove(junk);
  // A password without a user.
  EXPECT_FALSE(EtcdClient::Create({.endpoints = {"127.0.0.1:2379"}, .password = "x"}).ok());
  // https:// alone is TLS with the system's CAs.
  EXPECT_TRUE(EtcdClient::Create({.endpoints = {"https://127.0.0.1:2379"}}).ok());
}

TEST(EtcdSecurityFlagsTest, ReadsThePasswordFile) {
  const std::string path = WriteTempFile("password", "pa ss\n");
  EXPECT_EQ(ReadPasswordFile(path).value(), "pa ss");
  std::ofstream(path, std::ios::binary | std::ios::trunc) << "crlf\r\n";
  EXPECT_EQ(ReadPasswordFile(path).value(), "crlf");
  std::ofstream(path, std::ios::binary | std::ios::trunc) << "\n";
  EXPECT_THAT(ReadPasswordFile(path).status().message(), HasSubstr("empty"));
  std::ofstream(path, std::ios::binary | std::ios::trunc) << std::string(5000, 'x');
  EXPECT_FALSE(ReadPasswordFile(path).ok());
  std::filesystem::remove(path);
  EXPECT_FALSE(ReadPasswordFile(path).ok());
}

TEST(EtcdSecurityFlagsTest, UserAndPasswordFileGoTogether) {
  const std::string path = WriteTempFile("password2", "pw\n");
  EXPECT_FALSE(EtcdOptionsFromFlags("127.0.0.1:2379", {.user = "root"}).ok());
  EXPECT_FALSE(EtcdOptionsFromFlags("127.0.0.1:2379", {.password_file = path}).ok());
  absl::StatusOr<EtcdOptions> options = EtcdOptionsFromFlags(
      "127.0.0.1:2379, 127.0.0.1:2380", {.user = "root", .password_file = path, .tls_ca = "ca"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->endpoints, (std::vector<std::string>{"127.0.0.1:2379", " 127.0.0.1:2380"}));
  EXPECT_EQ(options->username, "root");
  EXPECT_EQ(options->password, "pw");
  EXPECT_EQ(options->tls_ca_file, "ca");
  std::filesystem::remove(path);
}

// One member with authentication on and tokens that die after 2 s unused.
class EtcdAuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cluster = EtcdTestCluster::Start(
        1, {.root_password = kRootPassword, .auth_token_ttl_s = kTokenTtlSeconds});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(cluster_, nullptr) << "etcd did not start"; }

  static std::unique_ptr<EtcdClient> Connect(std::string user, std::string password) {
    EtcdOptions options = cluster_->client_options();
    options.username = std::move(user);
    options.password = std::move(password);
    options.call_timeout = 3s;
    auto client = EtcdClient::Create(std::move(options));
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  // Waits until the member forgot `client`'s token (unused for the TTL): a
  // new call of the client then has it refused first.
  static void LetTokenExpire() {
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::seconds(kTokenTtlSeconds) + 1500ms;
    Eventually([&] { return std::chrono::steady_clock::now() >= until; }, 10s);
  }

  static EtcdTestCluster* cluster_;
};

EtcdTestCluster* EtcdAuthTest::cluster_ = nullptr;

TEST_F(EtcdAuthTest, TheRightPasswordGetsKvAndTransactions) {
  auto client = Connect("root", kRootPassword);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Authenticate().ok());
  ASSERT_TRUE(client->Put("auth/kv/a", "1").ok());
  EXPECT_EQ(client->Get("auth/kv/a").value()->value, "1");
  Txn txn;
  txn.IfAbsent("auth/kv/b").ThenPut("auth/kv/b", "2").ElseGet("auth/kv/b");
  absl::StatusOr<TxnResult> result = client->Commit(txn);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->succeeded);
  EXPECT_EQ(client->ListPrefix("auth/kv/").value().size(), 2u);
  EXPECT_EQ(client->DeletePrefix("auth/kv/").value(), 2);
  EXPECT_EQ(client->authentications(), 1);
}

TEST_F(EtcdAuthTest, AWrongPasswordIsRefusedClearly) {
  auto client = Connect("root", "not-the-password");
  ASSERT_NE(client, nullptr);
  absl::Status status = client->Authenticate();
  EXPECT_TRUE(absl::IsUnauthenticated(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("authentication as user 'root' failed"));
  EXPECT_THAT(status.message(), Not(HasSubstr("not-the-password")));
  // Calls fail with the same reason, in bounded time, and write nothing.
  absl::StatusOr<int64_t> put = client->Put("auth/wrong", "x");
  EXPECT_TRUE(absl::IsUnauthenticated(put.status())) << put.status();
  absl::StatusOr<std::optional<KeyValue>> get = client->Get("auth/wrong");
  EXPECT_TRUE(absl::IsUnauthenticated(get.status())) << get.status();
  EXPECT_THAT(get.status().message(), HasSubstr("authentication as user 'root' failed"));
  auto root = Connect("root", kRootPassword);
  EXPECT_EQ(root->Get("auth/wrong").value(), std::nullopt);
  // An unknown user likewise.
  EXPECT_TRUE(absl::IsUnauthenticated(Connect("nobody", "x")->Authenticate()));
}

TEST_F(EtcdAuthTest, NoCredentialsAreRefused) {
  auto client = EtcdClient::Create(cluster_->client_options());
  ASSERT_TRUE(client.ok());
  absl::StatusOr<int64_t> put = (*client)->Put("auth/anonymous", "x");
  EXPECT_TRUE(absl::IsUnauthenticated(put.status())) << put.status();
  EXPECT_THAT(put.status().message(), HasSubstr("no etcd user was given"));
  EXPECT_TRUE(absl::IsUnauthenticated((*client)->Get("auth/anonymous").status()));
}

TEST_F(EtcdAuthTest, ExpiredTokensAreRenewedForReadsAndWrites) {
  auto client = Connect("root", kRootPassword);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Put("auth/expiry/a", "1").ok());
  ASSERT_EQ(client->authentications(), 1);
  const std::string first_token = client->AuthToken();
  LetTokenExpire();
  // A write: refused before it is applied, then sent again with a new token.
  Txn txn;
  txn.IfValue("auth/expiry/a", etcdserverpb::Compare::EQUAL, "1").ThenPut("auth/expiry/a", "2");
  absl::StatusOr<TxnResult> result = client->Commit(txn);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->succeeded);
  EXPECT_EQ(client->authentications(), 2);
  EXPECT_NE(client->AuthToken(), first_token);
  LetTokenExpire();
  // A read.
  EXPECT_EQ(client->Get("auth/expiry/a").value()->value, "2");
  EXPECT_EQ(client->authentications(), 3);
}

TEST_F(EtcdAuthTest, LeaseKeepAliveAndWatchSurviveTokenExpiryAndARestart) {
  // Separate clients, so that no other call keeps the keeper's or the
  // watcher's token in use.
  auto lease_client = Connect("root", kRootPassword);
  auto watch_client = Connect("root", kRootPassword);
  auto writer = Connect("root", kRootPassword);
  ASSERT_TRUE(lease_client && watch_client && writer);
  // Refreshed every 3 s: each refresh finds its token expired (2 s).
  auto lease = Lease::Grant(*lease_client, 9s);
  ASSERT_TRUE(lease.ok()) << lease.status();
  ASSERT_TRUE(writer->Put("auth/leased", "x", (*lease)->id()).ok());

  SeenKeys seen;
  auto watcher = Watcher::Start(*watch_client, {.prefix = "auth/watched/"}, seen.Handler());
  ASSERT_TRUE(Eventually([&] { return watcher->healthy(); }, 15s));

  // (etcd 3.4 does not check tokens on lease calls; were it to refuse one,
  // the refresh would renew it like any call.)
  StaysAliveFor([&] { return (*lease)->alive(); }, 10s);
  EXPECT_GT(Lease::TimeToLive(*writer, (*lease)->id()).value(), 0);
  // The watch stream, set up with a token long expired, still delivers.
  ASSERT_TRUE(writer->Put("auth/watched/1", "a").ok());
  EXPECT_TRUE(Eventually([&] { return seen.Saw("auth/watched/1"); }, 10s));

  // A restarted member forgets every token: the watch comes back (with a new
  // token), and so do the refreshes.
  const int64_t watch_auths = watch_client->authentications();
  ASSERT_TRUE(cluster_->Stop(0).ok());
  ASSERT_TRUE(cluster_->Restart(0).ok());
  ASSERT_TRUE(cluster_->WaitHealthy(0).ok());
  ASSERT_TRUE(Eventually([&] { return writer->Put("auth/watched/2", "b").ok(); }, 20s));
  EXPECT_TRUE(Eventually([&] { return seen.Saw("auth/watched/2"); }, 20s));
  EXPECT_GT(watch_client->authentications(), watch_auths);
  StaysAliveFor([&] { return (*lease)->alive(); }, 4s);
  EXPECT_EQ(writer->Get("auth/leased").value()->value, "x");
  watcher->Stop();
  EXPECT_TRUE((*lease)->Revoke().ok());
  EXPECT_EQ(writer->Get("auth/leased").value(), std::nullopt);
}

// One member reached over TLS only, requiring client certificates, with
// authentication on.
class EtcdTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cluster = EtcdTestCluster::Start(
        1, {.tls = true, .client_cert_auth = true, .root_password = kRootPassword});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(cluster_, nullptr) << "etcd did not start"; }

  static absl::StatusOr<std::unique_ptr<EtcdClient>> Connect(EtcdOptions options) {
    options.username = "root";
    options.password = kRootPassword;
    options.call_timeout = 2s;
    options.read_attempts = 2;
    return EtcdClient::Create(std::move(options));
  }

  static EtcdTestCluster* cluster_;
};

EtcdTestCluster* EtcdTlsTest::cluster_ = nullptr;

TEST_F(EtcdTlsTest, WithTheCaAndAClientCertificateEverythingWorks) {
  for (bool https_scheme : {false, true}) {
    EtcdOptions options = cluster_->client_options();
    if (https_scheme) {
      for (std::string& endpoint : options.endpoints) endpoint = "https://" + endpoint;
    }
    auto client = Connect(options);
    ASSERT_TRUE(client.ok()) << client.status();
    ASSERT_TRUE((*client)->Authenticate().ok());
    const std::string key = absl::StrCat("tls/", https_scheme);
    SeenKeys seen;
    auto watcher = Watcher::Start(**client, {.prefix = key}, seen.Handler());
    ASSERT_TRUE(Eventually([&] { return watcher->healthy(); }, 15s));
    auto lease = Lease::Grant(**client, 5s);
    ASSERT_TRUE(lease.ok()) << lease.status();
    ASSERT_TRUE((*client)->Put(key, "v", (*lease)->id()).ok());
    EXPECT_EQ((*client)->Get(key).value()->value, "v");
    EXPECT_TRUE(Eventually([&] { return seen.Saw(key); }, 10s));
  }
}

TEST_F(EtcdTlsTest, WithoutTheCaOrTheClientCertificateCallsFailClearly) {
  EtcdOptions no_ca = cluster_->client_options();
  no_ca.tls_ca_file.clear();  // https with the system's CAs, which do not know the test CA
  EtcdOptions no_cert = cluster_->client_options();
  no_cert.tls_cert_file.clear();
  no_cert.tls_key_file.clear();
  EtcdOptions plain = {.endpoints = cluster_->client_endpoints()};
  for (EtcdOptions& options : {std::ref(no_ca), std::ref(no_cert), std::ref(plain)}) {
    auto client = Connect(options);
    ASSERT_TRUE(client.ok()) << client.status();
    const auto started = std::chrono::steady_clock::now();
    absl::StatusOr<std::optional<KeyValue>> got = (*client)->Get("tls/x");
    EXPECT_FALSE(got.ok());
    EXPECT_TRUE(absl::IsUnavailable(got.status()) || absl::IsDeadlineExceeded(got.status()))
        << got.status();
    EXPECT_LT(std::chrono::steady_clock::now() - started, 20s);
    EXPECT_FALSE((*client)->Put("tls/x", "v").ok());
  }
}

}  // namespace
}  // namespace streamgrid::etcd
