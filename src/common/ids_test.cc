#include "common/ids.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "common/names.h"
#include "gtest/gtest.h"

namespace streamgrid {
namespace {

constexpr int64_t kMaxMillis = (int64_t{1} << 48) - 1;

TEST(NewVideoIdTest, GeneratedIdsAreValid) {
  for (int i = 0; i < 1000; ++i) {
    std::string id = NewVideoId();
    ASSERT_EQ(id.size(), 26u);
    ASSERT_TRUE(IsValidVideoId(id)) << id;
    ASSERT_LE(id[0], '7') << id;  // The first digit carries only two bits.
  }
  EXPECT_TRUE(IsValidVideoId(NewVideoIdAt(0)));
  EXPECT_TRUE(IsValidVideoId(NewVideoIdAt(kMaxMillis)));
}

TEST(NewVideoIdTest, TimestampIsTheFirstTenDigits) {
  EXPECT_EQ(NewVideoIdAt(0).substr(0, 10), "0000000000");
  EXPECT_EQ(NewVideoIdAt(1).substr(0, 10), "0000000001");
  EXPECT_EQ(NewVideoIdAt(31).substr(0, 10), "000000000z");
  EXPECT_EQ(NewVideoIdAt(32).substr(0, 10), "0000000010");
  EXPECT_EQ(NewVideoIdAt(1700000000000).substr(0, 10), "01hf7yat00");
  EXPECT_EQ(NewVideoIdAt(kMaxMillis).substr(0, 10), "7zzzzzzzzz");
}

TEST(NewVideoIdTest, OutOfRangeTimesAreClamped) {
  EXPECT_EQ(NewVideoIdAt(-5).substr(0, 10), "0000000000");
  EXPECT_EQ(NewVideoIdAt(kMaxMillis + 1).substr(0, 10), "7zzzzzzzzz");
  EXPECT_EQ(NewVideoIdAt(INT64_MAX).substr(0, 10), "7zzzzzzzzz");
}

TEST(NewVideoIdTest, RandomPartDiffersForTheSameMillisecond) {
  std::string a = NewVideoIdAt(1700000000000);
  std::string b = NewVideoIdAt(1700000000000);
  EXPECT_EQ(a.substr(0, 10), b.substr(0, 10));
  EXPECT_NE(a.substr(10), b.substr(10));
}

TEST(NewVideoIdTest, SortsByTime) {
  // Times chosen to cross digit and byte boundaries of the encoding.
  const int64_t times[] = {0,
                           1,
                           31,
                           32,
                           255,
                           256,
                           1023,
                           1024,
                           65535,
                           65536,
                           1 << 20,
                           1LL << 30,
                           1LL << 35,
                           1700000000000,
                           1700000000001,
                           1LL << 45,
                           kMaxMillis - 1,
                           kMaxMillis};
  std::vector<std::string> ids;
  for (int64_t t : times) {
    for (int i = 0; i < 20; ++i) ids.push_back(NewVideoIdAt(t));
  }
  for (size_t i = 20; i < ids.size(); ++i) {
    // Every ID of a later time sorts after every ID of an earlier one.
    EXPECT_LT(*std::max_element(ids.begin() + (i / 20 - 1) * 20, ids.begin() + (i / 20) * 20),
              ids[i])
        << i;
  }
}

TEST(NewVideoIdTest, SortsByWallClock) {
  std::string first = NewVideoId();
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  std::string second = NewVideoId();
  EXPECT_LT(first, second);
}

TEST(NewVideoIdTest, HundredThousandIdsAreUnique) {
  std::unordered_set<std::string> seen;
  for (int i = 0; i < 100000; ++i) ASSERT_TRUE(seen.insert(NewVideoId()).second);
  // Even within a single millisecond the random part keeps them apart.
  std::unordered_set<std::string> same_ms;
  for (int i = 0; i < 100000; ++i) ASSERT_TRUE(same_ms.insert(NewVideoIdAt(42)).second);
}

TEST(NowMillisTest, MatchesSystemClock) {
  int64_t before = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  int64_t now = NowMillis();
  EXPECT_GE(now, before);
  EXPECT_LT(now, before + 1000);
  EXPECT_GT(now, 1600000000000);  // After 2020.
}

}  // namespace
}  // namespace streamgrid
