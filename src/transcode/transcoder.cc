#include "transcode/transcoder.h"

#include <algorithm>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/names.h"
#include "common/strings.h"
#include "transcode/ffmpeg_args.h"
#include "transcode/ffmpeg_progress.h"
#include "transcode/hls_fixup.h"
#include "transcode/ladder.h"
#include "transcode/storyboard.h"
#include "transcode/subprocess.h"

namespace streamgrid {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxSummaryLines = 3;
constexpr size_t kMaxSummaryBytes = 500;
// Output shorter than this share of the probed duration (less the slack, for
// rounding and streams of slightly different lengths) means data is missing.
constexpr double kMinEncodedFraction = 0.9;
constexpr double kEncodedSlackSeconds = 0.5;
// ffmpeg's reported output time trails the end by the encoder's reordering
// delay, a few frames: at 4 fps that alone is more than the slack above.
constexpr double kEncodedSlackFrames = 4;

// (text to replace, replacement) pairs for messages.
using Redactions = std::vector<std::pair<std::string, std::string>>;

// Cuts `text` to at most `max` bytes without splitting a UTF-8 sequence.
void TruncateUtf8(std::string& text, size_t max) {
  if (text.size() <= max) return;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  text.resize(cut);
  text += "...";
}

// "[libx264 @ 0x55d0c0a4a580] msg" → "[libx264] msg": the address is noise.
std::string DropContextAddress(std::string_view line) {
  std::string out(line);
  size_t at = out.find(" @ 0x");
  if (at != std::string::npos && !out.empty() && out[0] == '[') {
    size_t close = out.find(']', at);
    if (close != std::string::npos) out.erase(at, close - at);
  }
  return out;
}

// Runs one ffmpeg command to the end, feeding stdout lines to `on_line`.
// `what` names the step in error messages; `redactions` keep our paths out of
// them (they end up in front of the uploader). `errors`, if given, receives the
// summary of stderr even on success: ffmpeg carries on past damaged input.
// When the encode must be over, and how to say that it was not.
struct TimeLimit {
  Clock::time_point end = Clock::time_point::max();
  std::string exceeded_message;
};

absl::Status RunFfmpeg(const std::vector<std::string>& argv, const TranscodeOptions& options,
                       std::function<void(std::string_view)> on_line, CancelToken* cancel,
                       std::string_view what, const Redactions& redactions, const TimeLimit& limit,
                       std::string* errors_out = nullptr) {
  SubprocessOptions run;
  run.on_stdout_line = std::move(on_line);
  run.stall_timeout = options.stall_timeout;
  run.deadline = options.deadline;
  if (limit.end != Clock::time_point::max()) {
    const Clock::time_point now = Clock::now();
    if (now >= limit.end) return absl::DeadlineExceededError(limit.exceeded_message);
    auto left = std::chrono::ceil<std::chrono::milliseconds>(limit.end - now);
    if (!run.deadline || left < *run.deadline) run.deadline = left;
  }
  run.kill_grace = std::chrono::milliseconds(2000);
  run.priority = options.priority;
  absl::StatusOr<std::unique_ptr<Subprocess>> proc = Subprocess::Start(argv, std::move(run));
  if (!proc.ok()) return proc.status();
  absl::StatusOr<ExitStatus> exit;
  {
    CancelToken::Registration registration;
    if (cancel != nullptr) {
      Subprocess* raw = proc->get();
      registration = cancel->OnCancel([raw] { raw->Kill(); });
    }
    exit = (*proc)->Wait();
  }
  std::string errors =
      absl::StrReplaceAll(SummarizeFfmpegErrors((*proc)->stderr_tail()), redactions);
  if (errors_out != nullptr) *errors_out = errors;
  if (!exit.ok()) {
    if (absl::IsCancelled(exit.status())) return absl::CancelledError("transcoding was cancelled");
    if (absl::IsDeadlineExceeded(exit.status()) && Clock::now() >= limit.end) {
      return absl::DeadlineExceededError(limit.exceeded_message);
    }
    return absl::Status(exit.status().code(),
                        absl::StrCat(ToAbsl(what), " stopped: ", exit.status().message(),
                                     errors.empty() ? "" : ": ", errors));
  }
  if (!exit->success()) {
    return absl::InternalError(absl::StrCat(ToAbsl(what), " failed (", exit->ToString(), ")",
                                            errors.empty() ? "" : ": ", errors));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ListOutputs(const fs::path& out_dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(out_dir, ec)) {
    std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || !IsValidContentName(name)) {
      return absl::InternalError(absl::StrCat("unexpected output file '", name, "'"));
    }
    files.push_back(std::move(name));
  }
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot list ", out_dir.string(), ": ", ec.message()));
  }
  std::sort(files.begin(), files.end());
  return files;
}

bool IsMediaPlaylist(std::string_view name) {
  return name.starts_with("media_") && name.ends_with(".m3u8");
}

bool NonEmptyFile(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec) && fs::file_size(path, ec) > 0 && !ec;
}

// Checks that ffmpeg wrote a manifest and playlists, and makes the HLS media
// playlists VOD.
absl::Status FinishPlaylists(const fs::path& out_dir) {
  absl::StatusOr<std::vector<std::string>> files = ListOutputs(out_dir);
  if (!files.ok()) return files.status();
  bool has_manifest = false, has_master = false, has_media = false;
  for (const std::string& name : *files) {
    has_manifest |= name == kDashManifestName;
    has_master |= name == kHlsMasterName;
    has_media |= IsMediaPlaylist(name);
  }
  if (!has_manifest || !has_master || !has_media) {
    return absl::InternalError("transcoding produced no manifest or playlists");
  }
  for (const std::string& name : *files) {
    if (!IsMediaPlaylist(name)) continue;
    if (absl::Status fixed = FixupHlsMediaPlaylistFile(out_dir / name); !fixed.ok()) return fixed;
  }
  return absl::OkStatus();
}

absl::Status MakeThumbnail(const fs::path& source, const MediaInfo& info, const fs::path& out_dir,
                           const TranscodeOptions& options, CancelToken* cancel,
                           const Redactions& redactions, const TimeLimit& limit) {
  // The middle is usually more telling than the (often black) first frame. A
  // seek past the real end, when the container's duration is wrong, yields no
  // frame; the start always has one.
  fs::path thumbnail = out_dir / kThumbnailName;
  for (double seek : {info.duration_seconds / 2, 0.0}) {
    absl::Status status =
        RunFfmpeg(BuildThumbnailCommand(options.ffmpeg, source, info, seek, out_dir), options,
                  nullptr, cancel, "making the thumbnail", redactions, limit);
    if (!status.ok()) return status;
    if (NonEmptyFile(thumbnail)) return absl::OkStatus();
  }
  return absl::InternalError("no frame for the thumbnail");
}

absl::StatusOr<TranscodeResult> TranscodeInto(const fs::path& source, const fs::path& out_dir,
                                              const TranscodeOptions& options,
                                              const std::function<void(int)>& on_progress,
                                              CancelToken* cancel, const MediaInfo* probed) {
  absl::StatusOr<MediaInfo> info;
  if (probed != nullptr) {
    // Described already (by the upload, with the same ffprobe and rules): a
    // second ffprobe would only cost time.
    info = *probed;
  } else {
    ProbeOptions probe_options;
    probe_options.ffprobe = options.ffprobe;
    probe_options.timeout = options.probe_timeout;
    probe_options.cancel = cancel;
    info = ProbeMedia(source, probe_options);
  }
  if (absl::IsCancelled(info.status()) || (cancel != nullptr && cancel->cancelled())) {
    return absl::CancelledError("transcoding was cancelled");
  }
  if (!info.ok()) return info.status();
  if (absl::Status within = CheckMediaLimits(*info, options.limits); !within.ok()) return within;

  // The clock starts after the probe, which has its own timeout.
  TimeLimit limit;
  const std::chrono::milliseconds allowed =
      TranscodeTimeLimit(info->duration_seconds, options.time_factor, options.time_floor);
  if (allowed.count() > 0) {
    limit.end = Clock::now() + allowed;
    limit.exceeded_message = absl::StrFormat(
        "Converting the video took longer than its time limit of %.1f s (%g times its %.1f s "
        "plus %.1f s) and was stopped.",
        allowed.count() / 1000.0, options.time_factor, info->duration_seconds,
        options.time_floor.count() / 1000.0);
  }

  TranscodeResult result;
  result.source = *info;
  std::vector<Rung> ladder = SelectLadder(*info);
  for (const Rung& rung : ladder) {
    result.renditions.push_back({rung.name, rung.width, rung.height, rung.bitrate});
  }

  const Redactions redactions = {{"file:" + source.string(), "the upload"},
                                 {source.string(), "the upload"},
                                 {"file:" + out_dir.string(), "output"},
                                 {out_dir.string(), "output"}};

  FfmpegProgress progress(info->duration_seconds);
  auto on_line = [&](std::string_view line) {
    if (progress.OnLine(line) && on_progress) on_progress(progress.percent());
  };
  std::string errors;
  // The thumbnail and the storyboard come from the frames this run decodes
  // anyway (the middle is usually more telling than the often black first
  // frame), not from a second decode of the source after it.
  const std::optional<StoryboardLayout> storyboard = PlanStoryboard(*info);
  absl::Status status =
      RunFfmpeg(BuildLadderCommand(options.ffmpeg, source, *info, ladder, out_dir,
                                   /*thumbnail_at=*/info->duration_seconds / 2, storyboard),
                options, on_line, cancel, "transcoding", redactions, limit, &errors);
  if (!status.ok()) return status;
  // A file cut short after its index (e.g. an MP4 with the index first) probes
  // fine and ffmpeg encodes what there is, complaining but exiting 0.
  double encoded_seconds = progress.out_time_us() / 1e6;
  const double slack = std::max(
      kEncodedSlackSeconds, info->frame_rate > 0 ? kEncodedSlackFrames / info->frame_rate : 0.0);
  if (encoded_seconds < info->duration_seconds * kMinEncodedFraction - slack) {
    if (!errors.empty() || encoded_seconds <= 0) {
      return absl::DataLossError(absl::StrFormat(
          "The video file is incomplete or damaged: only %.1f of its %.1f seconds could be "
          "read%s.",
          encoded_seconds, info->duration_seconds,
          errors.empty() ? "" : absl::StrCat(" (", errors, ")")));
    }
    // No complaint: the container's duration was wrong, not the data.
    result.source.duration_seconds = encoded_seconds;
  }

  // The ladder run's pick becomes the thumbnail; its first frame was only there
  // to get ffmpeg reporting progress from the start.
  std::error_code ec;
  if (NonEmptyFile(out_dir / kLadderThumbnailName)) {
    fs::rename(out_dir / kLadderThumbnailName, out_dir / kThumbnailName, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot rename the thumbnail: ", ec.message()));
  }
  fs::remove(out_dir / kLadderThumbnailName, ec);
  fs::remove(out_dir / kLadderFirstFrameName, ec);
  // Likewise the sheet; its track is written here, from the duration actually
  // encoded. Without a sheet (no frame reached it) the video simply has no
  // storyboard: players show no preview, as for videos from before them.
  if (storyboard && NonEmptyFile(out_dir / kLadderStoryboardName)) {
    fs::rename(out_dir / kLadderStoryboardName, out_dir / kStoryboardImageName, ec);
    if (ec) {
      return absl::InternalError(absl::StrCat("cannot rename the storyboard: ", ec.message()));
    }
    status = WriteStoryboardVtt(out_dir / kStoryboardTrackName, *storyboard,
                                result.source.duration_seconds);
    if (!status.ok()) return status;
  }
  fs::remove(out_dir / kLadderStoryboardName, ec);
  fs::remove(out_dir / kLadderStoryboardFirstName, ec);

  status = FinishPlaylists(out_dir);
  if (!status.ok()) return status;
  if (!NonEmptyFile(out_dir / kThumbnailName)) {
    // No frame at the middle the container claimed: a run of its own, with the
    // duration actually encoded.
    status = MakeThumbnail(source, result.source, out_dir, options, cancel, redactions, limit);
    if (!status.ok()) return status;
  }

  absl::StatusOr<std::vector<std::string>> files = ListOutputs(out_dir);
  if (!files.ok()) return files.status();
  result.files = std::move(*files);
  return result;
}

}  // namespace

std::string SummarizeFfmpegErrors(std::string_view stderr_text) {
  std::vector<std::string_view> lines = NonEmptyLines(stderr_text);
  std::vector<std::string> kept;
  for (auto it = lines.rbegin(); it != lines.rend() && kept.size() < kMaxSummaryLines; ++it) {
    std::string cleaned = DropContextAddress(*it);
    // ffmpeg repeats a failure on the way out; once is enough.
    if (std::find(kept.begin(), kept.end(), cleaned) != kept.end()) continue;
    kept.push_back(std::move(cleaned));
  }
  std::reverse(kept.begin(), kept.end());
  std::string summary = absl::StrJoin(kept, "; ");
  TruncateUtf8(summary, kMaxSummaryBytes);
  return summary;
}

absl::StatusOr<TranscodeResult> Transcode(const std::filesystem::path& source,
                                          const std::filesystem::path& out_dir,
                                          const TranscodeOptions& options,
                                          std::function<void(int percent)> on_progress,
                                          CancelToken* cancel, const MediaInfo* probed) {
  if (cancel != nullptr && cancel->cancelled()) {
    return absl::CancelledError("transcoding was cancelled");
  }
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create ", out_dir.string(), ": ", ec.message()));
  }
  if (!fs::is_empty(out_dir, ec) || ec) {
    // Not ours to clean up.
    return absl::FailedPreconditionError(
        absl::StrCat("output directory ", out_dir.string(), " is not empty"));
  }
  absl::StatusOr<TranscodeResult> result =
      TranscodeInto(source, out_dir, options, on_progress, cancel, probed);
  if (!result.ok()) fs::remove_all(out_dir, ec);
  return result;
}

}  // namespace streamgrid
