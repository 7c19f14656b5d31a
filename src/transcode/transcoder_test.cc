#include "transcode/transcoder.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "transcode/ladder.h"
#include "transcode/storyboard.h"
#include "transcode/testing/test_media.h"

namespace streamgrid {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using Clock = std::chrono::steady_clock;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

// An executable shell script at `path`.
absl::Status WriteScript(const fs::path& path, const std::string& body) {
  absl::Status status = testing::WriteTestFile(path, "#!/bin/sh\n" + body + "\n");
  if (status.ok()) fs::permissions(path, fs::perms::owner_all);
  return status;
}

struct ProbedStream {
  std::string type;
  std::string codec;
  int width = 0;
  int height = 0;
  std::string frame_rate;
  std::string display_aspect_ratio;
  int channels = 0;
  int sample_rate = 0;
};

struct Probed {
  double duration = 0;
  std::vector<ProbedStream> streams;
  int video_streams() const {
    return static_cast<int>(std::count_if(streams.begin(), streams.end(),
                                          [](const ProbedStream& s) { return s.type == "video"; }));
  }
  int audio_streams() const { return static_cast<int>(streams.size()) - video_streams(); }
};

Probed ProbeOutput(const fs::path& path) {
  absl::StatusOr<std::string> text = testing::ProbeJsonForTest(path.string());
  EXPECT_TRUE(text.ok()) << text.status();
  Probed probed;
  if (!text.ok()) return probed;
  nlohmann::json json = nlohmann::json::parse(*text);
  probed.duration = std::stod(json["format"].value("duration", "0"));
  for (const auto& stream : json["streams"]) {
    ProbedStream s;
    s.type = stream.value("codec_type", "");
    s.codec = stream.value("codec_name", "");
    s.width = stream.value("width", 0);
    s.height = stream.value("height", 0);
    s.frame_rate = stream.value("r_frame_rate", "");
    s.display_aspect_ratio = stream.value("display_aspect_ratio", "");
    s.channels = stream.value("channels", 0);
    s.sample_rate = std::stoi(stream.value("sample_rate", "0"));
    probed.streams.push_back(s);
  }
  return probed;
}

// Every stream of `url` decodes without error.
void ExpectDecodes(const fs::path& path) {
  absl::Status status =
      testing::RunFfmpegForTest({"-xerror", "-i", path.string(), "-map", "0", "-f", "null", "-"});
  EXPECT_TRUE(status.ok()) << status;
}

// Collects progress reports from Transcode's callback.
struct ProgressLog {
  std::mutex mu;
  std::vector<int> values;
  std::function<void(int)> Callback() {
    return [this](int percent) {
      std::lock_guard lock(mu);
      values.push_back(percent);
    };
  }
};

void ExpectProgressReported(const std::vector<int>& values) {
  ASSERT_FALSE(values.empty());
  EXPECT_TRUE(std::is_sorted(values.begin(), values.end()));
  EXPECT_EQ(std::adjacent_find(values.begin(), values.end()), values.end()) << "repeated values";
  EXPECT_GE(values.front(), 1);
  EXPECT_GE(values.back(), 90);
  EXPECT_LE(values.back(), 99);
}

class TranscoderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    using testing::MakeTestVideo;
    using testing::TestVideoSpec;
    sources_ = new testing::LazyMedia({
        // 360p and 240p; 426x240 is not exactly 16:9, which the DASH muxer
        // would refuse in one adaptation set with 640x360 unless compensated.
        {"two_rungs.mp4",
         [](const fs::path& p) {
           return MakeTestVideo(p, TestVideoSpec{.width = 640, .height = 360, .seconds = 2});
         }},
        {"silent.mp4",
         [](const fs::path& p) {
           return MakeTestVideo(p, TestVideoSpec{.width = 320, .height = 240, .audio = false});
         }},
        {"odd.mkv",
         [](const fs::path& p) {
           return MakeTestVideo(p, TestVideoSpec{.width = 171, .height = 97, .seconds = 2});
         }},
        {"rotated.mp4",
         [](const fs::path& p) {
           return MakeTestVideo(p, TestVideoSpec{.seconds = 2, .rotate = 90});
         }},
        {"vfr.mkv",
         [](const fs::path& p) {
           return MakeTestVideo(p, TestVideoSpec{.audio = false, .variable_frame_rate = true});
         }},
        // A DCI 8K camera's picture: a few frames keep it cheap.
        {"camera8k.mp4",
         [](const fs::path& p) {
           return MakeTestVideo(
               p, TestVideoSpec{
                      .width = 8192, .height = 4320, .fps = 6, .seconds = 2, .audio = false});
         }},
        // Four frames: at 4 fps ffmpeg's reported output time trails the
        // end by more than the fixed slack.
        {"lowfps.mp4",
         [](const fs::path& p) {
           return MakeTestVideo(p, TestVideoSpec{.fps = 4, .seconds = 1, .audio = false});
         }},
        {"notes.txt",
         [](const fs::path& p) { return testing::WriteTestFile(p, "just some text\n"); }},
        {"truncated.mp4",
         [](const fs::path& p) {
           absl::StatusOr<std::string> bytes = testing::ReadTestFile(Source("silent.mp4"));
           if (!bytes.ok()) return bytes.status();
           return testing::WriteTestFile(p, bytes->substr(0, bytes->size() / 2));
         }},
        // With the index first, half a file still probes as the full length.
        {"faststart_truncated.mp4",
         [](const fs::path& p) {
           fs::path faststart = p;
           faststart += ".whole.mp4";
           absl::Status status =
               testing::RunFfmpegForTest({"-i", Source("silent.mp4").string(), "-c", "copy",
                                          "-movflags", "+faststart", faststart.string()});
           if (!status.ok()) return status;
           absl::StatusOr<std::string> bytes = testing::ReadTestFile(faststart);
           if (!bytes.ok()) return bytes.status();
           return testing::WriteTestFile(p, bytes->substr(0, bytes->size() / 2));
         }},
        {"slow-ffmpeg", [](const fs::path& p) { return WriteScript(p, "exec ffmpeg -re \"$@\""); }},
        {"broken-ffmpeg",
         [](const fs::path& p) {
           return WriteScript(
               p,
               "echo 'progress=continue'\n"
               "echo 'some early warning' >&2\n"
               "echo '[libx264 @ 0x55d0c0a4a580] something is wrong with the input' >&2\n"
               "echo 'Conversion failed!' >&2\n"
               "exit 1");
         }},
        // The real ffmpeg, noting each run in ffmpeg-runs.log beside it.
        {"counting-ffmpeg",
         [](const fs::path& p) {
           return WriteScript(p,
                              "echo run >> \"$(dirname \"$0\")/ffmpeg-runs.log\"\n"
                              "exec ffmpeg \"$@\"");
         }},
        {"stuck-ffmpeg",
         [](const fs::path& p) {
           return WriteScript(p, "echo 'progress=continue'\nexec sleep 300");
         }},
    });
  }
  static void TearDownTestSuite() {
    delete sources_;
    sources_ = nullptr;
  }
  static fs::path Source(const std::string& name) {
    absl::StatusOr<fs::path> path = sources_->Get(name);
    EXPECT_TRUE(path.ok()) << path.status();
    return path.value_or(sources_->dir() / name);
  }

  fs::path Out() const { return scratch_.path() / "out"; }

  absl::StatusOr<TranscodeResult> Run(const std::string& source, ProgressLog* log = nullptr,
                                      const TranscodeOptions& options = {},
                                      CancelToken* cancel = nullptr) {
    return Transcode(Source(source), Out(), options, log ? log->Callback() : nullptr, cancel);
  }

  // The checks every successful result must pass.
  void ExpectCompleteOutput(const TranscodeResult& result) {
    std::vector<std::string> on_disk;
    for (const auto& entry : fs::directory_iterator(Out())) {
      on_disk.push_back(entry.path().filename().string());
      EXPECT_GT(entry.file_size(), 0u) << entry.path();
    }
    std::sort(on_disk.begin(), on_disk.end());
    EXPECT_EQ(result.files, on_disk);
    for (const std::string& name : result.files) EXPECT_TRUE(IsValidContentName(name)) << name;

    size_t streams = result.renditions.size() + (result.source.has_audio ? 1 : 0);
    EXPECT_THAT(result.files, Contains("manifest.mpd"));
    EXPECT_THAT(result.files, Contains("master.m3u8"));
    EXPECT_THAT(result.files, Contains("thumbnail.jpg"));
    for (size_t i = 0; i < streams; ++i) {
      EXPECT_THAT(result.files, Contains(absl::StrCat("media_", i, ".m3u8")));
      EXPECT_THAT(result.files, Contains(absl::StrCat("init-", i, ".m4s")));
      EXPECT_THAT(result.files, Contains(absl::StrCat("chunk-", i, "-00001.m4s")));
      std::string playlist = ReadFile(Out() / absl::StrCat("media_", i, ".m3u8"));
      EXPECT_THAT(playlist, HasSubstr("#EXT-X-PLAYLIST-TYPE:VOD\n"));
      EXPECT_THAT(playlist, HasSubstr("#EXT-X-ENDLIST\n"));
      EXPECT_THAT(playlist, Not(HasSubstr("PROGRAM-DATE-TIME")));
    }
    EXPECT_THAT(result.files, Not(Contains(absl::StrCat("media_", streams, ".m3u8"))));

    std::vector<Rendition> expected;
    for (const Rung& rung : SelectLadder(result.source)) {
      expected.push_back({rung.name, rung.width, rung.height, rung.bitrate});
    }
    EXPECT_EQ(result.renditions, expected);

    Probed dash = ProbeOutput(Out() / "manifest.mpd");
    EXPECT_NEAR(dash.duration, result.source.duration_seconds, 0.5);
    ASSERT_EQ(dash.video_streams(), static_cast<int>(result.renditions.size()));
    for (size_t i = 0; i < result.renditions.size(); ++i) {
      EXPECT_EQ(dash.streams[i].codec, "h264");
      EXPECT_EQ(dash.streams[i].width, result.renditions[i].width);
      EXPECT_EQ(dash.streams[i].height, result.renditions[i].height);
      EXPECT_EQ(dash.streams[i].frame_rate, absl::StrCat(OutputFrameRate(result.source), "/1"));
      EXPECT_EQ(dash.streams[i].display_aspect_ratio, dash.streams[0].display_aspect_ratio);
    }
    EXPECT_EQ(dash.audio_streams(), result.source.has_audio ? 1 : 0);
    ExpectDecodes(Out() / "manifest.mpd");

    Probed hls = ProbeOutput(Out() / "master.m3u8");
    EXPECT_NEAR(hls.duration, result.source.duration_seconds, 0.5);
    ExpectDecodes(Out() / "master.m3u8");

    Probed thumbnail = ProbeOutput(Out() / "thumbnail.jpg");
    ASSERT_EQ(thumbnail.streams.size(), 1u);
    EXPECT_EQ(thumbnail.streams[0].codec, "mjpeg");
    EXPECT_LE(thumbnail.streams[0].height, 360);
    EXPECT_NEAR(static_cast<double>(thumbnail.streams[0].width) / thumbnail.streams[0].height,
                static_cast<double>(result.source.width) / result.source.height, 0.05);

    // The storyboard: a sheet of whole tiles and its track, nothing left over
    // from the ladder run.
    EXPECT_THAT(result.files, Contains("storyboard.jpg"));
    EXPECT_THAT(result.files, Contains("storyboard.vtt"));
    EXPECT_THAT(result.files, Not(Contains("storyboard-1.jpg")));
    EXPECT_THAT(result.files, Not(Contains("storyboard-2.jpg")));
    std::optional<StoryboardLayout> layout = PlanStoryboard(result.source);
    ASSERT_TRUE(layout.has_value());
    Probed sheet = ProbeOutput(Out() / "storyboard.jpg");
    ASSERT_EQ(sheet.streams.size(), 1u);
    EXPECT_EQ(sheet.streams[0].codec, "mjpeg");
    EXPECT_EQ(sheet.streams[0].width % layout->tile_width, 0);
    EXPECT_EQ(sheet.streams[0].height % layout->tile_height, 0);
    std::string vtt = ReadFile(Out() / "storyboard.vtt");
    EXPECT_THAT(vtt, StartsWith(absl::StrCat("WEBVTT\n\n00:00:00.000 --> ")));
    EXPECT_THAT(vtt, HasSubstr(absl::StrCat("\nstoryboard.jpg#xywh=0,0,", layout->tile_width, ",",
                                            layout->tile_height, "\n")));
    EXPECT_THAT(vtt, HasSubstr(absl::StrCat(" --> ", VttTimestamp(result.source.duration_seconds),
                                            "\nstoryboard.jpg#xywh=")));
  }

  static testing::LazyMedia* sources_;
  testing::TempDir scratch_;
};

testing::LazyMedia* TranscoderTest::sources_ = nullptr;

TEST_F(TranscoderTest, EncodesALadderWithSound) {
  ProgressLog progress;
  absl::StatusOr<TranscodeResult> result = Run("two_rungs.mp4", &progress);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->renditions.size(), 2u);
  EXPECT_EQ(result->renditions[0].name, "360p");
  EXPECT_EQ(result->renditions[0].width, 640);
  EXPECT_EQ(result->renditions[0].height, 360);
  EXPECT_EQ(result->renditions[1].name, "240p");
  EXPECT_EQ(result->renditions[1].width, 426);
  EXPECT_EQ(result->renditions[1].height, 240);
  EXPECT_TRUE(result->source.has_audio);
  ExpectCompleteOutput(*result);
  ExpectProgressReported(progress.values);

  Probed dash = ProbeOutput(Out() / "manifest.mpd");
  auto audio = std::find_if(dash.streams.begin(), dash.streams.end(),
                            [](const ProbedStream& s) { return s.type == "audio"; });
  ASSERT_NE(audio, dash.streams.end());
  EXPECT_EQ(audio->codec, "aac");
  EXPECT_EQ(audio->channels, 2);
  EXPECT_EQ(audio->sample_rate, 48000);

  std::string master = ReadFile(Out() / "master.m3u8");
  EXPECT_THAT(master, HasSubstr("media_0.m3u8"));
  EXPECT_THAT(master, HasSubstr("media_1.m3u8"));
  EXPECT_THAT(master, HasSubstr("TYPE=AUDIO"));
  EXPECT_THAT(master, HasSubstr("RESOLUTION=640x360"));
  EXPECT_THAT(master, HasSubstr("RESOLUTION=426x240"));
  std::string mpd = ReadFile(Out() / "manifest.mpd");
  EXPECT_THAT(mpd, HasSubstr("contentType=\"audio\""));
}

// ffmpeg runs the counting-ffmpeg script has seen since `log` was removed.
int FfmpegRuns(const fs::path& log) {
  std::ifstream in(log);
  int runs = 0;
  for (std::string line; std::getline(in, line);) runs += line == "run";
  return runs;
}

TEST_F(TranscoderTest, OneFfmpegRunAndNoProbeWhenTheSourceIsDescribed) {
  absl::StatusOr<MediaInfo> info = ProbeMedia(Source("two_rungs.mp4"));
  ASSERT_TRUE(info.ok()) << info.status();
  TranscodeOptions options;
  options.ffmpeg = Source("counting-ffmpeg").string();
  options.ffprobe = (scratch_.path() / "no-such-ffprobe").string();  // must not be needed
  const fs::path log = options.ffmpeg.substr(0, options.ffmpeg.rfind('/')) + "/ffmpeg-runs.log";
  fs::remove(log);
  absl::StatusOr<TranscodeResult> result =
      Transcode(Source("two_rungs.mp4"), Out(), options, nullptr, nullptr, &*info);
  ASSERT_TRUE(result.ok()) << result.status();
  ExpectCompleteOutput(*result);
  // The thumbnail came out of the ladder run.
  EXPECT_EQ(FfmpegRuns(log), 1);

  // Without the description it is probed: here with a missing ffprobe.
  fs::remove_all(Out());
  result = Transcode(Source("two_rungs.mp4"), Out(), options, nullptr, nullptr);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(FfmpegRuns(log), 1);
}

TEST_F(TranscoderTest, NoFrameAtTheClaimedMiddleMeansASecondRunForTheThumbnail) {
  absl::StatusOr<MediaInfo> info = ProbeMedia(Source("two_rungs.mp4"));
  ASSERT_TRUE(info.ok()) << info.status();
  // A container claiming three times its real length, and nothing damaged: the
  // ladder run finds no frame for the thumbnail at the claimed middle.
  MediaInfo claimed = *info;
  claimed.duration_seconds *= 3;
  TranscodeOptions options;
  options.ffmpeg = Source("counting-ffmpeg").string();
  const fs::path log = options.ffmpeg.substr(0, options.ffmpeg.rfind('/')) + "/ffmpeg-runs.log";
  fs::remove(log);
  absl::StatusOr<TranscodeResult> result =
      Transcode(Source("two_rungs.mp4"), Out(), options, nullptr, nullptr, &claimed);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_NEAR(result->source.duration_seconds, info->duration_seconds, 0.5);
  ExpectCompleteOutput(*result);
  EXPECT_EQ(FfmpegRuns(log), 2);
}

TEST_F(TranscoderTest, EncodesAVideoWithoutSound) {
  ProgressLog progress;
  absl::StatusOr<TranscodeResult> result = Run("silent.mp4", &progress);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->renditions.size(), 1u);
  EXPECT_EQ(result->renditions[0].name, "240p");
  EXPECT_FALSE(result->source.has_audio);
  ExpectCompleteOutput(*result);
  ExpectProgressReported(progress.values);
  EXPECT_THAT(ReadFile(Out() / "master.m3u8"), Not(HasSubstr("TYPE=AUDIO")));
  EXPECT_THAT(ReadFile(Out() / "manifest.mpd"), Not(HasSubstr("contentType=\"audio\"")));
}

TEST_F(TranscoderTest, OddSizedSourceKeepsItsSizeRoundedToEven) {
  absl::StatusOr<TranscodeResult> result = Run("odd.mkv");
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->renditions.size(), 1u);
  EXPECT_EQ(result->renditions[0].name, "96p");
  EXPECT_EQ(result->renditions[0].width, 170);
  EXPECT_EQ(result->renditions[0].height, 96);
  ExpectCompleteOutput(*result);
}

TEST_F(TranscoderTest, RotatedSourceComesOutUpright) {
  absl::StatusOr<TranscodeResult> result = Run("rotated.mp4");
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->renditions.size(), 1u);
  EXPECT_EQ(result->renditions[0].width, 180);
  EXPECT_EQ(result->renditions[0].height, 320);
  // ExpectCompleteOutput checks the encoded size and the thumbnail's shape.
  ExpectCompleteOutput(*result);
}

TEST_F(TranscoderTest, VariableFrameRateBecomesConstant) {
  absl::StatusOr<TranscodeResult> result = Run("vfr.mkv");
  ASSERT_TRUE(result.ok()) << result.status();
  ExpectCompleteOutput(*result);
  // The source's frames are 1/60, 1/30 and 1/20 s apart; the output's must all
  // be 1/30 s apart, over the whole 3 s.
  absl::StatusOr<std::string> times =
      testing::RunForTest({"ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                           "frame=pts_time", "-of", "csv=p=0", (Out() / "manifest.mpd").string()});
  ASSERT_TRUE(times.ok()) << times.status();
  std::vector<double> pts;
  std::istringstream lines(*times);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) pts.push_back(std::stod(line));
  }
  EXPECT_NEAR(pts.size(), 90, 3);
  for (size_t i = 1; i < pts.size(); ++i) {
    EXPECT_NEAR(pts[i] - pts[i - 1], 1.0 / 30, 0.002) << "frame " << i;
  }
}

TEST_F(TranscoderTest, LowFrameRateKeepsItsDuration) {
  absl::StatusOr<TranscodeResult> result = Run("lowfps.mp4");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_DOUBLE_EQ(result->source.duration_seconds, 1.0);
  ExpectCompleteOutput(*result);
}

TEST_F(TranscoderTest, CorruptInputIsDataLossAndLeavesNothing) {
  absl::StatusOr<TranscodeResult> result = Run("truncated.mp4");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(fs::exists(Out()));
}

TEST_F(TranscoderTest, DataMissingAfterTheIndexIsDataLoss) {
  absl::StatusOr<TranscodeResult> result = Run("faststart_truncated.mp4");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss) << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr("incomplete")) << result.status();
  EXPECT_THAT(result.status().message(), Not(HasSubstr(sources_->dir().string())));
  EXPECT_FALSE(fs::exists(Out()));
}

TEST_F(TranscoderTest, TextIsInvalidArgument) {
  absl::StatusOr<TranscodeResult> result = Run("notes.txt");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(Out()));
}

TEST_F(TranscoderTest, NonEmptyOutputDirectoryIsRefusedAndKept) {
  fs::create_directories(Out());
  std::ofstream(Out() / "precious") << "x";
  absl::StatusOr<TranscodeResult> result = Run("silent.mp4");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(fs::exists(Out() / "precious"));
}

TEST_F(TranscoderTest, CancellationKillsFfmpegPromptly) {
  // Real ffmpeg, slowed to real time (-re) so that it is still busy when
  // cancelled.
  TranscodeOptions options;
  options.ffmpeg = Source("slow-ffmpeg").string();
  CancelToken cancel;
  Clock::time_point cancelled_at;
  std::thread canceller;
  std::once_flag once;
  auto on_progress = [&](int) {
    std::call_once(once, [&] {
      canceller = std::thread([&] {
        cancelled_at = Clock::now();
        cancel.Cancel();
      });
    });
  };
  absl::StatusOr<TranscodeResult> result =
      Transcode(Source("two_rungs.mp4"), Out(), options, on_progress, &cancel);
  Clock::time_point returned_at = Clock::now();
  ASSERT_TRUE(canceller.joinable()) << "no progress was reported";
  canceller.join();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled) << result.status();
  EXPECT_LT(returned_at - cancelled_at, std::chrono::seconds(3));
  EXPECT_FALSE(fs::exists(Out()));
}

TEST_F(TranscoderTest, AlreadyCancelledDoesNothing) {
  CancelToken cancel;
  cancel.Cancel();
  absl::StatusOr<TranscodeResult> result = Run("silent.mp4", nullptr, {}, &cancel);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(fs::exists(Out()));
}

TEST_F(TranscoderTest, FfmpegFailureCarriesItsLastErrorLines) {
  TranscodeOptions options;
  options.ffmpeg = Source("broken-ffmpeg").string();
  absl::StatusOr<TranscodeResult> result = Run("silent.mp4", nullptr, options);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(result.status().message(),
              HasSubstr("[libx264] something is wrong with the input; Conversion failed!"));
  EXPECT_THAT(result.status().message(), HasSubstr("exit code 1"));
  EXPECT_FALSE(fs::exists(Out()));
}

TEST_F(TranscoderTest, StalledFfmpegIsKilled) {
  TranscodeOptions options;
  options.ffmpeg = Source("stuck-ffmpeg").string();
  options.stall_timeout = std::chrono::milliseconds(300);
  Clock::time_point start = Clock::now();
  absl::StatusOr<TranscodeResult> result = Run("silent.mp4", nullptr, options);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
  EXPECT_FALSE(fs::exists(Out()));
}

TEST_F(TranscoderTest, Camera8KIsAcceptedAndScaledDownToTheLadder) {
  absl::StatusOr<TranscodeResult> result = Run("camera8k.mp4");  // default limits
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->source.width, 8192);
  EXPECT_EQ(result->source.height, 4320);
  ASSERT_FALSE(result->renditions.empty());
  EXPECT_EQ(result->renditions[0].name, "1080p");
  ExpectCompleteOutput(*result);
}

TEST_F(TranscoderTest, OverTheTimeLimitIsStoppedWithTheReason) {
  // Real ffmpeg at real-time speed: the 2 s video takes at least 2 s to
  // encode, twice its limit of 0.5 x 2 s + 0 s, however fast the machine.
  TranscodeOptions options;
  options.ffmpeg = Source("slow-ffmpeg").string();
  options.time_factor = 0.5;
  options.time_floor = std::chrono::milliseconds(0);
  Clock::time_point start = Clock::now();
  absl::StatusOr<TranscodeResult> result = Run("two_rungs.mp4", nullptr, options);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded) << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr("time limit of 1.0 s"));
  EXPECT_THAT(result.status().message(), HasSubstr("0.5 times"));
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(15));
  EXPECT_FALSE(fs::exists(Out()));
}

TEST_F(TranscoderTest, AGenerousTimeLimitLetsItFinish) {
  TranscodeOptions options;
  options.time_factor = 1;
  options.time_floor = std::chrono::seconds(120);
  absl::StatusOr<TranscodeResult> result = Run("silent.mp4", nullptr, options);
  ASSERT_TRUE(result.ok()) << result.status();
  ExpectCompleteOutput(*result);
}

TEST_F(TranscoderTest, SourceBeyondTheLimitsIsRefusedBeforeEncoding) {
  TranscodeOptions options;
  options.ffmpeg = "/nonexistent/ffmpeg";  // never reached
  options.limits.max_duration_seconds = 1;
  absl::StatusOr<TranscodeResult> result = Run("two_rungs.mp4", nullptr, options);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kOutOfRange) << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr("seconds long"));

  options.limits = MediaLimits{};
  ASSERT_TRUE(ParseMaxResolution("320x240", &options.limits).ok());
  result = Run("two_rungs.mp4", nullptr, options);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kOutOfRange) << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr("640x360"));
  EXPECT_FALSE(fs::exists(Out()));
}

TEST(SummarizeFfmpegErrorsTest, KeepsTheLastDistinctLines) {
  EXPECT_EQ(SummarizeFfmpegErrors(""), "");
  EXPECT_EQ(SummarizeFfmpegErrors("a\n\nb\r\nc\nd\n\n"), "b; c; d");
  EXPECT_EQ(SummarizeFfmpegErrors("[h264 @ 0x1234abcd] bad NAL\n[h264 @ 0x1234abcd] bad NAL\n"),
            "[h264] bad NAL");
  std::string long_line(2000, 'x');
  EXPECT_LE(SummarizeFfmpegErrors(long_line).size(), 503u);
}

}  // namespace
}  // namespace streamgrid
