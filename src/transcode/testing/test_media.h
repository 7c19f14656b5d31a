#pragma once

// Helpers for tests that need real media files: tiny clips made with ffmpeg's
// lavfi sources, and scratch directories.

#include <filesystem>
#include <string>
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

// Runs ffmpeg with `args` (after "-nostdin -hide_banner -loglevel error -y");
// an error with its stderr unless it exits 0.
absl::Status RunFfmpegForTest(const std::vector<std::string>& args);

// ffprobe's JSON (`-show_format -show_streams`) for `path` or `url`.
absl::StatusOr<std::string> ProbeJsonForTest(const std::string& path);

}  // namespace streamgrid::testing
