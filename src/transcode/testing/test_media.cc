#include "transcode/testing/test_media.h"

#include <stdlib.h>

#include <fstream>
#include <iterator>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "transcode/subprocess.h"

namespace streamgrid::testing {
namespace {

namespace fs = std::filesystem;

}  // namespace

absl::StatusOr<std::string> RunForTest(const std::vector<std::string>& argv) {
  SubprocessOptions options;
  options.deadline = std::chrono::milliseconds(60'000);
  absl::StatusOr<SubprocessOutput> output = RunSubprocess(argv, std::move(options));
  if (!output.ok()) return output.status();
  if (!output->exit.success()) {
    return absl::InternalError(
        absl::StrCat(argv[0], " ", output->exit.ToString(), ": ", output->stderr_tail));
  }
  return output->stdout_text;
}

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "sg-transcode-test-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) abort();
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

absl::StatusOr<std::filesystem::path> LazyMedia::Get(const std::string& name) {
  fs::path path = dir_.path() / name;
  if (made_.contains(name)) return path;
  auto maker = makers_.find(name);
  if (maker == makers_.end()) return absl::NotFoundError(absl::StrCat("no maker for ", name));
  if (absl::Status status = maker->second(path); !status.ok()) {
    return absl::Status(status.code(), absl::StrCat("making ", name, ": ", status.message()));
  }
  made_.insert(name);
  return path;
}

absl::Status RunFfmpegForTest(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ffmpeg",    "-nostdin", "-hide_banner",
                                   "-loglevel", "error",    "-y"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunForTest(argv).status();
}

absl::StatusOr<std::string> ProbeJsonForTest(const std::string& path) {
  return RunForTest(
      {"ffprobe", "-v", "error", "-of", "json", "-show_format", "-show_streams", path});
}

absl::Status WriteTestFile(const std::filesystem::path& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path.string()));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadTestFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path.string()));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

absl::Status MakeTestVideo(const std::filesystem::path& path, const TestVideoSpec& spec) {
  std::string video = absl::StrFormat("testsrc2=size=%dx%d:rate=%d:duration=%.3f", spec.width,
                                      spec.height, spec.fps, spec.seconds);
  std::vector<std::string> args = {"-f", "lavfi", "-i", video};
  if (spec.audio) {
    args.insert(args.end(), {"-f", "lavfi", "-i",
                             absl::StrFormat("sine=frequency=440:duration=%.3f", spec.seconds)});
  }
  if (spec.variable_frame_rate) {
    // Frame n of each group of three lasts 0.5, 1 and 1.5 nominal intervals:
    // the average rate stays at `fps` but the spacing varies.
    args.insert(args.end(),
                {"-vf", "setpts='(floor(N/3)*3+(mod(N,3)*(mod(N,3)+1))/4)/(FRAME_RATE*TB)'",
                 "-fps_mode", "vfr"});
  }
  // 4:2:0 needs even sizes; 4:4:4 lets the odd-size tests have odd sizes.
  bool odd = spec.width % 2 != 0 || spec.height % 2 != 0;
  args.insert(args.end(),
              {"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", odd ? "yuv444p" : "yuv420p"});
  if (spec.audio) args.insert(args.end(), {"-c:a", "aac", "-shortest"});
  if (spec.rotate == 0) {
    args.push_back(path.string());
    return RunFfmpegForTest(args);
  }
  // The rotate tag is only honoured when remuxing (-c copy), as old phones did.
  fs::path plain = path;
  plain += ".plain.mp4";
  args.push_back(plain.string());
  if (absl::Status status = RunFfmpegForTest(args); !status.ok()) return status;
  absl::Status status = RunFfmpegForTest({"-i", plain.string(), "-c", "copy", "-metadata:s:v:0",
                                          absl::StrCat("rotate=", spec.rotate), path.string()});
  std::error_code ec;
  fs::remove(plain, ec);
  return status;
}

absl::Status WriteSlowFfmpeg(const fs::path& path) {
  absl::Status status = WriteTestFile(path,
                                      "#!/bin/sh\n"
                                      "case \"$*\" in\n"
                                      "  *manifest.mpd*) exec ffmpeg -re \"$@\" ;;\n"
                                      "  *) exec ffmpeg \"$@\" ;;\n"
                                      "esac\n");
  if (status.ok()) fs::permissions(path, fs::perms::owner_all);
  return status;
}

}  // namespace streamgrid::testing
