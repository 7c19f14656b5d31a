#include "ingest/tus_protocol.h"

#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace streamgrid::ingest {
namespace {

using ::testing::HasSubstr;

TEST(ParseUploadMetadata, DecodesPairsAndKeysWithoutValues) {
  // "clip.mp4" and "My title" in base64; "private" has no value.
  auto parsed = ParseUploadMetadata("filename Y2xpcC5tcDQ=,title TXkgdGl0bGU=,private");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ((*parsed)["filename"], "clip.mp4");
  EXPECT_EQ((*parsed)["title"], "My title");
  EXPECT_EQ(parsed->at("private"), "");
  EXPECT_EQ(parsed->size(), 3u);
}

TEST(ParseUploadMetadata, EmptyHeaderIsNoMetadata) {
  auto parsed = ParseUploadMetadata("");
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->empty());
}

TEST(ParseUploadMetadata, AllowsASpaceAfterTheComma) {
  auto parsed = ParseUploadMetadata("filename YQ==, title Yg==");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ((*parsed)["filename"], "a");
  EXPECT_EQ((*parsed)["title"], "b");
}

TEST(ParseUploadMetadata, RefusesMalformedHeaders) {
  for (const char* bad : {
           "filename Y2xpcC5tcDQ",         // no padding: not a multiple of 4
           "filename Y2xp!C5t",            // not base64
           "filename Y2xp cC5t",           // two values
           "filename YQ==,filename Yg==",  // repeated key
           "filename YQ==,,title Yg==",    // empty entry
           ",filename YQ==",               // empty entry first
           "file\tname YQ==",              // control character in the key
           "filename Y=Q=",                // padding in the middle
       }) {
    auto parsed = ParseUploadMetadata(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(parsed.status())) << bad;
  }
  EXPECT_THAT(ParseUploadMetadata("filename YQ==,filename Yg==").status().message(),
              HasSubstr("twice"));
  EXPECT_FALSE(ParseUploadMetadata(std::string(5000, 'a')).ok());
}

TEST(ParseTusNumber, DigitsOnly) {
  EXPECT_EQ(*ParseTusNumber("Upload-Offset", "0"), 0u);
  EXPECT_EQ(*ParseTusNumber("Upload-Length", "8589934592"), uint64_t{8} << 30);
  for (const char* bad : {"", "-1", "+1", " 1", "1 ", "1.0", "0x10", "12345678901234567890"}) {
    auto parsed = ParseTusNumber("Upload-Offset", bad);
    EXPECT_TRUE(absl::IsInvalidArgument(parsed.status())) << bad;
    EXPECT_THAT(parsed.status().message(), HasSubstr("Upload-Offset"));
  }
}

TEST(TusUploadId, RandomAndStrictlyShaped) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string id = NewTusUploadId();
    EXPECT_TRUE(IsTusUploadId(id)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 100u);
  for (const char* bad : {"", "..", "../../etc/passwd", "0123456789abcdef0123456789abcde",
                          "0123456789ABCDEF0123456789abcdef", "0123456789abcdef0123456789abcdef0",
                          "0123456789abcdef/123456789abcdef"}) {
    EXPECT_FALSE(IsTusUploadId(bad)) << bad;
  }
}

TEST(HttpDateFromUnixMillis, ImfFixdate) {
  EXPECT_EQ(HttpDateFromUnixMillis(784111777000), "Sun, 06 Nov 1994 08:49:37 GMT");
}

}  // namespace
}  // namespace streamgrid::ingest
