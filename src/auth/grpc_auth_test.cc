#include "auth/grpc_auth.h"

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace streamgrid::auth {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using Metadata = std::multimap<grpc::string_ref, grpc::string_ref>;

grpc::Status CheckWith(const TokenCheck& check, const std::string& authorization) {
  Metadata metadata;
  metadata.emplace("authorization", authorization);
  return check.Check(metadata);
}

TEST(TokenCheckTest, WithoutATokenEveryCallPasses) {
  TokenCheck check;
  EXPECT_FALSE(check.enabled());
  EXPECT_TRUE(check.Check(Metadata()).ok());
  EXPECT_TRUE(CheckWith(check, "Bearer anything").ok());
}

TEST(TokenCheckTest, MissingTokenIsUnauthenticated) {
  TokenCheck check("s3cret-token", "cluster token");
  EXPECT_TRUE(check.enabled());
  Metadata metadata;
  metadata.emplace("x-other", "Bearer s3cret-token");
  grpc::Status status = check.Check(metadata);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("needs the cluster token"));
  EXPECT_THAT(status.error_message(), HasSubstr("none was sent"));
}

TEST(TokenCheckTest, WrongTokenIsUnauthenticatedAndNotEchoed) {
  TokenCheck check("s3cret-token", "admin token");
  for (const std::string& sent :
       {"Bearer s3cret-tokeN", "Bearer s3cret-toke", "Bearer s3cret-token2", "Bearer ",
        "s3cret-token", "bearer s3cret-token", "Bearer  s3cret-token"}) {
    SCOPED_TRACE(sent);
    grpc::Status status = CheckWith(check, sent);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_THAT(status.error_message(), HasSubstr("admin token sent with this call is wrong"));
    EXPECT_THAT(status.error_message(), Not(HasSubstr("s3cret")));
  }
}

TEST(TokenCheckTest, RightTokenPasses) {
  TokenCheck check("s3cret-token", "admin token");
  EXPECT_TRUE(CheckWith(check, "Bearer s3cret-token").ok());
}

TEST(LoopbackTest, KnowsLoopbackAddresses) {
  for (const char* host : {"127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "::1", "[::1]"}) {
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  }
  for (const char* host : {"0.0.0.0", "::", "[::]", "10.0.0.1", "192.168.1.2", "example.com", "",
                           "128.0.0.1", "::ffff:10.0.0.1"}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
  }
}

TEST(ListenerPolicyTest, RoutableListenersNeedATokenOrAnExplicitFlag) {
  EXPECT_TRUE(CheckListenerProtected("127.0.0.1", false, false, "--cluster-token-file").ok());
  EXPECT_TRUE(CheckListenerProtected("0.0.0.0", true, false, "--cluster-token-file").ok());
  EXPECT_TRUE(CheckListenerProtected("0.0.0.0", false, true, "--cluster-token-file").ok());
  absl::Status refused = CheckListenerProtected("0.0.0.0", false, false, "--cluster-token-file");
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("--cluster-token-file"));
  EXPECT_THAT(refused.message(), HasSubstr("--allow-unauthenticated"));
}

TEST(TlsFilesTest, IncompleteSettingsAreRefusedWithTheFlags) {
  EXPECT_FALSE(LoadServerTls("", "", "", "--tls-")->enabled);
  EXPECT_FALSE(LoadClientTls("", "", "", "--tls-")->enabled);
  absl::StatusOr<ServerTls> no_key = LoadServerTls("/nonexistent/cert.pem", "", "", "--tls-");
  ASSERT_FALSE(no_key.ok());
  EXPECT_THAT(no_key.status().message(), HasSubstr("--tls-key"));
  absl::StatusOr<ServerTls> ca_only = LoadServerTls("", "", "/nonexistent/ca.pem", "--admin-tls-");
  ASSERT_FALSE(ca_only.ok());
  EXPECT_THAT(ca_only.status().message(), HasSubstr("--admin-tls-cert"));
  absl::StatusOr<ServerTls> missing =
      LoadServerTls("/nonexistent/cert.pem", "/nonexistent/key.pem", "", "--tls-");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("/nonexistent/cert.pem"));
  absl::StatusOr<ClientTls> cert_without_ca =
      LoadClientTls("", "/nonexistent/cert.pem", "/nonexistent/key.pem", "--node-tls-");
  ASSERT_FALSE(cert_without_ca.ok());
  EXPECT_THAT(cert_without_ca.status().message(), HasSubstr("--node-tls-ca"));
  absl::StatusOr<ClientTls> not_pem = LoadClientTls("/dev/null", "", "", "--tls-");
  ASSERT_FALSE(not_pem.ok());
  EXPECT_THAT(not_pem.status().message(), HasSubstr("not a PEM file"));
}

}  // namespace
}  // namespace streamgrid::auth
