#include "common/names.h"

#include <string>

#include "common/ids.h"
#include "gtest/gtest.h"

namespace streamgrid {
namespace {

using std::string_literals::operator""s;

TEST(IsValidVideoIdTest, AcceptsGeneratedIds) {
  EXPECT_TRUE(IsValidVideoId(NewVideoId()));
  EXPECT_TRUE(IsValidVideoId("01hq3z5k7m9n0p2r4s6t8v0w2x"));
  EXPECT_TRUE(IsValidVideoId("00000000000000000000000000"));
}

TEST(IsValidVideoIdTest, RejectsEverythingElse) {
  const std::string bad[] = {
      "",
      ".",
      "..",
      "a/b",
      "a\\b",
      "01hq3z5k7m9n0p2r4s6t8v0w2",    // 25 characters.
      "01hq3z5k7m9n0p2r4s6t8v0w2xy",  // 27 characters.
      "01HQ3Z5K7M9N0P2R4S6T8V0W2X",   // Upper case.
      "01hq3z5k7m9n0p2r4s6t8v0w2X",
      "01hq3z5k7m9n0p2r4s6t8v0w2i",  // i, l, o, u are not Crockford digits.
      "01hq3z5k7m9n0p2r4s6t8v0w2l",
      "01hq3z5k7m9n0p2r4s6t8v0w2o",
      "01hq3z5k7m9n0p2r4s6t8v0w2u",
      "01hq3z5k7m9n0p2r4s6t8v0w2\0"s,
      "01hq3z5k7m9n\0p2r4s6t8v0w2x"s,
      "01hq3z5k7m9n0p2r4s6t8v0/..",
      "01hq3z5k7m9n0p2r4s6t8v0w2-",
      "%2e%2e",
      "01hq3z5k7m9n0p2r4s6t8v0w2 ",
  };
  for (const std::string& id : bad) EXPECT_FALSE(IsValidVideoId(id)) << id;
}

TEST(IsValidContentNameTest, AcceptsOrdinaryNames) {
  const std::string good[] = {
      "a",         "0",    "manifest.mpd", "seg-00001.m4s",       "init_720p.mp4",
      "Thumb.JPG", "a..b", "v1.2.3-rc_4",  std::string(128, 'x'),
  };
  for (const std::string& name : good) EXPECT_TRUE(IsValidContentName(name)) << name;
}

TEST(IsValidContentNameTest, RejectsDangerousNames) {
  const std::string bad[] = {
      "",
      ".",
      "..",
      ".hidden",
      "-rf",
      "_tmp",
      "a/b",
      "../x",
      "a\\b",
      "a\0b"s,
      "a\0"s,
      "%2e%2e",
      "a b",
      "a:b",
      "a\nb",
      "caf\xC3\xA9",
      std::string(129, 'x'),
  };
  for (const std::string& name : bad) EXPECT_FALSE(IsValidContentName(name)) << name;
}

}  // namespace
}  // namespace streamgrid
