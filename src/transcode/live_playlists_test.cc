#include "transcode/live_playlists.h"

#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace streamgrid {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// As ffmpeg 5.1's dash muxer writes it while encoding (no ENDLIST yet).
constexpr std::string_view kWhileEncoding =
    "#EXTM3U\n"
    "#EXT-X-VERSION:6\n"
    "#EXT-X-TARGETDURATION:4\n"
    "#EXT-X-MEDIA-SEQUENCE:1\n"
    "#EXT-X-MAP:URI=\"init-1.m4s\"\n"
    "#EXTINF:4.000000,\n"
    "#EXT-X-PROGRAM-DATE-TIME:2026-12-05T05:39:29.000+0000\n"
    "chunk-1-00001.m4s\n"
    "#EXTINF:4.000000,\n"
    "#EXT-X-PROGRAM-DATE-TIME:2026-12-05T05:39:33.000+0000\n"
    "chunk-1-00002.m4s\n"
    "#EXTINF:2.500000,\n"
    "#EXT-X-PROGRAM-DATE-TIME:2026-12-05T05:39:37.000+0000\n"
    "chunk-1-00003.m4s\n";

auto StoredSet(std::set<std::string> names) {
  return [names = std::move(names)](std::string_view name) {
    return names.contains(std::string(name));
  };
}

TEST(LiveMediaPlaylistTest, ListsOnlyTheStoredPrefixAsAnEventPlaylist) {
  size_t count = 99;
  std::optional<std::string> live = LiveMediaPlaylist(
      kWhileEncoding, StoredSet({"init-1.m4s", "chunk-1-00001.m4s", "chunk-1-00002.m4s"}), &count);
  ASSERT_TRUE(live.has_value());
  EXPECT_EQ(count, 2u);
  EXPECT_EQ(*live,
            "#EXTM3U\n"
            "#EXT-X-VERSION:6\n"
            "#EXT-X-PLAYLIST-TYPE:EVENT\n"
            "#EXT-X-TARGETDURATION:4\n"
            "#EXT-X-MEDIA-SEQUENCE:1\n"
            "#EXT-X-MAP:URI=\"init-1.m4s\"\n"
            "#EXTINF:4.000000,\n"
            "chunk-1-00001.m4s\n"
            "#EXTINF:4.000000,\n"
            "chunk-1-00002.m4s\n");
}

TEST(LiveMediaPlaylistTest, StopsAtTheFirstSegmentNotStored) {
  // The third is stored, the second is not: listing the third would leave a
  // hole a player falls into.
  size_t count = 0;
  std::optional<std::string> live = LiveMediaPlaylist(
      kWhileEncoding, StoredSet({"init-1.m4s", "chunk-1-00001.m4s", "chunk-1-00003.m4s"}), &count);
  ASSERT_TRUE(live.has_value());
  EXPECT_EQ(count, 1u);
  EXPECT_THAT(PlaylistSegments(*live), ElementsAre("chunk-1-00001.m4s"));
}

TEST(LiveMediaPlaylistTest, NothingWithoutTheInitSegmentOrAnySegment) {
  EXPECT_FALSE(LiveMediaPlaylist(kWhileEncoding, StoredSet({"chunk-1-00001.m4s"})).has_value());
  EXPECT_FALSE(LiveMediaPlaylist(kWhileEncoding, StoredSet({"init-1.m4s"})).has_value());
  EXPECT_FALSE(
      LiveMediaPlaylist("not a playlist\nchunk-1-00001.m4s\n", StoredSet({"chunk-1-00001.m4s"}))
          .has_value());
}

TEST(LiveMediaPlaylistTest, NeverEndsTheListAndRefusesNamesThatAreNotContentNames) {
  std::string ended = std::string(kWhileEncoding) + "#EXT-X-ENDLIST\n";
  std::optional<std::string> live = LiveMediaPlaylist(
      ended,
      StoredSet({"init-1.m4s", "chunk-1-00001.m4s", "chunk-1-00002.m4s", "chunk-1-00003.m4s"}));
  ASSERT_TRUE(live.has_value());
  EXPECT_EQ(live->find("ENDLIST"), std::string::npos);
  EXPECT_EQ(live->find("PROGRAM-DATE-TIME"), std::string::npos);

  const std::string hostile =
      "#EXTM3U\n#EXT-X-MAP:URI=\"init-1.m4s\"\n#EXTINF:4,\n../../etc/passwd\n";
  EXPECT_FALSE(LiveMediaPlaylist(hostile, [](std::string_view) { return true; }).has_value());
}

TEST(LiveMediaPlaylistTest, CrlfLineEndsAreRead) {
  std::optional<std::string> live = LiveMediaPlaylist(
      "#EXTM3U\r\n#EXT-X-MAP:URI=\"init-0.m4s\"\r\n#EXTINF:4,\r\nchunk-0-00001.m4s\r\n",
      StoredSet({"init-0.m4s", "chunk-0-00001.m4s"}));
  ASSERT_TRUE(live.has_value());
  EXPECT_THAT(PlaylistSegments(*live), ElementsAre("chunk-0-00001.m4s"));
  EXPECT_EQ(live->find('\r'), std::string::npos);
}

TEST(MasterPlaylistUrisTest, VariantsAndMediaRenditions) {
  EXPECT_THAT(MasterPlaylistUris(
                  "#EXTM3U\n#EXT-X-VERSION:7\n"
                  "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"group_A1\",NAME=\"audio_2\",DEFAULT=YES,"
                  "URI=\"media_2.m3u8\"\n"
                  "#EXT-X-STREAM-INF:BANDWIDTH=2433672,RESOLUTION=1280x720,"
                  "CODECS=\"avc1.64001f,mp4a.40.2\",AUDIO=\"group_A1\"\n"
                  "media_0.m3u8\n\n"
                  "#EXT-X-STREAM-INF:BANDWIDTH=403046,RESOLUTION=640x360\n"
                  "media_1.m3u8\n"),
              ElementsAre("media_2.m3u8", "media_0.m3u8", "media_1.m3u8"));
  EXPECT_THAT(MasterPlaylistUris("#EXTM3U\n"), IsEmpty());
}

}  // namespace
}  // namespace streamgrid
