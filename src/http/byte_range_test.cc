#include "http/byte_range.h"

#include <cstdint>
#include <limits>

#include "gtest/gtest.h"

namespace streamgrid::http {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

RangeResult Satisfiable(uint64_t offset, uint64_t length) {
  return {RangeKind::kSatisfiable, {offset, length}};
}

void ExpectRange(std::string_view header, uint64_t size, RangeResult expected) {
  RangeResult result = ParseRange(header, size);
  EXPECT_EQ(result.kind, expected.kind) << "\"" << header << "\" size " << size;
  if (expected.kind == RangeKind::kSatisfiable) {
    EXPECT_EQ(result.range, expected.range) << "\"" << header << "\" size " << size << ": got "
                                            << result.range.offset << "+" << result.range.length;
  }
}

const RangeResult kNone{RangeKind::kNone, {}};
const RangeResult kUnsatisfiable{RangeKind::kUnsatisfiable, {}};

TEST(ParseRangeTest, FirstAndLast) {
  ExpectRange("bytes=0-99", 1000, Satisfiable(0, 100));
  ExpectRange("bytes=100-100", 1000, Satisfiable(100, 1));
  ExpectRange("bytes=500-999", 1000, Satisfiable(500, 500));
  ExpectRange("bytes=500-5000", 1000, Satisfiable(500, 500));  // Clipped to the file.
  ExpectRange("bytes=999-999", 1000, Satisfiable(999, 1));
  ExpectRange("bytes=0000-0009", 1000, Satisfiable(0, 10));
}

TEST(ParseRangeTest, OpenEnded) {
  ExpectRange("bytes=0-", 1000, Satisfiable(0, 1000));
  ExpectRange("bytes=999-", 1000, Satisfiable(999, 1));
  ExpectRange("bytes=1000-", 1000, kUnsatisfiable);
  ExpectRange("bytes=0-", 0, kUnsatisfiable);
  ExpectRange("bytes=0-0", 0, kUnsatisfiable);
}

TEST(ParseRangeTest, Suffix) {
  ExpectRange("bytes=-100", 1000, Satisfiable(900, 100));
  ExpectRange("bytes=-1", 1000, Satisfiable(999, 1));
  ExpectRange("bytes=-1000", 1000, Satisfiable(0, 1000));
  ExpectRange("bytes=-5000", 1000, Satisfiable(0, 1000));  // Larger than the file: all of it.
  ExpectRange("bytes=-0", 1000, kUnsatisfiable);
  ExpectRange("bytes=-10", 0, kUnsatisfiable);
}

TEST(ParseRangeTest, FirstBeyondEndIsUnsatisfiable) {
  ExpectRange("bytes=1000-1999", 1000, kUnsatisfiable);
  ExpectRange("bytes=5000-6000", 1000, kUnsatisfiable);
}

TEST(ParseRangeTest, LastBeforeFirstIsIgnored) {
  ExpectRange("bytes=10-9", 1000, kNone);
  ExpectRange("bytes=5000-10", 1000, kNone);
  ExpectRange("bytes=99999999999999999999999-99999999999999999999998", 1000, kNone);
}

TEST(ParseRangeTest, HugeNumbersSaturateInsteadOfOverflowing) {
  ExpectRange("bytes=0-99999999999999999999999", 1000, Satisfiable(0, 1000));
  ExpectRange("bytes=0-18446744073709551615", kMax, Satisfiable(0, kMax));
  ExpectRange("bytes=18446744073709551616-", 1000, kUnsatisfiable);
  ExpectRange("bytes=99999999999999999999999-", kMax, kUnsatisfiable);
  ExpectRange("bytes=-99999999999999999999999", 1000, Satisfiable(0, 1000));
  ExpectRange("bytes=18446744073709551614-", kMax, Satisfiable(kMax - 1, 1));
  ExpectRange("bytes=-18446744073709551616", kMax, Satisfiable(0, kMax));
}

TEST(ParseRangeTest, WhitespaceAndUnitCase) {
  ExpectRange("  bytes=0-9  ", 1000, Satisfiable(0, 10));
  ExpectRange("bytes= 0-9", 1000, Satisfiable(0, 10));
  ExpectRange("bytes = 0 - 9 ", 1000, Satisfiable(0, 10));
  ExpectRange("\tbytes=-5\t", 1000, Satisfiable(995, 5));
  ExpectRange("Bytes=0-9", 1000, Satisfiable(0, 10));
  ExpectRange("BYTES=0-9", 1000, Satisfiable(0, 10));
  ExpectRange("bytes=0-9,", 1000, Satisfiable(0, 10));  // Empty list elements are skipped.
  ExpectRange("bytes=, ,0-9", 1000, Satisfiable(0, 10));
}

TEST(ParseRangeTest, MultipleRangesAreServedWhole) {
  ExpectRange("bytes=0-9,20-29", 1000, kNone);
  ExpectRange("bytes=0-9, -5", 1000, kNone);
  ExpectRange("bytes=5000-6000,7000-", 1000, kNone);
}

TEST(ParseRangeTest, InvalidOrForeignHeadersAreIgnored) {
  const char* invalid[] = {
      "",          "bytes",       "bytes=",     "bytes=-",     "bytes=a-b",
      "bytes=1-b", "bytes=+1-2",  "bytes=1-+2", "bytes=0x10-", "bytes=1--2",
      "bytes=1",   "bytes=--1",   "items=0-9",  "bytes0-9",    "byte=0-9",
      "=0-9",      "bytes=1.5-2", "bytes=0-9;", "bytes=1 2-3",
  };
  for (const char* header : invalid) ExpectRange(header, 1000, kNone);
}

TEST(ContentRangeTest, Formats) {
  EXPECT_EQ(ContentRange({0, 100}, 1000), "bytes 0-99/1000");
  EXPECT_EQ(ContentRange({999, 1}, 1000), "bytes 999-999/1000");
  EXPECT_EQ(ContentRange({0, kMax}, kMax), "bytes 0-18446744073709551614/18446744073709551615");
  EXPECT_EQ(UnsatisfiedContentRange(1000), "bytes */1000");
  EXPECT_EQ(UnsatisfiedContentRange(0), "bytes */0");
}

TEST(ContentRangeTest, RoundTripsWithParseRange) {
  RangeResult result = ParseRange("bytes=-250", 1000);
  ASSERT_EQ(result.kind, RangeKind::kSatisfiable);
  EXPECT_EQ(ContentRange(result.range, 1000), "bytes 750-999/1000");
}

}  // namespace
}  // namespace streamgrid::http
