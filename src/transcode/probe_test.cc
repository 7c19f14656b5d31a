#include "transcode/probe.h"

#include <filesystem>
#include <fstream>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transcode/cancel_token.h"
#include "transcode/testing/test_media.h"

namespace streamgrid {
namespace {

namespace fs = std::filesystem;
using ::testing::AnyOf;
using ::testing::HasSubstr;

constexpr char kText[] = "These are not the frames you are looking for.\n";

testing::TestVideoSpec Spec(double seconds, bool audio, int fps = 30, int rotate = 0) {
  testing::TestVideoSpec spec;
  spec.seconds = seconds;
  spec.audio = audio;
  spec.fps = fps;
  spec.rotate = rotate;
  return spec;
}

absl::Status MakeFromLavfi(const fs::path& path, std::vector<std::string> args) {
  args.push_back(path.string());
  return testing::RunFfmpegForTest(args);
}

class ProbeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    using testing::MakeTestVideo;
    using testing::WriteTestFile;
    media_ = new testing::LazyMedia({
        {"av.mp4", [](const fs::path& p) { return MakeTestVideo(p, Spec(3, true)); }},
        {"silent.mkv", [](const fs::path& p) { return MakeTestVideo(p, Spec(2, false, 25)); }},
        {"rotated.mp4", [](const fs::path& p) { return MakeTestVideo(p, Spec(1, true, 30, 90)); }},
        {"still.jpg",
         [](const fs::path& p) {
           return MakeFromLavfi(p,
                                {"-f", "lavfi", "-i", "testsrc2=size=320x180", "-frames:v", "1"});
         }},
        {"still.png",
         [](const fs::path& p) {
           return MakeFromLavfi(p,
                                {"-f", "lavfi", "-i", "testsrc2=size=320x180", "-frames:v", "1"});
         }},
        {"sound.m4a",
         [](const fs::path& p) {
           return MakeFromLavfi(p, {"-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac"});
         }},
        {"anamorphic.mp4",
         [](const fs::path& p) {
           return MakeFromLavfi(
               p, {"-f", "lavfi", "-i", "testsrc2=size=320x240:duration=1,setsar=4/3", "-c:v",
                   "libx264", "-preset", "ultrafast"});
         }},
        {"notes.txt", [](const fs::path& p) { return WriteTestFile(p, kText); }},
        {"notes.mp4", [](const fs::path& p) { return WriteTestFile(p, kText); }},
        {"empty.mp4", [](const fs::path& p) { return WriteTestFile(p, ""); }},
        // The MP4 muxer writes its index (moov) last: half a file has none.
        {"truncated.mp4",
         [](const fs::path& p) {
           absl::StatusOr<std::string> bytes = testing::ReadTestFile(Path("av.mp4"));
           if (!bytes.ok()) return bytes.status();
           return WriteTestFile(p, bytes->substr(0, bytes->size() / 2));
         }},
        // Index first (faststart): half a file still probes as whole.
        {"faststart.mp4",
         [](const fs::path& p) {
           return testing::RunFfmpegForTest({"-i", Path("av.mp4").string(), "-c", "copy",
                                             "-movflags", "+faststart", p.string()});
         }},
        {"faststart-truncated.mp4",
         [](const fs::path& p) {
           absl::StatusOr<std::string> bytes = testing::ReadTestFile(Path("faststart.mp4"));
           if (!bytes.ok()) return bytes.status();
           return WriteTestFile(p, bytes->substr(0, bytes->size() / 2));
         }},
        {"stuck-ffprobe",
         [](const fs::path& p) {
           absl::Status status = WriteTestFile(p, "#!/bin/sh\nexec sleep 300\n");
           fs::permissions(p, fs::perms::owner_all);
           return status;
         }},
    });
  }
  static void TearDownTestSuite() {
    delete media_;
    media_ = nullptr;
  }

  static fs::path Path(const std::string& name) {
    absl::StatusOr<fs::path> path = media_->Get(name);
    EXPECT_TRUE(path.ok()) << path.status();
    return path.value_or(media_->dir() / name);
  }

  static testing::LazyMedia* media_;
};

testing::LazyMedia* ProbeTest::media_ = nullptr;

TEST_F(ProbeTest, DescribesAVideoWithSound) {
  absl::StatusOr<MediaInfo> info = ProbeMedia(Path("av.mp4"));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_NEAR(info->duration_seconds, 3.0, 0.1);
  EXPECT_EQ(info->width, 320);
  EXPECT_EQ(info->height, 180);
  EXPECT_EQ(info->rotation, 0);
  EXPECT_DOUBLE_EQ(info->frame_rate, 30.0);
  EXPECT_TRUE(info->has_video);
  EXPECT_TRUE(info->has_audio);
  EXPECT_GT(info->bit_rate, 0);
  EXPECT_THAT(info->format_name, HasSubstr("mp4"));
  EXPECT_EQ(info->video_codec, "h264");
}

TEST_F(ProbeTest, DescribesASilentVideo) {
  absl::StatusOr<MediaInfo> info = ProbeMedia(Path("silent.mkv"));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->has_audio);
  EXPECT_NEAR(info->duration_seconds, 2.0, 0.1);
  EXPECT_DOUBLE_EQ(info->frame_rate, 25.0);
  EXPECT_THAT(info->format_name, HasSubstr("matroska"));
}

TEST_F(ProbeTest, ReportsTheDisplaySizeOfARotatedVideo) {
  absl::StatusOr<MediaInfo> info = ProbeMedia(Path("rotated.mp4"));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->width, 180);
  EXPECT_EQ(info->height, 320);
  EXPECT_THAT(info->rotation, AnyOf(90, 270));
}

TEST_F(ProbeTest, ReportsTheDisplaySizeOfNonSquarePixels) {
  absl::StatusOr<MediaInfo> info = ProbeMedia(Path("anamorphic.mp4"));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->width, 427);  // 320 * 4/3
  EXPECT_EQ(info->height, 240);
}

TEST_F(ProbeTest, StillImagesAreNotVideos) {
  for (const char* name : {"still.jpg", "still.png"}) {
    absl::StatusOr<MediaInfo> info = ProbeMedia(Path(name));
    EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(info.status().message(), HasSubstr("image")) << name;
  }
}

TEST_F(ProbeTest, TextIsNotMedia) {
  for (const char* name : {"notes.txt", "notes.mp4"}) {
    absl::StatusOr<MediaInfo> info = ProbeMedia(Path(name));
    EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(info.status().message(), HasSubstr("not a video")) << name;
  }
}

TEST_F(ProbeTest, SoundOnlyIsNotAVideo) {
  absl::StatusOr<MediaInfo> info = ProbeMedia(Path("sound.m4a"));
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(info.status().message(), HasSubstr("no picture"));
}

TEST_F(ProbeTest, EmptyAndTruncatedFilesAreDataLoss) {
  absl::StatusOr<MediaInfo> empty = ProbeMedia(Path("empty.mp4"));
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(empty.status().message(), HasSubstr("empty"));
  absl::StatusOr<MediaInfo> truncated = ProbeMedia(Path("truncated.mp4"));
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(truncated.status().message(), HasSubstr("incomplete"));
  // Our paths stay out of messages meant for the uploader.
  EXPECT_THAT(truncated.status().message(), ::testing::Not(HasSubstr(media_->dir().string())));
}

TEST_F(ProbeTest, VerifyMediaEndCatchesDataCutShortBehindAnIntactIndex) {
  absl::StatusOr<MediaInfo> whole = ProbeMedia(Path("faststart.mp4"));
  ASSERT_TRUE(whole.ok()) << whole.status();
  absl::Status intact = VerifyMediaEnd(Path("faststart.mp4"), *whole);
  EXPECT_TRUE(intact.ok()) << intact << " duration " << whole->duration_seconds;

  absl::StatusOr<MediaInfo> cut = ProbeMedia(Path("faststart-truncated.mp4"));
  ASSERT_TRUE(cut.ok()) << "the index alone looks complete: " << cut.status();
  absl::Status end = VerifyMediaEnd(Path("faststart-truncated.mp4"), *cut);
  EXPECT_EQ(end.code(), absl::StatusCode::kDataLoss) << end;
  EXPECT_THAT(end.message(), HasSubstr("incomplete"));
}

TEST_F(ProbeTest, MissingFileIsNotFound) {
  EXPECT_EQ(ProbeMedia(media_->dir() / "nope.mp4").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ProbeTest, MissingFfprobeIsAnError) {
  ProbeOptions options;
  options.ffprobe = "/nonexistent/ffprobe";
  absl::StatusOr<MediaInfo> info = ProbeMedia(Path("av.mp4"), options);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ProbeTest, CancellationKillsFfprobe) {
  fs::path stuck = Path("stuck-ffprobe");
  CancelToken cancel;
  ProbeOptions options;
  options.ffprobe = stuck.string();
  options.cancel = &cancel;
  auto start = std::chrono::steady_clock::now();
  // Whether it fires before or during the run, the result is the same.
  std::thread canceller([&] { cancel.Cancel(); });
  absl::StatusOr<MediaInfo> info = ProbeMedia(Path("av.mp4"), options);
  canceller.join();
  EXPECT_EQ(info.status().code(), absl::StatusCode::kCancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST(ParseProbeJsonTest, UsesTheDisplayMatrixAndSkipsCoverArt) {
  absl::StatusOr<MediaInfo> info = ParseProbeJson(R"({
    "streams": [
      {"codec_type": "video", "codec_name": "mjpeg", "width": 600, "height": 600,
       "disposition": {"attached_pic": 1}},
      {"codec_type": "video", "codec_name": "hevc", "width": 1920, "height": 1080,
       "avg_frame_rate": "30000/1001", "r_frame_rate": "30000/1001", "duration": "12.5",
       "sample_aspect_ratio": "1:1",
       "side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]},
      {"codec_type": "audio", "codec_name": "aac"}
    ],
    "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "bit_rate": "8000000"}
  })");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->video_codec, "hevc");
  EXPECT_EQ(info->rotation, 90);
  EXPECT_EQ(info->width, 1080);
  EXPECT_EQ(info->height, 1920);
  EXPECT_NEAR(info->frame_rate, 29.97, 0.01);
  EXPECT_DOUBLE_EQ(info->duration_seconds, 12.5);  // the stream's, lacking the format's
  EXPECT_EQ(info->bit_rate, 8000000);
  EXPECT_TRUE(info->has_audio);
}

TEST(ParseProbeJsonTest, LegacyRotateTag) {
  absl::StatusOr<MediaInfo> info = ParseProbeJson(R"({
    "streams": [{"codec_type": "video", "codec_name": "h264", "width": 1280, "height": 720,
                 "avg_frame_rate": "0/0", "r_frame_rate": "25/1", "tags": {"rotate": "270"}}],
    "format": {"format_name": "mov", "duration": "4.0"}
  })");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->rotation, 270);
  EXPECT_EQ(info->width, 720);
  EXPECT_EQ(info->height, 1280);
  EXPECT_DOUBLE_EQ(info->frame_rate, 25.0);  // avg_frame_rate unknown
  EXPECT_FALSE(info->has_audio);
}

TEST(ParseProbeJsonTest, NoDurationIsDataLoss) {
  absl::StatusOr<MediaInfo> info = ParseProbeJson(R"({
    "streams": [{"codec_type": "video", "codec_name": "h264", "width": 640, "height": 360}],
    "format": {"format_name": "matroska,webm", "duration": "0.000000"}
  })");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kDataLoss);
}

TEST(ParseProbeJsonTest, NoPictureSizeIsDataLoss) {
  absl::StatusOr<MediaInfo> info = ParseProbeJson(R"({
    "streams": [{"codec_type": "video", "codec_name": "h264", "width": 0, "height": 0}],
    "format": {"format_name": "mpegts", "duration": "10"}
  })");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kDataLoss);
}

TEST(ParseProbeJsonTest, MotionJpegWithManyFramesIsAVideo) {
  absl::StatusOr<MediaInfo> info = ParseProbeJson(R"({
    "streams": [{"codec_type": "video", "codec_name": "mjpeg", "width": 640, "height": 480,
                 "nb_frames": "300", "avg_frame_rate": "30/1"}],
    "format": {"format_name": "avi", "duration": "10.0"}
  })");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->video_codec, "mjpeg");
}

TEST(ParseProbeJsonTest, NotJsonIsInternal) {
  EXPECT_EQ(ParseProbeJson("{oops").status().code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace streamgrid
