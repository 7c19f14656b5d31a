#pragma once

// Helpers for tests that need real media files: tiny clips made with ffmpeg's
// lavfi sources, and scratch directories.

#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace streamgrid::testing {

// A directory under the system temp dir, removed with everything in it on
// destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Sample files made on first use, so that a test run on its own (ctest runs
// each test in its own process) only pays for the files it needs. Not
// thread-safe.
class LazyMedia {
 public:
  // Writes the file at the given path.
  using Maker = std::function<absl::Status(const std::filesystem::path&)>;

  // `makers` by file name; a maker may Get() other files.
  explicit LazyMedia(std::map<std::string, Maker> makers) : makers_(std::move(makers)) {}

  // The path of `name`, made first if it has not been; the maker's error, or
  // NOT_FOUND for a name without one.
  absl::StatusOr<std::filesystem::path> Get(const std::string& name);

  const std::filesystem::path& dir() const { return dir_.path(); }

 private:
  TempDir dir_;
  std::map<std::string, Maker> makers_;
  std::set<std::string> made_;
};

struct TestVideoSpec {
  int width = 320;
  int height = 180;
  int fps = 30;
  double seconds = 3;
  bool audio = true;
  // Frames spaced unevenly (0.5x to 2x the nominal interval), in Matroska.
  bool variable_frame_rate = false;
  // Written as the legacy `rotate` tag (ffmpeg 5.1 has no -display_rotation).
  int rotate = 0;
};

// Writes an H.264 (+ AAC) clip of a test pattern (+ a sine tone) to `path`, whose
// extension picks the container. Needs ffmpeg on PATH.
absl::Status MakeTestVideo(const std::filesystem::path& path, const TestVideoSpec& spec = {});

// Writes `content` to `path`.
absl::Status WriteTestFile(const std::filesystem::path& path, std::string_view content);

// Writes an executable stand-in for ffmpeg at `path`: the real ffmpeg, but the
// ladder encode runs at real-time speed (-re) so that a test can act while a
// job is under way; every other ffmpeg run (the thumbnail) is at full speed.
absl::Status WriteSlowFfmpeg(const std::filesystem::path& path);

// The whole content of `path`.
absl::StatusOr<std::string> ReadTestFile(const std::filesystem::path& path);

// Runs ffmpeg with `args` (after "-nostdin -hide_banner -loglevel error -y");
// an error with its stderr unless it exits 0.
absl::Status RunFfmpegForTest(const std::vector<std::string>& args);

// Runs `argv` (at most a minute) and returns its stdout; an error with its
// stderr unless it exits 0.
absl::StatusOr<std::string> RunForTest(const std::vector<std::string>& argv);

// ffprobe's JSON (`-show_format -show_streams`) for `path` or `url`.
absl::StatusOr<std::string> ProbeJsonForTest(const std::string& path);

}  // namespace streamgrid::testing
