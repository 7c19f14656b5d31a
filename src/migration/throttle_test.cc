#include "migration/throttle.h"

#include "gtest/gtest.h"

namespace streamgrid {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

TEST(ThrottleTest, NoLimitNeverWaits) {
  Throttle throttle(0);
  const auto now = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) EXPECT_EQ(throttle.Reserve(1 << 30, now), nanoseconds(0));
}

TEST(ThrottleTest, AllowsASecondOfBurstThenPacesAtTheRate) {
  Throttle throttle(1000);  // bytes per second
  const auto now = std::chrono::steady_clock::now();
  EXPECT_EQ(throttle.Reserve(1000, now), nanoseconds(0));  // the burst
  EXPECT_EQ(throttle.Reserve(500, now), milliseconds(500));
  EXPECT_EQ(throttle.Reserve(500, now), seconds(1));
  // Time passing pays the debt back.
  EXPECT_EQ(throttle.Reserve(0, now + seconds(1)), nanoseconds(0));
  EXPECT_EQ(throttle.Reserve(1000, now + seconds(3)), nanoseconds(0));
}

TEST(ThrottleTest, AcquireSleepsAndCanGiveUp) {
  Throttle throttle(1000);
  nanoseconds slept{0};
  auto sleep = [&](nanoseconds d) {
    slept += d;
    return true;
  };
  EXPECT_TRUE(throttle.Acquire(1000, sleep));
  EXPECT_EQ(slept, nanoseconds(0));
  EXPECT_TRUE(throttle.Acquire(2000, sleep));
  EXPECT_GT(slept, milliseconds(1900));
  EXPECT_FALSE(throttle.Acquire(1000, [](nanoseconds) { return false; }));
}

}  // namespace
}  // namespace streamgrid
