#include "common/fd_limits.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include "common/public_error.h"

namespace streamgrid {
namespace {

TEST(FdLimitsTest, RaisesTheSoftLimitToTheHardOne) {
  rlimit before{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &before), 0);
  absl::StatusOr<OpenFileLimit> limit = RaiseOpenFileLimit();
  ASSERT_TRUE(limit.ok()) << limit.status();
  EXPECT_EQ(limit->soft_before, before.rlim_cur);
  rlimit after{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &after), 0);
  EXPECT_EQ(limit->soft, after.rlim_cur);
  EXPECT_GE(after.rlim_cur, before.rlim_cur);
  if (after.rlim_max != RLIM_INFINITY) {
    EXPECT_EQ(after.rlim_cur, after.rlim_max);
  }
}

TEST(FdLimitsTest, ReserveGrowsWithWhatUsesDescriptors) {
  const uint64_t base = ReservedDescriptors({});
  EXPECT_GE(base, 64u);
  EXPECT_EQ(ReservedDescriptors({.blocking_threads = 32}), base + 32);
  EXPECT_EQ(ReservedDescriptors({.max_concurrent_uploads = 8}), base + 16);
  EXPECT_EQ(ReservedDescriptors({.transcode_workers = 2}), base + 32);
}

TEST(FdLimitsTest, SizesConnectionsFromTheLimitAndClampsRequests) {
  // Two descriptors per connection beside the reserve.
  EXPECT_EQ(ConnectionLimitFor(1024, 224, 0).max_connections, 400);
  EXPECT_FALSE(ConnectionLimitFor(1024, 224, 0).clamped);
  EXPECT_EQ(ConnectionLimitFor(1024, 224, 100).max_connections, 100);
  EXPECT_FALSE(ConnectionLimitFor(1024, 224, 100).clamped);
  ConnectionLimit clamped = ConnectionLimitFor(1024, 224, 10000);
  EXPECT_EQ(clamped.max_connections, 400);
  EXPECT_TRUE(clamped.clamped);
  // A limit below the reserve still serves a few.
  EXPECT_EQ(ConnectionLimitFor(100, 224, 0).max_connections, 16);
  // A huge limit stays an int.
  EXPECT_GT(ConnectionLimitFor(uint64_t{1} << 40, 224, 0).max_connections, 1 << 30);
}

TEST(PublicErrorTest, CarriesASummaryBesideTheDetail) {
  absl::Status detail = absl::UnavailableError("node 10.0.0.7:9101: connection refused");
  EXPECT_EQ(PublicMessage(detail), std::nullopt);
  absl::Status marked = WithPublicMessage(detail, "a storage node is down");
  EXPECT_EQ(marked.message(), detail.message());
  EXPECT_EQ(marked.code(), detail.code());
  EXPECT_EQ(PublicMessage(marked), "a storage node is down");
  absl::Status copy = marked;
  EXPECT_EQ(PublicMessage(copy), "a storage node is down");
}

}  // namespace
}  // namespace streamgrid
