#include "transcode/media_policy.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transcode/ffmpeg_args.h"
#include "transcode/ladder.h"

namespace streamgrid {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

MediaInfo Video(int width, int height, double seconds = 10) {
  MediaInfo info;
  info.width = width;
  info.height = height;
  info.duration_seconds = seconds;
  info.frame_rate = 30;
  info.has_video = true;
  info.has_audio = true;
  info.stream_count = 2;
  return info;
}

// Every "-i" in `args` is preceded by exactly the safety options for `format`.
void ExpectEveryInputWhitelisted(const std::vector<std::string>& args,
                                 std::string_view format = "") {
  const std::vector<std::string> safety = InputSafetyOptions(format);
  int inputs = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] != "-i") continue;
    ++inputs;
    ASSERT_GE(i, safety.size());
    std::vector<std::string> before(args.begin() + static_cast<long>(i - safety.size()),
                                    args.begin() + static_cast<long>(i));
    EXPECT_EQ(before, safety) << "input " << inputs;
  }
  EXPECT_GE(inputs, 1);
}

TEST(InputSafetyOptionsTest, ListsContainersAndOnlyTheFileProtocol) {
  std::vector<std::string> options = InputSafetyOptions();
  ASSERT_EQ(options.size(), 4u);
  EXPECT_EQ(options[0], "-format_whitelist");
  EXPECT_EQ(options[2], "-protocol_whitelist");
  EXPECT_EQ(options[3], "file");
  for (const char* name : {"mov", "mp4", "matroska", "webm", "avi", "mpegts", "flv", "ogg", "asf",
                           "mpeg", "mxf", "dv"}) {
    EXPECT_TRUE(IsAllowedInputFormat(name)) << name;
  }
  // Demuxers that open other files or URLs, read images, or generate input.
  for (const char* name :
       {"hls", "applehttp", "dash", "concat", "image2", "png_pipe", "jpeg_pipe", "tee", "lavfi",
        "sdp", "rtsp", "imf", "vobsub", "webm_dash_manifest", "tty", "avisynth", "vapoursynth"}) {
    EXPECT_FALSE(IsAllowedInputFormat(name)) << name;
    EXPECT_THAT(options[1], Not(HasSubstr(std::string(",") + name + ",")));
  }
}

TEST(InputSafetyOptionsTest, MatchesFfprobeFormatNames) {
  EXPECT_TRUE(IsAllowedInputFormat("mov,mp4,m4a,3gp,3g2,mj2"));
  EXPECT_TRUE(IsAllowedInputFormat("matroska,webm"));
  EXPECT_FALSE(IsAllowedInputFormat(""));
  EXPECT_FALSE(IsAllowedInputFormat("mp"));       // whole names only
  EXPECT_FALSE(IsAllowedInputFormat("mpegtsx"));  // likewise
}

TEST(InputSafetyOptionsTest, EveryCommandCarriesThem) {
  MediaInfo info = Video(1280, 720);
  ExpectEveryInputWhitelisted(
      BuildLadderCommand("ffmpeg", "/in/source", info, SelectLadder(info), "/out"));
  ExpectEveryInputWhitelisted(BuildThumbnailCommand("ffmpeg", "/in/source", info, 5, "/out"));
}

TEST(InputSafetyOptionsTest, PinMovExternalReferencesOffWhenTheFormatIsKnown) {
  const std::string mov = "mov,mp4,m4a,3gp,3g2,mj2";
  std::vector<std::string> options = InputSafetyOptions(mov);
  ASSERT_EQ(options.size(), 8u);
  EXPECT_EQ(std::vector<std::string>(options.begin() + 4, options.end()),
            (std::vector<std::string>{"-enable_drefs", "0", "-use_absolute_path", "0"}));
  EXPECT_EQ(InputSafetyOptions("matroska,webm").size(), 4u);
  EXPECT_EQ(InputSafetyOptions("").size(), 4u);

  MediaInfo info = Video(1280, 720);
  info.format_name = mov;
  ExpectEveryInputWhitelisted(
      BuildLadderCommand("ffmpeg", "/in/source", info, SelectLadder(info), "/out"), mov);
  ExpectEveryInputWhitelisted(BuildThumbnailCommand("ffmpeg", "/in/source", info, 5, "/out"), mov);
}

TEST(RefusedFormatMessageTest, SaysWhatTheFileIsAndWhatIsAccepted) {
  EXPECT_THAT(RefusedFormatMessage("hls"), HasSubstr("HLS playlist"));
  EXPECT_THAT(RefusedFormatMessage("dash"), HasSubstr("DASH manifest"));
  EXPECT_THAT(RefusedFormatMessage("concat"), HasSubstr("concat list"));
  EXPECT_THAT(RefusedFormatMessage("png_pipe"), HasSubstr("image"));
  EXPECT_THAT(RefusedFormatMessage("image2"), HasSubstr("image"));
  EXPECT_THAT(RefusedFormatMessage("tty"), HasSubstr("not a video"));
  for (const char* demuxer : {"hls", "tty", ""}) {
    EXPECT_THAT(RefusedFormatMessage(demuxer), HasSubstr("MP4")) << demuxer;
    EXPECT_THAT(RefusedFormatMessage(demuxer), HasSubstr("WebM")) << demuxer;
  }
}

TEST(CheckMediaLimitsTest, DefaultsAcceptPhone4KAndCamera8KEitherWayUp) {
  MediaLimits limits;
  for (auto [w, h] : std::vector<std::pair<int, int>>{
           {3840, 2160}, {2160, 3840}, {7680, 4320}, {4320, 7680}, {8192, 4320}, {4320, 8192}}) {
    EXPECT_TRUE(CheckMediaLimits(Video(w, h, 3600), limits).ok()) << w << "x" << h;
  }
}

TEST(CheckMediaLimitsTest, BeyondALimitIsOutOfRangeNamingIt) {
  MediaLimits limits;
  absl::Status wide = CheckMediaLimits(Video(8200, 4320), limits);
  EXPECT_EQ(wide.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(wide.message(), HasSubstr("8200x4320"));
  EXPECT_THAT(wide.message(), HasSubstr("8192x4320"));
  EXPECT_EQ(CheckMediaLimits(Video(4400, 8192), limits).code(), absl::StatusCode::kOutOfRange);

  limits.max_duration_seconds = 60;
  EXPECT_TRUE(CheckMediaLimits(Video(640, 360, 60), limits).ok());
  absl::Status long_video = CheckMediaLimits(Video(640, 360, 61), limits);
  EXPECT_EQ(long_video.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(long_video.message(), HasSubstr("61 seconds"));
  EXPECT_THAT(long_video.message(), HasSubstr("60 seconds"));

  MediaInfo many = Video(640, 360);
  many.stream_count = limits.max_streams + 1;
  absl::Status streams = CheckMediaLimits(many, limits);
  EXPECT_EQ(streams.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(streams.message(), HasSubstr("streams"));
}

TEST(ParseMaxResolutionTest, TakesEitherOrientation) {
  MediaLimits limits;
  ASSERT_TRUE(ParseMaxResolution("320x240", &limits).ok());
  EXPECT_EQ(limits.max_long_side, 320);
  EXPECT_EQ(limits.max_short_side, 240);
  ASSERT_TRUE(ParseMaxResolution("240X320", &limits).ok());
  EXPECT_EQ(limits.max_long_side, 320);
  EXPECT_EQ(limits.max_short_side, 240);
  EXPECT_TRUE(CheckMediaLimits(Video(240, 320), limits).ok());
  EXPECT_TRUE(CheckMediaLimits(Video(320, 240), limits).ok());
  EXPECT_FALSE(CheckMediaLimits(Video(640, 360), limits).ok());
  for (const char* bad : {"", "320", "x240", "320x", "0x0", "1x240", "-320x240", "320x240x2",
                          "abcxdef", "99999999x2"}) {
    EXPECT_EQ(ParseMaxResolution(bad, &limits).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(TranscodeTimeLimitTest, IsFactorTimesDurationPlusFloor) {
  using std::chrono::milliseconds;
  EXPECT_EQ(TranscodeTimeLimit(10, 3, milliseconds(500)), milliseconds(30'500));
  EXPECT_EQ(TranscodeTimeLimit(0.5, 0.01, milliseconds(0)), milliseconds(5));
  EXPECT_EQ(TranscodeTimeLimit(10, 0, milliseconds(500)), milliseconds(0));  // no limit
  EXPECT_EQ(TranscodeTimeLimit(-5, 2, milliseconds(100)), milliseconds(100));
  // An absurd duration does not overflow.
  EXPECT_GT(TranscodeTimeLimit(1e300, 30, milliseconds(0)).count(), 0);
}

}  // namespace
}  // namespace streamgrid
