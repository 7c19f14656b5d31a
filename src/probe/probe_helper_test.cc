// The real streamgrid-probe helper on media made by ffmpeg: it must describe
// every file as ffprobe does (same MediaInfo, or the same error), and a
// helper that hangs, crashes or is killed must fail only its own request.

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "probe/probe_helper_pool.h"
#include "transcode/media_policy.h"
#include "transcode/probe.h"
#include "transcode/testing/test_media.h"

namespace streamgrid::probe {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

// Generous: the machine running the tests may be busy.
constexpr auto kPatience = std::chrono::seconds(60);

absl::Status Lavfi(const fs::path& path, std::vector<std::string> args) {
  args.push_back(path.string());
  return streamgrid::testing::RunFfmpegForTest(args);
}

streamgrid::testing::TestVideoSpec Spec(double seconds, bool audio, int fps = 30, int rotate = 0,
                                        bool vfr = false) {
  streamgrid::testing::TestVideoSpec spec;
  spec.seconds = seconds;
  spec.audio = audio;
  spec.fps = fps;
  spec.rotate = rotate;
  spec.variable_frame_rate = vfr;
  return spec;
}

absl::Status Truncated(const fs::path& from, const fs::path& to) {
  absl::StatusOr<std::string> bytes = streamgrid::testing::ReadTestFile(from);
  if (!bytes.ok()) return bytes.status();
  return streamgrid::testing::WriteTestFile(to, bytes->substr(0, bytes->size() / 2));
}

class ProbeHelperTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    using streamgrid::testing::MakeTestVideo;
    using streamgrid::testing::WriteTestFile;
    media_ = new streamgrid::testing::LazyMedia({
        {"av.mp4", [](const fs::path& p) { return MakeTestVideo(p, Spec(3, true)); }},
        {"silent.mkv", [](const fs::path& p) { return MakeTestVideo(p, Spec(2, false, 25)); }},
        {"vfr.mkv", [](const fs::path& p) { return MakeTestVideo(p, Spec(2, true, 30, 0, true)); }},
        {"rotated.mp4", [](const fs::path& p) { return MakeTestVideo(p, Spec(1, true, 30, 90)); }},
        {"vp9.webm",
         [](const fs::path& p) {
           return Lavfi(p, {"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=1", "-f",
                            "lavfi", "-i", "sine=duration=1", "-c:v", "libvpx-vp9", "-deadline",
                            "realtime", "-b:v", "200k", "-c:a", "libopus"});
         }},
        // A browser's MediaRecorder file: no duration in its header.
        {"live.webm",
         [](const fs::path& p) {
           return Lavfi(p, {"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=1", "-c:v",
                            "libvpx", "-deadline", "realtime", "-b:v", "200k", "-f", "webm",
                            "-live", "1", "-cluster_time_limit", "1000"});
         }},
        // Only its header and the start of a cluster: no packet to measure by.
        {"live-header.webm",
         [](const fs::path& p) {
           absl::StatusOr<std::string> bytes = streamgrid::testing::ReadTestFile(Path("live.webm"));
           if (!bytes.ok()) return bytes.status();
           const size_t cluster = bytes->find("\x1f\x43\xb6\x75");
           if (cluster == std::string::npos) return absl::InternalError("no cluster");
           return WriteTestFile(p, bytes->substr(0, cluster + 12));
         }},
        {"live-cut.webm", [](const fs::path& p) { return Truncated(Path("live.webm"), p); }},
        {"anamorphic.mp4",
         [](const fs::path& p) {
           return Lavfi(p, {"-f", "lavfi", "-i", "testsrc2=size=320x240:duration=1,setsar=4/3",
                            "-c:v", "libx264", "-preset", "ultrafast"});
         }},
        {"c.ts",
         [](const fs::path& p) {
           return Lavfi(p, {"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1", "-c:v",
                            "libx264"});
         }},
        {"c.avi",
         [](const fs::path& p) {
           return Lavfi(p, {"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1", "-c:v",
                            "mpeg4"});
         }},
        {"still.png",
         [](const fs::path& p) {
           return Lavfi(p, {"-f", "lavfi", "-i", "testsrc2=size=320x180", "-frames:v", "1"});
         }},
        {"sound.m4a",
         [](const fs::path& p) {
           return Lavfi(p, {"-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac"});
         }},
        {"notes.mp4",
         [](const fs::path& p) { return WriteTestFile(p, "Not the frames you want.\n"); }},
        {"truncated.mp4", [](const fs::path& p) { return Truncated(Path("av.mp4"), p); }},
        {"truncated.mkv", [](const fs::path& p) { return Truncated(Path("silent.mkv"), p); }},
        {"junk-after-ftyp.mp4",
         [](const fs::path& p) {
           absl::StatusOr<std::string> bytes = streamgrid::testing::ReadTestFile(Path("av.mp4"));
           if (!bytes.ok()) return bytes.status();
           std::string damaged = bytes->substr(0, 64) + std::string(bytes->size() - 64, '\x5a');
           return WriteTestFile(p, damaged);
         }},
        {"segment.ts", [](const fs::path& p) { return MakeTestVideo(p, Spec(1, false)); }},
        {"playlist.txt",
         [](const fs::path& p) {
           return WriteTestFile(p, absl::StrCat("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n",
                                                Path("segment.ts").string(), "\n#EXT-X-ENDLIST\n"));
         }},
        {"list.ffconcat",
         [](const fs::path& p) {
           return WriteTestFile(p, "ffconcat version 1.0\nfile segment.ts\n");
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

  static std::unique_ptr<ProbeHelperPool> MakePool(ProbeHelperOptions options = {}) {
    options.program = STREAMGRID_PROBE_BINARY;
    options.test_hooks = true;
    absl::StatusOr<std::unique_ptr<ProbeHelperPool>> pool = ProbeHelperPool::Create(options);
    EXPECT_TRUE(pool.ok()) << pool.status();
    return pool.ok() ? *std::move(pool) : nullptr;
  }

  // Probes `name` through `pool` directly (with test fields in `request`).
  static absl::StatusOr<ProbeReply> Ask(ProbeHelperPool& pool, const std::string& name,
                                        ProbeRequest request = {},
                                        Clock::duration patience = kPatience,
                                        const std::function<bool()>& cancelled = {}) {
    if (request.format_whitelist.empty()) {
      request.format_whitelist = std::string(kAllowedInputFormats);
    }
    const int fd = ::open(Path(name).c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0) << name;
    absl::StatusOr<ProbeReply> reply = pool.Probe(fd, request, Clock::now() + patience, cancelled);
    ::close(fd);
    return reply;
  }

  static streamgrid::testing::LazyMedia* media_;
};

streamgrid::testing::LazyMedia* ProbeHelperTest::media_ = nullptr;

void ExpectSameInfo(const MediaInfo& a, const MediaInfo& b, const std::string& name) {
  EXPECT_DOUBLE_EQ(a.duration_seconds, b.duration_seconds) << name;
  EXPECT_EQ(a.width, b.width) << name;
  EXPECT_EQ(a.height, b.height) << name;
  EXPECT_EQ(a.rotation, b.rotation) << name;
  EXPECT_DOUBLE_EQ(a.frame_rate, b.frame_rate) << name;
  EXPECT_EQ(a.has_video, b.has_video) << name;
  EXPECT_EQ(a.has_audio, b.has_audio) << name;
  EXPECT_EQ(a.bit_rate, b.bit_rate) << name;
  EXPECT_EQ(a.format_name, b.format_name) << name;
  EXPECT_EQ(a.video_codec, b.video_codec) << name;
  EXPECT_EQ(a.stream_count, b.stream_count) << name;
  EXPECT_DOUBLE_EQ(a.start_time, b.start_time) << name;
  EXPECT_EQ(a.duration_measured, b.duration_measured) << name;
}

// Every file, good or bad, gets the answer ffprobe gives: the same
// description, or the same error code and message for the uploader.
TEST_F(ProbeHelperTest, AnswersAsFfprobeDoes) {
  std::unique_ptr<ProbeHelperPool> pool = MakePool();
  ASSERT_NE(pool, nullptr);
  ProbeOptions with_helper;
  with_helper.helper = pool.get();
  for (const char* name :
       {"av.mp4", "silent.mkv", "vfr.mkv", "rotated.mp4", "vp9.webm", "live.webm", "live-cut.webm",
        "live-header.webm", "anamorphic.mp4", "c.ts", "c.avi", "still.png", "sound.m4a",
        "notes.mp4", "truncated.mp4", "truncated.mkv", "junk-after-ftyp.mp4", "playlist.txt",
        "list.ffconcat"}) {
    absl::StatusOr<MediaInfo> ffprobe = ProbeMedia(Path(name));
    absl::StatusOr<MediaInfo> helper = ProbeMedia(Path(name), with_helper);
    ASSERT_EQ(helper.status().code(), ffprobe.status().code())
        << name << ": helper " << helper.status() << ", ffprobe " << ffprobe.status();
    if (ffprobe.ok()) {
      ExpectSameInfo(*helper, *ffprobe, name);
    } else {
      EXPECT_EQ(helper.status().message(), ffprobe.status().message()) << name;
    }
  }
  // All of it in one helper: nothing was restarted.
  EXPECT_EQ(pool->helpers_started(), 1);
}

// A live-written WebM states no length: both measure it by reading it
// through, and agree (the file's 1 s, within a frame).
TEST_F(ProbeHelperTest, MeasuresALengthTheFileDoesNotState) {
  std::unique_ptr<ProbeHelperPool> pool = MakePool();
  ASSERT_NE(pool, nullptr);
  ProbeOptions with_helper;
  with_helper.helper = pool.get();
  absl::StatusOr<MediaInfo> info = ProbeMedia(Path("live.webm"), with_helper);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->duration_measured);
  EXPECT_NEAR(info->duration_seconds, 1.0, 0.05);
  EXPECT_TRUE(VerifyMediaEnd(Path("live.webm"), *info, with_helper).ok());
  absl::StatusOr<MediaInfo> none = ProbeMedia(Path("live-header.webm"), with_helper);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kDataLoss) << none.status();
  EXPECT_THAT(none.status().message(), HasSubstr("length cannot be determined"));
  EXPECT_EQ(pool->helpers_started(), 1);
}

// The end check's packet listing (containers whose framing does not settle
// the end) judges every file as the ffprobe run does: whole files pass, cut
// ones (described as the whole was, with the index intact or not) fail.
TEST_F(ProbeHelperTest, EndCheckAnswersAsFfprobeDoes) {
  std::unique_ptr<ProbeHelperPool> pool = MakePool();
  ASSERT_NE(pool, nullptr);
  ProbeOptions with_helper;
  with_helper.helper = pool.get();
  for (const char* name : {"c.ts", "segment.ts", "c.avi", "vfr.mkv", "av.mp4", "silent.mkv"}) {
    const fs::path whole = Path(name);
    absl::StatusOr<MediaInfo> info = ProbeMedia(whole);
    ASSERT_TRUE(info.ok()) << name << ": " << info.status();
    absl::StatusOr<std::string> bytes = streamgrid::testing::ReadTestFile(whole);
    ASSERT_TRUE(bytes.ok());
    for (double keep : {1.0, 0.9, 0.5}) {
      const fs::path file = media_->dir() / absl::StrCat("end-", keep, "-", name);
      ASSERT_TRUE(streamgrid::testing::WriteTestFile(
                      file, bytes->substr(0, static_cast<size_t>(bytes->size() * keep)))
                      .ok());
      const absl::Status ffprobe = VerifyMediaEnd(file, *info);
      const absl::Status helper = VerifyMediaEnd(file, *info, with_helper);
      EXPECT_EQ(helper.code(), ffprobe.code())
          << file.filename() << ": helper " << helper << ", ffprobe " << ffprobe;
      EXPECT_EQ(helper.message(), ffprobe.message()) << file.filename();
      if (keep == 1.0) EXPECT_TRUE(helper.ok()) << file.filename() << ": " << helper;
      // Half of a 1 s file can still reach within the slack of its end.
      if (keep == 0.5 && info->duration_seconds >= 2) EXPECT_FALSE(helper.ok()) << file.filename();
    }
  }
  // A playlist is refused by the listing too.
  MediaInfo fake;
  fake.duration_seconds = 2;
  fake.width = 320;
  fake.height = 180;
  absl::Status playlist = VerifyMediaEnd(Path("playlist.txt"), fake, with_helper);
  EXPECT_EQ(playlist.code(), absl::StatusCode::kInvalidArgument) << playlist;
  EXPECT_THAT(playlist.message(), HasSubstr("HLS playlist"));
}

TEST_F(ProbeHelperTest, RefusesPlaylistsWithoutReadingWhatTheyName) {
  std::unique_ptr<ProbeHelperPool> pool = MakePool();
  ASSERT_NE(pool, nullptr);
  absl::StatusOr<ProbeReply> reply = Ask(*pool, "playlist.txt");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->kind, FrameKind::kFailed);
  EXPECT_THAT(reply->text, HasSubstr("[hls @ "));
  EXPECT_THAT(reply->text, HasSubstr("Format not on whitelist"));
  // Even with the playlist's demuxer allowed, the helper opens nothing
  // but the descriptor it was given: the segment it names stays unread.
  ProbeRequest open_door;
  open_door.format_whitelist = std::string(kAllowedInputFormats) + ",hls";
  reply = Ask(*pool, "playlist.txt", open_door);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_NE(reply->kind, FrameKind::kDescribed) << reply->text;
}

TEST_F(ProbeHelperTest, TooManyStreamsIsTooLarge) {
  std::unique_ptr<ProbeHelperPool> pool = MakePool();
  ASSERT_NE(pool, nullptr);
  ProbeRequest request;
  request.max_streams = 1;  // av.mp4 has two
  absl::StatusOr<ProbeReply> reply = Ask(*pool, "av.mp4", request);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->kind, FrameKind::kTooLarge);
}

TEST_F(ProbeHelperTest, ADeadlineKillsTheHelperAndTheNextRequestGetsANewOne) {
  std::unique_ptr<ProbeHelperPool> pool = MakePool({.helpers = 1});
  ASSERT_NE(pool, nullptr);
  const pid_t first = pool->HelperPids().front();
  ProbeRequest stall;
  stall.test_stall_ms = 600'000;
  absl::StatusOr<ProbeReply> reply = Ask(*pool, "av.mp4", stall, std::chrono::milliseconds(300));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kDeadlineExceeded) << reply.status();
  EXPECT_EQ(pool->HelperPids().front(), -1);
  EXPECT_NE(::kill(first, 0), 0);  // reaped, gone

  reply = Ask(*pool, "av.mp4");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->kind, FrameKind::kDescribed);
  EXPECT_EQ(pool->helpers_started(), 2);
}

TEST_F(ProbeHelperTest, ProbeMediaReportsADeadlineAsToday) {
  std::unique_ptr<ProbeHelperPool> pool = MakePool({.helpers = 1});
  ASSERT_NE(pool, nullptr);
  // Hold the only helper with a stalled request, so that ProbeMedia's
  // short timeout runs out waiting for it.
  Path("av.mp4");  // made here: LazyMedia is not thread-safe
  ProbeRequest stall;
  stall.test_stall_ms = 600'000;
  std::atomic<bool> stop{false};
  auto held = std::async(std::launch::async, [&] {
    return Ask(*pool, "av.mp4", stall, kPatience, [&] { return stop.load(); });
  });
  ProbeOptions options;
  options.helper = pool.get();
  options.timeout = std::chrono::milliseconds(1000);
  // Until the stalled request holds the helper, ProbeMedia may win the race
  // and succeed: try again.
  absl::StatusOr<MediaInfo> info;
  const auto give_up = Clock::now() + kPatience;
  do {
    info = ProbeMedia(Path("av.mp4"), options);
  } while (info.ok() && Clock::now() < give_up);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(info.status().message(), HasSubstr("Analysing the video took longer than 1 s"));
  stop = true;
  EXPECT_EQ(held.get().status().code(), absl::StatusCode::kCancelled);
}

TEST_F(ProbeHelperTest, ACrashFailsOnlyThatRequest) {
  std::unique_ptr<ProbeHelperPool> pool = MakePool({.helpers = 1});
  ASSERT_NE(pool, nullptr);
  ProbeRequest crash;
  crash.test_crash = true;
  absl::StatusOr<ProbeReply> reply = Ask(*pool, "av.mp4", crash);
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kAborted) << reply.status();
  EXPECT_THAT(reply.status().message(), HasSubstr("signal 6"));
  reply = Ask(*pool, "av.mp4");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->kind, FrameKind::kDescribed);
}

// True when process `pid` holds a descriptor of `file`.
bool HoldsFile(pid_t pid, const fs::path& file) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(absl::StrCat("/proc/", pid, "/fd"), ec)) {
    std::error_code link_ec;
    if (fs::read_symlink(entry.path(), link_ec) == file) return true;
  }
  return false;
}

TEST_F(ProbeHelperTest, AHelperKilledMidRequestFailsThatRequestOnly) {
  std::unique_ptr<ProbeHelperPool> pool = MakePool({.helpers = 1});
  ASSERT_NE(pool, nullptr);
  const pid_t pid = pool->HelperPids().front();
  const fs::path file = fs::canonical(Path("av.mp4"));
  ProbeRequest stall;
  stall.test_stall_ms = 600'000;
  auto request = std::async(std::launch::async, [&] { return Ask(*pool, "av.mp4", stall); });
  // Mid-request: the helper holds the descriptor it was sent.
  const auto give_up = Clock::now() + kPatience;
  while (!HoldsFile(pid, file) && Clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(HoldsFile(pid, file));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  absl::StatusOr<ProbeReply> reply = request.get();
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kAborted) << reply.status();
  EXPECT_THAT(reply.status().message(), HasSubstr("signal 9"));

  ProbeOptions options;
  options.helper = pool.get();
  absl::StatusOr<MediaInfo> info = ProbeMedia(Path("av.mp4"), options);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->width, 320);
}

TEST_F(ProbeHelperTest, ProbeMediaMapsACrashToDataLoss) {
  std::unique_ptr<ProbeHelperPool> pool = MakePool({.helpers = 1});
  ASSERT_NE(pool, nullptr);
  ProbeOptions options;
  options.helper = pool.get();
  // Kill the helper each time it holds the file: ProbeMedia sees it die
  // mid-request, as on a file that crashes FFmpeg.
  const fs::path file = fs::canonical(Path("av.mp4"));
  std::atomic<bool> done{false};
  std::thread killer([&] {
    while (!done) {
      for (pid_t pid : pool->HelperPids()) {
        if (pid > 0 && HoldsFile(pid, file)) ::kill(pid, SIGKILL);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  // The probe of a small file may finish before the killer sees it: retry.
  absl::StatusOr<MediaInfo> info;
  const auto give_up = Clock::now() + kPatience;
  do {
    info = ProbeMedia(Path("av.mp4"), options);
  } while (info.ok() && Clock::now() < give_up);
  done = true;
  killer.join();
  EXPECT_EQ(info.status().code(), absl::StatusCode::kDataLoss) << info.status();
  EXPECT_THAT(info.status().message(), HasSubstr("could not be read"));
}

TEST_F(ProbeHelperTest, CancellingKillsTheHelper) {
  std::unique_ptr<ProbeHelperPool> pool = MakePool({.helpers = 1});
  ASSERT_NE(pool, nullptr);
  ProbeRequest stall;
  stall.test_stall_ms = 600'000;
  std::atomic<int> asked{0};
  absl::StatusOr<ProbeReply> reply =
      Ask(*pool, "av.mp4", stall, kPatience, [&] { return ++asked > 3; });
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kCancelled) << reply.status();
  EXPECT_EQ(pool->HelperPids().front(), -1);
}

TEST_F(ProbeHelperTest, HelpersAreRecycledAfterSomeRequests) {
  std::unique_ptr<ProbeHelperPool> pool = MakePool({.helpers = 1, .max_requests_per_helper = 2});
  ASSERT_NE(pool, nullptr);
  std::vector<pid_t> seen;
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<ProbeReply> reply = Ask(*pool, "av.mp4");
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(reply->kind, FrameKind::kDescribed);
    seen.push_back(pool->HelperPids().front());
  }
  // Two requests each: the helper is gone after the 2nd and the 4th.
  EXPECT_EQ(seen[1], -1);
  EXPECT_EQ(seen[3], -1);
  EXPECT_EQ(pool->helpers_started(), 3);
}

TEST_F(ProbeHelperTest, ConcurrentRequestsShareTheHelpers) {
  std::unique_ptr<ProbeHelperPool> pool = MakePool({.helpers = 2});
  ASSERT_NE(pool, nullptr);
  Path("vp9.webm");  // made before the threads start (LazyMedia is not thread-safe)
  Path("av.mp4");
  std::vector<std::future<absl::StatusOr<ProbeReply>>> replies;
  for (int i = 0; i < 6; ++i) {
    replies.push_back(std::async(
        std::launch::async, [&pool, i] { return Ask(*pool, i % 2 == 0 ? "av.mp4" : "vp9.webm"); }));
  }
  for (auto& reply : replies) {
    absl::StatusOr<ProbeReply> r = reply.get();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->kind, FrameKind::kDescribed);
  }
  EXPECT_LE(pool->helpers_started(), 2);
}

TEST_F(ProbeHelperTest, AMissingProgramIsNotFound) {
  absl::StatusOr<std::unique_ptr<ProbeHelperPool>> pool =
      ProbeHelperPool::Create({.program = media_->dir() / "no-such-probe"});
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace streamgrid::probe
