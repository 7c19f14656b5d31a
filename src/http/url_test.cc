#include "http/url.h"

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace streamgrid::http {
namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;
using Segments = std::vector<std::string_view>;

TEST(PercentDecodeTest, DecodesEscapes) {
  EXPECT_EQ(PercentDecode(""), "");
  EXPECT_EQ(PercentDecode("plain"), "plain");
  EXPECT_EQ(PercentDecode("a%20b"), "a b");
  EXPECT_EQ(PercentDecode("%41%62%7a%7A"), "Abzz");
  EXPECT_EQ(PercentDecode("%2e%2e%2F"), "../");
  EXPECT_EQ(PercentDecode("%E2%82%AC"), "\xE2\x82\xAC");
  EXPECT_EQ(PercentDecode("%00"), std::string(1, '\0'));
  EXPECT_EQ(PercentDecode("%25"), "%");
  EXPECT_EQ(PercentDecode("%2525"), "%25");  // Decoded once only.
}

TEST(PercentDecodeTest, PlusAsSpaceOnlyWhenAsked) {
  EXPECT_EQ(PercentDecode("a+b"), "a+b");
  EXPECT_EQ(PercentDecode("a+b", /*plus_as_space=*/true), "a b");
  EXPECT_EQ(PercentDecode("a%2Bb", /*plus_as_space=*/true), "a+b");
}

TEST(PercentDecodeTest, RejectsBadOrTruncatedEscapes) {
  const char* bad[] = {"%", "%4", "a%", "a%4", "%zz", "%4g", "%g4", "%%41", "ok%2"};
  for (const char* s : bad) EXPECT_EQ(PercentDecode(s), std::nullopt) << s;
}

TEST(ParseQueryTest, DecodesPairsInOrder) {
  EXPECT_EQ(ParseQuery("a=1&b=two+words&c=%26%3D"),
            (Pairs{{"a", "1"}, {"b", "two words"}, {"c", "&="}}));
  EXPECT_EQ(ParseQuery("k=v=w"), (Pairs{{"k", "v=w"}}));
  EXPECT_EQ(ParseQuery("flag&x="), (Pairs{{"flag", ""}, {"x", ""}}));
  EXPECT_EQ(ParseQuery("a=1&a=2"), (Pairs{{"a", "1"}, {"a", "2"}}));
  EXPECT_EQ(ParseQuery("my+key=%41"), (Pairs{{"my key", "A"}}));
  EXPECT_EQ(ParseQuery("=v"), (Pairs{{"", "v"}}));
}

TEST(ParseQueryTest, SkipsEmptyAndUndecodablePairs) {
  EXPECT_EQ(ParseQuery(""), Pairs{});
  EXPECT_EQ(ParseQuery("&&a=1&&"), (Pairs{{"a", "1"}}));
  EXPECT_EQ(ParseQuery("bad=%zz&good=1&%=x&also=%4"), (Pairs{{"good", "1"}}));
}

TEST(QueryValueTest, FindsFirstDecodedMatch) {
  EXPECT_EQ(QueryValue("a=1&b=2&a=3", "a"), "1");
  EXPECT_EQ(QueryValue("a=1&b=2", "b"), "2");
  EXPECT_EQ(QueryValue("a=1&b=2", "c"), std::nullopt);
  EXPECT_EQ(QueryValue("", "a"), std::nullopt);
  EXPECT_EQ(QueryValue("flag", "flag"), "");
  EXPECT_EQ(QueryValue("my%20key=x+y", "my key"), "x y");
  EXPECT_EQ(QueryValue("a=%zz&a=2", "a"), "2");     // The undecodable pair is skipped.
  EXPECT_EQ(QueryValue("A=1", "a"), std::nullopt);  // Keys are case-sensitive.
}

TEST(SplitPathTest, Splits) {
  EXPECT_EQ(SplitPath(""), Segments{});
  EXPECT_EQ(SplitPath("/"), Segments{});
  EXPECT_EQ(SplitPath("/a"), (Segments{"a"}));
  EXPECT_EQ(SplitPath("/api/videos/123"), (Segments{"api", "videos", "123"}));
  EXPECT_EQ(SplitPath("a/b"), (Segments{"a", "b"}));
  EXPECT_EQ(SplitPath("//x"), (Segments{"", "x"}));
  EXPECT_EQ(SplitPath("/a//b"), (Segments{"a", "", "b"}));
  EXPECT_EQ(SplitPath("/a/"), (Segments{"a", ""}));
  EXPECT_EQ(SplitPath("//"), (Segments{"", ""}));
  EXPECT_EQ(SplitPath("/%2e%2e/x"), (Segments{"%2e%2e", "x"}));  // No decoding.
}

TEST(SplitPathTest, ViewsPointIntoInput) {
  std::string path = "/abc/def";
  Segments segments = SplitPath(path);
  ASSERT_EQ(segments.size(), 2u);
  EXPECT_EQ(segments[0].data(), path.data() + 1);
  EXPECT_EQ(segments[1].data(), path.data() + 5);
}

}  // namespace
}  // namespace streamgrid::http
