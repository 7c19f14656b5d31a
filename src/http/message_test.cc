#include "http/message.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/public_error.h"

namespace streamgrid::http {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(HttpStatusForTest, OutOfSpaceIs507AndOnlyTheBodyLimitIs413) {
  EXPECT_EQ(HttpStatusFor(absl::ResourceExhaustedError("write /data/x: No space left on device")),
            Status::insufficient_storage);
  EXPECT_EQ(HttpStatusFor(BodyTooLargeError("request body is larger than the limit")),
            Status::payload_too_large);
  EXPECT_TRUE(IsBodyTooLarge(BodyTooLargeError("x")));
  EXPECT_FALSE(IsBodyTooLarge(absl::ResourceExhaustedError("x")));
  EXPECT_EQ(HttpStatusFor(absl::UnavailableError("x")), Status::service_unavailable);
}

TEST(HttpStatusForTest, AStalledClientIs408AndADependencysTimeout504) {
  EXPECT_EQ(HttpStatusFor(ClientTimeoutError("client sent no data in time")),
            Status::request_timeout);
  EXPECT_TRUE(IsClientTimeout(ClientTimeoutError("x")));
  EXPECT_FALSE(IsClientTimeout(absl::DeadlineExceededError("x")));
  EXPECT_EQ(HttpStatusFor(absl::DeadlineExceededError("etcd did not answer")),
            Status::gateway_timeout);
  // The client is told why, not the generic "did not answer" of a 5xx.
  EXPECT_THAT(ErrorFromStatus(ClientTimeoutError("client sent no data in time")).body,
              HasSubstr("client sent no data in time"));
}

TEST(ErrorFromStatusTest, ClientErrorsKeepTheirMessage) {
  Response r = ErrorFromStatus(absl::InvalidArgumentError("limit must be 1 to 100"));
  EXPECT_EQ(r.status, Status::bad_request);
  EXPECT_EQ(r.body, R"({"error":"limit must be 1 to 100"})");
}

TEST(ErrorFromStatusTest, ServerErrorsHideTheDetail) {
  Response r = ErrorFromStatus(
      absl::UnavailableError("stat x/y: no storage node answered (10.1.2.3:9101: refused)"));
  EXPECT_EQ(r.status, Status::service_unavailable);
  EXPECT_THAT(r.body, Not(HasSubstr("10.1.2.3")));
  EXPECT_THAT(r.body, HasSubstr("unavailable"));
  EXPECT_THAT(r.body, ContainsRegex("\\(error id [0-9a-f]{8}\\)"));

  r = ErrorFromStatus(absl::InternalError("cannot read /srv/streamgrid/work/uploads/x: EIO"));
  EXPECT_EQ(r.status, Status::internal_server_error);
  EXPECT_THAT(r.body, Not(HasSubstr("/srv")));
  EXPECT_THAT(r.body, HasSubstr("internal error (error id "));

  r = ErrorFromStatus(absl::ResourceExhaustedError("write /srv/x: No space left on device"));
  EXPECT_EQ(r.status, Status::insufficient_storage);
  EXPECT_THAT(r.body, HasSubstr("out of storage space (error id "));
  EXPECT_THAT(r.body, Not(HasSubstr("/srv")));
}

TEST(ErrorFromStatusTest, ServerErrorsShowTheirPublicSummary) {
  Response r = ErrorFromStatus(WithPublicMessage(
      absl::UnavailableError("node n1 (10.1.2.3:9101) is down"), "a storage node is down"));
  EXPECT_EQ(r.status, Status::service_unavailable);
  EXPECT_THAT(r.body, HasSubstr("a storage node is down (error id "));
  EXPECT_THAT(r.body, Not(HasSubstr("10.1.2.3")));
  // Every answer gets its own id.
  EXPECT_NE(r.body, ErrorFromStatus(
                        WithPublicMessage(absl::UnavailableError("x"), "a storage node is down"))
                        .body);
}

}  // namespace
}  // namespace streamgrid::http
