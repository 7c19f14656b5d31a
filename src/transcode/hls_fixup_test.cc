#include "transcode/hls_fixup.h"

#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "transcode/testing/test_media.h"

namespace streamgrid {
namespace {

std::string Fix(const std::string& input, absl::Status* status = nullptr) {
  std::istringstream in(input);
  std::ostringstream out;
  absl::Status result = FixupHlsMediaPlaylist(in, out);
  if (status != nullptr) *status = result;
  EXPECT_TRUE(status != nullptr || result.ok()) << result;
  return out.str();
}

// What ffmpeg 5.1's dash muxer writes with -hls_playlist 1.
constexpr char kDashMuxerPlaylist[] =
    "#EXTM3U\n"
    "#EXT-X-VERSION:6\n"
    "#EXT-X-TARGETDURATION:4\n"
    "#EXT-X-MEDIA-SEQUENCE:1\n"
    "#EXT-X-MAP:URI=\"init-0.m4s\"\n"
    "#EXTINF:4.000000,\n"
    "#EXT-X-PROGRAM-DATE-TIME:2024-05-01T10:00:00.000+0000\n"
    "chunk-0-00001.m4s\n"
    "#EXTINF:2.000000,\n"
    "#EXT-X-PROGRAM-DATE-TIME:2024-05-01T10:00:04.000+0000\n"
    "chunk-0-00002.m4s\n"
    "#EXT-X-ENDLIST\n";

constexpr char kFixed[] =
    "#EXTM3U\n"
    "#EXT-X-VERSION:6\n"
    "#EXT-X-PLAYLIST-TYPE:VOD\n"
    "#EXT-X-TARGETDURATION:4\n"
    "#EXT-X-MEDIA-SEQUENCE:1\n"
    "#EXT-X-MAP:URI=\"init-0.m4s\"\n"
    "#EXTINF:4.000000,\n"
    "chunk-0-00001.m4s\n"
    "#EXTINF:2.000000,\n"
    "chunk-0-00002.m4s\n"
    "#EXT-X-ENDLIST\n";

TEST(HlsFixupTest, MakesTheDashMuxerPlaylistVod) { EXPECT_EQ(Fix(kDashMuxerPlaylist), kFixed); }

TEST(HlsFixupTest, IsIdempotent) { EXPECT_EQ(Fix(kFixed), kFixed); }

TEST(HlsFixupTest, AddsAMissingEndList) {
  EXPECT_EQ(Fix("#EXTM3U\n#EXT-X-VERSION:6\n#EXTINF:4.0,\na.m4s\n"),
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:4.0,\na.m4s\n"
            "#EXT-X-ENDLIST\n");
}

TEST(HlsFixupTest, ReplacesAnotherPlaylistType) {
  EXPECT_EQ(Fix("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:4.0,\na.ts\n"
                "#EXT-X-ENDLIST\n"),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:4.0,\na.ts\n"
            "#EXT-X-ENDLIST\n");
}

TEST(HlsFixupTest, WithoutAVersionLineTheTypeFollowsTheHeader) {
  EXPECT_EQ(Fix("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\na.ts\n#EXT-X-ENDLIST\n"),
            "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\na.ts\n"
            "#EXT-X-ENDLIST\n");
  EXPECT_EQ(Fix("#EXTM3U\n"), "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-ENDLIST\n");
}

TEST(HlsFixupTest, NormalisesCrLfAndAMissingFinalNewline) {
  EXPECT_EQ(Fix("#EXTM3U\r\n#EXT-X-VERSION:6\r\n#EXTINF:4.0,\r\na.m4s\r\n#EXT-X-ENDLIST"),
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:4.0,\na.m4s\n"
            "#EXT-X-ENDLIST\n");
}

TEST(HlsFixupTest, KeepsOneEndList) {
  EXPECT_EQ(Fix("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-ENDLIST\n#EXT-X-ENDLIST\n"),
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-ENDLIST\n");
}

// Found by fuzz/hls_fixup_fuzz.cc: "a\r\r\n" came out as "a\r\n" (a CRLF
// line end again), which a second pass turned into "a\n".
TEST(HlsFixupTest, DropsEveryCrBeforeALineEnd) {
  const std::string fixed = Fix("#EXTM3U\r\r\n#EXTINF:4.0,\r\r\r\na.m4s\r\r");
  EXPECT_EQ(fixed, "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:4.0,\na.m4s\n#EXT-X-ENDLIST\n");
  EXPECT_EQ(Fix(fixed), fixed);
}

TEST(HlsFixupTest, RejectsSomethingThatIsNotAPlaylist) {
  absl::Status status;
  Fix("<html>\n", &status);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  Fix("", &status);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(HlsFixupTest, HandlesAPlaylistOfManySegments) {
  std::string input = "#EXTM3U\n#EXT-X-VERSION:6\n";
  std::string expected = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-PLAYLIST-TYPE:VOD\n";
  for (int i = 1; i <= 20000; ++i) {
    std::string segment = "#EXTINF:4.000000,\nchunk-0-" + std::to_string(i) + ".m4s\n";
    input += segment + "#EXT-X-PROGRAM-DATE-TIME:2024-05-01T10:00:00.000+0000\n";
    expected += segment;
  }
  expected += "#EXT-X-ENDLIST\n";
  EXPECT_EQ(Fix(input), expected);
}

TEST(HlsFixupTest, RewritesAFileInPlace) {
  testing::TempDir dir;
  std::filesystem::path path = dir.path() / "media_0.m3u8";
  { std::ofstream(path) << kDashMuxerPlaylist; }
  ASSERT_TRUE(FixupHlsMediaPlaylistFile(path).ok());
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  EXPECT_EQ(content.str(), kFixed);
  // Only the playlist is left: no temp file.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            1);
}

TEST(HlsFixupTest, MissingFileIsAnError) {
  testing::TempDir dir;
  EXPECT_FALSE(FixupHlsMediaPlaylistFile(dir.path() / "nope.m3u8").ok());
}

}  // namespace
}  // namespace streamgrid
