#include "transcode/probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transcode/cancel_token.h"
#include "transcode/ffmpeg_args.h"
#include "transcode/ladder.h"
#include "transcode/media_policy.h"
#include "transcode/subprocess.h"
#include "transcode/testing/test_media.h"

namespace streamgrid {
namespace {

namespace fs = std::filesystem;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using testing::ReadTestFile;

constexpr char kText[] = "These are not the frames you are looking for.\n";

std::string HlsPlaylist(const std::string& uri) {
  return absl::StrCat("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n", uri,
                      "\n#EXT-X-ENDLIST\n");
}

std::string DashManifest(const std::string& base_url, const std::string& file) {
  return absl::StrCat(
      "<?xml version=\"1.0\"?>\n"
      "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" type=\"static\" "
      "mediaPresentationDuration=\"PT3S\" minBufferTime=\"PT2S\" "
      "profiles=\"urn:mpeg:dash:profile:isoff-on-demand:2011\">\n"
      "  <BaseURL>",
      base_url,
      "</BaseURL>\n"
      "  <Period><AdaptationSet mimeType=\"video/mp4\">\n"
      "    <Representation id=\"1\" bandwidth=\"100000\" width=\"320\" height=\"180\">"
      "<BaseURL>",
      file, "</BaseURL></Representation>\n  </AdaptationSet></Period>\n</MPD>\n");
}

// The demuxer ffprobe picks for `path` without any whitelist: its
// format_name, or when reading fails, the "[name @ 0x...]" of its complaint.
std::string UnrestrictedFormat(const fs::path& path) {
  absl::StatusOr<std::string> out =
      testing::RunForTest({"ffprobe", "-v", "error", "-show_entries", "format=format_name", "-of",
                           "csv=p=0", "file:" + path.string()});
  if (out.ok()) return std::string(StripWhitespace(*out));
  const std::string error(out.status().message());
  size_t open = error.find('['), at = error.find(" @ ");
  if (open == std::string::npos || at == std::string::npos || at < open) return error;
  return error.substr(open + 1, at - open - 1);
}

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
        // Hostile inputs: text and images FFmpeg would open as playlists,
        // lists or image sequences, reading what they name.
        {"segment.ts", [](const fs::path& p) { return MakeTestVideo(p, Spec(1, false)); }},
        {"abs-path.m3u8",
         [](const fs::path& p) {
           return WriteTestFile(p, HlsPlaylist(Path("segment.ts").string()));
         }},
        {"file-url.m3u8",
         [](const fs::path& p) {
           return WriteTestFile(p, HlsPlaylist("file:" + Path("segment.ts").string()));
         }},
        {"named.txt",  // the same playlist under an innocent name
         [](const fs::path& p) {
           return WriteTestFile(p, HlsPlaylist(Path("segment.ts").string()));
         }},
        {"list.ffconcat",
         [](const fs::path& p) {
           // Relative, or the concat demuxer's safe mode would refuse it
           // anyway; we must not rely on that.
           return WriteTestFile(p, absl::StrCat("ffconcat version 1.0\nfile ",
                                                Path("segment.ts").filename().string(), "\n"));
         }},
        {"manifest.mpd",
         [](const fs::path& p) {
           return WriteTestFile(p, DashManifest("file://" + media_->dir().string() + "/",
                                                Path("av.mp4").filename().string()));
         }},
        {"img%03d.jpg",
         [](const fs::path& p) {
           absl::StatusOr<std::string> bytes = ReadTestFile(Path("still.jpg"));
           if (!bytes.ok()) return bytes.status();
           return WriteTestFile(p, *bytes);
         }},
        // Written as a live stream, as a browser's MediaRecorder writes: no
        // duration, no index, a segment of unknown size.
        {"live.webm",
         [](const fs::path& p) {
           return MakeFromLavfi(p, {"-f",
                                    "lavfi",
                                    "-i",
                                    "testsrc2=size=320x240:rate=25:duration=2",
                                    "-f",
                                    "lavfi",
                                    "-i",
                                    "sine=duration=2",
                                    "-c:v",
                                    "libvpx",
                                    "-deadline",
                                    "realtime",
                                    "-b:v",
                                    "200k",
                                    "-c:a",
                                    "libopus",
                                    "-f",
                                    "webm",
                                    "-live",
                                    "1",
                                    "-cluster_time_limit",
                                    "500"});
         }},
        {"live.ts",
         [](const fs::path& p) {
           return MakeFromLavfi(p, {"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2",
                                    "-c:v", "libx264", "-preset", "ultrafast", "-f", "mpegts"});
         }},
        // Describes as ffprobe does, but never finishes listing packets.
        {"slow-ffprobe",
         [](const fs::path& p) {
           absl::Status status =
               WriteTestFile(p,
                             "#!/bin/sh\ncase \"$*\" in *show_entries*) exec sleep 300;; esac\n"
                             "exec ffprobe \"$@\"\n");
           fs::permissions(p, fs::perms::owner_all);
           return status;
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

// A cut inside the very last packet leaves every index entry but one inside
// the file, and that one only shortened: the MP4's own box sizes tell.
TEST_F(ProbeTest, VerifyMediaEndCatchesACutOfAFewBytes) {
  absl::StatusOr<std::string> bytes = testing::ReadTestFile(Path("faststart.mp4"));
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  fs::path cut = media_->dir() / "faststart-minus-10.mp4";
  ASSERT_TRUE(testing::WriteTestFile(cut, bytes->substr(0, bytes->size() - 10)).ok());
  absl::StatusOr<MediaInfo> info = ProbeMedia(cut);
  ASSERT_TRUE(info.ok()) << info.status();
  absl::Status end = VerifyMediaEnd(cut, *info);
  EXPECT_EQ(end.code(), absl::StatusCode::kDataLoss) << end;
}

// Matroska declares its segment's size up front: a cut file is caught too,
// and the whole one passes.
TEST_F(ProbeTest, VerifyMediaEndCatchesACutMatroskaFile) {
  absl::StatusOr<MediaInfo> whole = ProbeMedia(Path("silent.mkv"));
  ASSERT_TRUE(whole.ok()) << whole.status();
  absl::Status intact = VerifyMediaEnd(Path("silent.mkv"), *whole);
  EXPECT_TRUE(intact.ok()) << intact;

  absl::StatusOr<std::string> bytes = testing::ReadTestFile(Path("silent.mkv"));
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  for (size_t keep : {bytes->size() * 3 / 4, bytes->size() - 3}) {
    fs::path cut = media_->dir() / "cut.mkv";
    ASSERT_TRUE(testing::WriteTestFile(cut, bytes->substr(0, keep)).ok());
    absl::StatusOr<MediaInfo> info = ProbeMedia(cut);
    if (!info.ok()) {
      EXPECT_EQ(info.status().code(), absl::StatusCode::kDataLoss) << info.status();
      continue;
    }
    absl::Status end = VerifyMediaEnd(cut, *info);
    EXPECT_EQ(end.code(), absl::StatusCode::kDataLoss) << "kept " << keep << ": " << end;
  }
}

// Containers without framing to check (AVI's index is at its end) get the
// packet check: the packets stop before the duration the header promises.
TEST_F(ProbeTest, VerifyMediaEndCatchesACutFileByItsPackets) {
  fs::path whole = media_->dir() / "whole.avi";
  ASSERT_TRUE(MakeFromLavfi(whole, {"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=3",
                                    "-c:v", "mpeg4"})
                  .ok());
  absl::StatusOr<MediaInfo> info = ProbeMedia(whole);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(VerifyMediaEnd(whole, *info).ok());

  absl::StatusOr<std::string> bytes = testing::ReadTestFile(whole);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  fs::path cut = media_->dir() / "cut.avi";
  ASSERT_TRUE(testing::WriteTestFile(cut, bytes->substr(0, bytes->size() / 2)).ok());
  absl::StatusOr<MediaInfo> cut_info = ProbeMedia(cut);
  if (!cut_info.ok()) {
    EXPECT_EQ(cut_info.status().code(), absl::StatusCode::kDataLoss) << cut_info.status();
    return;
  }
  absl::Status end = VerifyMediaEnd(cut, *cut_info);
  EXPECT_EQ(end.code(), absl::StatusCode::kDataLoss)
      << end << " duration " << cut_info->duration_seconds;
}

// A file that states no length is read through (demuxing only) and measured.
TEST_F(ProbeTest, ALiveWrittenWebmIsMeasuredByReadingItThrough) {
  absl::StatusOr<MediaInfo> info = ProbeMedia(Path("live.webm"));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->duration_measured);
  EXPECT_NEAR(info->duration_seconds, 2.0, 0.05);  // about a frame
  EXPECT_EQ(info->video_codec, "vp8");
  EXPECT_TRUE(info->has_audio);
  EXPECT_TRUE(VerifyMediaEnd(Path("live.webm"), *info).ok());

  // Cut short, it is a shorter recording: nothing claims more.
  absl::StatusOr<std::string> bytes = testing::ReadTestFile(Path("live.webm"));
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  fs::path cut = media_->dir() / "live-cut.webm";
  ASSERT_TRUE(testing::WriteTestFile(cut, bytes->substr(0, bytes->size() / 2)).ok());
  absl::StatusOr<MediaInfo> cut_info = ProbeMedia(cut);
  ASSERT_TRUE(cut_info.ok()) << cut_info.status();
  EXPECT_TRUE(cut_info->duration_measured);
  EXPECT_GT(cut_info->duration_seconds, 0.2);
  EXPECT_LT(cut_info->duration_seconds, 1.8);
  EXPECT_TRUE(VerifyMediaEnd(cut, *cut_info).ok());

  // Only its header and the start of a cluster: nothing to measure by.
  const size_t cluster = bytes->find("\x1f\x43\xb6\x75");
  ASSERT_NE(cluster, std::string::npos);
  fs::path header = media_->dir() / "live-header.webm";
  ASSERT_TRUE(testing::WriteTestFile(header, bytes->substr(0, cluster + 12)).ok());
  absl::StatusOr<MediaInfo> none = ProbeMedia(header);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kDataLoss) << none.status();
  EXPECT_THAT(none.status().message(), HasSubstr("length cannot be determined"));
}

// An MPEG-TS written to a pipe has no index either, but FFmpeg reads its
// length from the timestamps at its end: nothing to measure.
TEST_F(ProbeTest, ALiveWrittenMpegTsIsAccepted) {
  absl::StatusOr<MediaInfo> info = ProbeMedia(Path("live.ts"));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->duration_measured);
  EXPECT_NEAR(info->duration_seconds, 2.0, 0.1);
  EXPECT_TRUE(VerifyMediaEnd(Path("live.ts"), *info).ok());
}

// Reading through has the probe's deadline (fresh) and cancellation.
TEST_F(ProbeTest, MeasuringIsBoundedByTheTimeout) {
  ProbeOptions options;
  options.ffprobe = Path("slow-ffprobe").string();
  // Ample for the description on a busy machine; the listing never ends.
  options.timeout = std::chrono::milliseconds(4000);
  absl::StatusOr<MediaInfo> info = ProbeMedia(Path("live.webm"), options);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kDeadlineExceeded) << info.status();
  EXPECT_THAT(info.status().message(), HasSubstr("Measuring the video's length"));
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

// A live-written file states no length: the description is kept, with the
// length left at 0 for ProbeMedia() to measure.
TEST(ParseProbeJsonTest, NoDurationIsLeftToBeMeasured) {
  for (const char* format : {R"("duration": "0.000000")", R"("duration": "N/A")", R"("x": 1)"}) {
    absl::StatusOr<MediaInfo> info = ParseProbeJson(absl::StrCat(R"({
      "streams": [{"codec_type": "video", "codec_name": "vp8", "width": 640, "height": 360}],
      "format": {"format_name": "matroska,webm", )",
                                                                 format, "}}"));
    ASSERT_TRUE(info.ok()) << format << ": " << info.status();
    EXPECT_EQ(info->duration_seconds, 0) << format;
    EXPECT_FALSE(info->duration_measured) << format;
    EXPECT_EQ(info->width, 640) << format;
  }
}

// The length is where the last packet ends, counted from the file's start
// (an Opus track's pre-skip makes that slightly negative).
TEST(DurationFromPacketsTest, MeasuresFromTheStart) {
  absl::StatusOr<double> duration = DurationFromPackets(251, 3.014, -0.007);
  ASSERT_TRUE(duration.ok()) << duration.status();
  EXPECT_DOUBLE_EQ(*duration, 3.021);
  duration = DurationFromPackets(90, 4.4, 1.4);  // MPEG-TS starts at 1.4 s
  ASSERT_TRUE(duration.ok()) << duration.status();
  EXPECT_DOUBLE_EQ(*duration, 3.0);
}

TEST(DurationFromPacketsTest, NoTimedPacketsIsDataLoss) {
  for (auto [packets, max_end, start] :
       {std::tuple<int64_t, double, double>{0, 0, 0}, {12, 0, 0}, {5, 1.0, 1.4}}) {
    absl::StatusOr<double> duration = DurationFromPackets(packets, max_end, start);
    EXPECT_EQ(duration.status().code(), absl::StatusCode::kDataLoss) << packets << " " << max_end;
    EXPECT_THAT(duration.status().message(), HasSubstr("length cannot be determined"));
  }
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

// Each hostile file is what it claims to be: without the whitelist, FFmpeg
// would open it as a playlist, list, manifest or image sequence.
TEST_F(ProbeTest, HostileFilesWouldBeOpenedAsWhatTheyAre) {
  EXPECT_EQ(UnrestrictedFormat(Path("abs-path.m3u8")), "hls");
  EXPECT_EQ(UnrestrictedFormat(Path("file-url.m3u8")), "hls");
  EXPECT_EQ(UnrestrictedFormat(Path("named.txt")), "hls");
  EXPECT_EQ(UnrestrictedFormat(Path("list.ffconcat")), "concat");
  EXPECT_EQ(UnrestrictedFormat(Path("manifest.mpd")), "dash");
  EXPECT_EQ(UnrestrictedFormat(Path("img%03d.jpg")), "image2");
}

TEST_F(ProbeTest, PlaylistsListsManifestsAndImagesAreRefused) {
  struct Case {
    const char* file;
    const char* says;
  };
  for (const Case& c : {Case{"abs-path.m3u8", "HLS playlist"},
                        Case{"file-url.m3u8", "HLS playlist"}, Case{"named.txt", "HLS playlist"},
                        Case{"list.ffconcat", "concat list"}, Case{"manifest.mpd", "DASH manifest"},
                        Case{"img%03d.jpg", "image"}, Case{"still.png", "image"}}) {
    absl::StatusOr<MediaInfo> info = ProbeMedia(Path(c.file));
    EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument) << c.file;
    EXPECT_THAT(info.status().message(), HasSubstr(c.says)) << c.file;
    EXPECT_THAT(info.status().message(), HasSubstr("MP4")) << c.file;
    EXPECT_THAT(info.status().message(), ::testing::Not(HasSubstr(media_->dir().string())));
  }
}

// An HLS playlist naming a URL on a listening socket: nothing connects.
TEST_F(ProbeTest, APlaylistNamingAUrlFetchesNothing) {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(listener, 16), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
  fs::path playlist = media_->dir() / "url.m3u8";
  ASSERT_TRUE(testing::WriteTestFile(
                  playlist, HlsPlaylist(absl::StrCat("http://127.0.0.1:", ntohs(address.sin_port),
                                                     "/segment.ts")))
                  .ok());

  absl::StatusOr<MediaInfo> info = ProbeMedia(playlist);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(info.status().message(), HasSubstr("HLS playlist"));
  MediaInfo fake;
  fake.duration_seconds = 1;
  fake.width = 320;
  fake.height = 180;
  EXPECT_EQ(VerifyMediaEnd(playlist, fake).code(), absl::StatusCode::kInvalidArgument);

  // ffprobe and ffmpeg have exited: a connection they made would be queued.
  int accepted = ::accept(listener, nullptr, nullptr);
  int accept_errno = errno;
  EXPECT_EQ(accepted, -1);
  EXPECT_EQ(accept_errno, EAGAIN);
  if (accepted >= 0) ::close(accepted);
  ::close(listener);
}

// The end check, the ladder and the thumbnail are as strict as the probe:
// run on a playlist, each ffmpeg refuses to open it.
TEST_F(ProbeTest, EveryFfmpegCommandRefusesAPlaylist) {
  fs::path playlist = Path("abs-path.m3u8");
  MediaInfo fake;
  fake.duration_seconds = 1;
  fake.width = 320;
  fake.height = 180;
  fake.frame_rate = 30;
  fake.has_video = true;
  absl::Status end = VerifyMediaEnd(playlist, fake);
  EXPECT_EQ(end.code(), absl::StatusCode::kInvalidArgument) << end;
  EXPECT_THAT(end.message(), HasSubstr("HLS playlist"));

  testing::TempDir out;
  for (const std::vector<std::string>& argv :
       {BuildLadderCommand("ffmpeg", playlist, fake, SelectLadder(fake), out.path()),
        BuildThumbnailCommand("ffmpeg", playlist, fake, 0, out.path())}) {
    absl::StatusOr<SubprocessOutput> run =
        RunSubprocess(argv, {.deadline = std::chrono::milliseconds(60'000)});
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_FALSE(run->exit.success());
    EXPECT_THAT(run->stderr_tail, HasSubstr("Format not on whitelist")) << argv.back();
  }
  EXPECT_TRUE(fs::is_empty(out.path()));
}

// Containers a camera, phone or screen recorder writes still probe and pass
// the end check.
TEST_F(ProbeTest, AcceptsTheContainersOfCamerasAndPhones) {
  struct Sample {
    const char* name;
    std::vector<std::string> codec;
  };
  const std::vector<Sample> samples = {
      {"c.mp4", {"-c:v", "libx264"}},
      {"c.mov", {"-c:v", "libx264"}},
      {"c.3gp", {"-c:v", "h263", "-s", "352x288"}},
      {"c.mkv", {"-c:v", "libx264"}},
      {"c.webm", {"-c:v", "libvpx", "-b:v", "200k"}},
      {"c.avi", {"-c:v", "mpeg4"}},
      {"c.ts", {"-c:v", "libx264"}},
      {"c.m2ts", {"-c:v", "libx264", "-f", "mpegts"}},
      {"c.flv", {"-c:v", "flv"}},
      {"c.ogv", {"-c:v", "libtheora"}},
      {"c.wmv", {"-c:v", "wmv2"}},
      {"c.mpg", {"-c:v", "mpeg2video"}},
      {"c.mxf", {"-c:v", "mpeg2video"}},
      {"c.dv", {"-c:v", "dvvideo", "-s", "720x576", "-pix_fmt", "yuv420p", "-r", "25"}},
  };
  for (const Sample& sample : samples) {
    fs::path path = media_->dir() / sample.name;
    std::vector<std::string> args = {"-f", "lavfi", "-i",
                                     "testsrc2=size=320x240:rate=25:duration=1"};
    args.insert(args.end(), sample.codec.begin(), sample.codec.end());
    ASSERT_TRUE(MakeFromLavfi(path, args).ok()) << sample.name;
    absl::StatusOr<MediaInfo> info = ProbeMedia(path);
    ASSERT_TRUE(info.ok()) << sample.name << ": " << info.status();
    EXPECT_TRUE(IsAllowedInputFormat(info->format_name)) << info->format_name;
    EXPECT_NEAR(info->duration_seconds, 1.0, 0.25) << sample.name;
    absl::Status end = VerifyMediaEnd(path, *info);
    EXPECT_TRUE(end.ok()) << sample.name << ": " << end;
  }
}

// The one allowed demuxer that can open other files (QuickTime external data
// references) does so only when asked; we never ask. Guards against an FFmpeg
// whose defaults differ.
TEST(MovDemuxerTest, ExternalReferencesAreOffByDefault) {
  absl::StatusOr<std::string> help =
      testing::RunForTest({"ffprobe", "-hide_banner", "-h", "demuxer=mov"});
  ASSERT_TRUE(help.ok()) << help.status();
  bool saw_drefs = false, saw_absolute = false;
  for (std::string_view line : NonEmptyLines(*help)) {
    if (line.starts_with("-enable_drefs ")) {
      saw_drefs = true;
      EXPECT_THAT(std::string(line), HasSubstr("(default false)"));
    }
    if (line.starts_with("-use_absolute_path ")) {
      saw_absolute = true;
      EXPECT_THAT(std::string(line), HasSubstr("(default false)"));
    }
  }
  EXPECT_TRUE(saw_drefs);
  EXPECT_TRUE(saw_absolute);
}

TEST(ParseProbeJsonTest, FormatsOffTheListAreRefused) {
  absl::StatusOr<MediaInfo> info = ParseProbeJson(R"({
    "streams": [{"codec_type": "video", "codec_name": "h264", "width": 640, "height": 360}],
    "format": {"format_name": "hls", "duration": "10"}
  })");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(info.status().message(), HasSubstr("HLS playlist"));
}

TEST(ParseProbeJsonTest, CountsStreams) {
  absl::StatusOr<MediaInfo> info = ParseProbeJson(R"({
    "streams": [{"codec_type": "video", "codec_name": "h264", "width": 640, "height": 360},
                {"codec_type": "audio"}, {"codec_type": "audio"}, {"codec_type": "data"}],
    "format": {"format_name": "mpegts", "duration": "10"}
  })");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->stream_count, 4);
}

}  // namespace
}  // namespace streamgrid
