#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "metadata/video_metadata_service.h"
#include "transcode/cancel_token.h"
#include "transcode/media_policy.h"
#include "transcode/probe.h"
#include "transcode/subprocess.h"

namespace streamgrid {

struct TranscodeOptions {
  std::string ffmpeg = "ffmpeg";  // programs, looked up on PATH
  std::string ffprobe = "ffprobe";
  std::chrono::milliseconds probe_timeout{60'000};
  // ffmpeg is killed when it reports nothing for this long (it normally reports
  // twice a second)...
  std::chrono::milliseconds stall_timeout{120'000};
  // ...or when one ffmpeg run takes longer than this, if set...
  std::optional<std::chrono::milliseconds> deadline;
  // ...or when the encode and thumbnail together take longer than
  // TranscodeTimeLimit(duration, time_factor, time_floor); a factor of 0
  // means no such limit.
  double time_factor = 0;
  std::chrono::milliseconds time_floor{0};
  // Sources beyond these are refused before anything is encoded.
  MediaLimits limits;
  // The priority to run ffmpeg at (null: the server's): a head start's, low
  // until its upload is accepted.
  std::shared_ptr<ChildPriority> priority;
};

struct TranscodeResult {
  MediaInfo source;
  std::vector<Rendition> renditions;  // largest first
  // Every file written to the output directory, sorted: the DASH manifest
  // (manifest.mpd), the HLS master (master.m3u8) and media playlists
  // (media_N.m3u8), init and media segments (init-N.m4s, chunk-N-NNNNN.m4s),
  // thumbnail.jpg and, unless no frame made it into one, the storyboard
  // (storyboard.jpg and storyboard.vtt, see storyboard.h). Each satisfies
  // IsValidContentName.
  std::vector<std::string> files;
};

// Encodes `source` into an adaptive-bitrate ladder in `out_dir` (created; it must
// not exist or be empty): probes it (unless `probed`, ProbeMedia()'s description
// of these very bytes, is given), picks the ladder, runs one ffmpeg for DASH +
// HLS, the thumbnail and the storyboard sheet, writes the storyboard's WebVTT
// track, and makes the HLS playlists VOD. A second ffmpeg run
// makes the thumbnail only when the video has no frame at the middle of the
// duration its container claims.
//
// Segments appear in `out_dir` while ffmpeg runs (see CompletedWhileEncoding()
// for when one is final); manifests and playlists are final only once this
// returns.
//
// `on_progress` (may be empty) gets increasing percentages, 1..99, as the encode
// advances, on the calling thread. Cancelling `cancel` (may be null) kills
// ffmpeg within about a second and yields CANCELLED.
//
// `result.source.duration_seconds` is what was encoded when that is shorter than
// the container claimed and ffmpeg reported no damage.
//
// Errors: ProbeMedia()'s for unusable input (INVALID_ARGUMENT, DATA_LOSS, ...);
// CheckMediaLimits()'s OUT_OF_RANGE for a source beyond `options.limits`;
// DATA_LOSS also when ffmpeg could read only part of the file; INTERNAL with
// ffmpeg's last error lines when it fails; DEADLINE_EXCEEDED when it stalls or
// overruns (over the time limit: a message saying so, for the uploader);
// FAILED_PRECONDITION when `out_dir` is not empty. On any other error
// `out_dir` is removed.
absl::StatusOr<TranscodeResult> Transcode(const std::filesystem::path& source,
                                          const std::filesystem::path& out_dir,
                                          const TranscodeOptions& options,
                                          std::function<void(int percent)> on_progress,
                                          CancelToken* cancel, const MediaInfo* probed = nullptr);

// The most useful part of ffmpeg's stderr for a person: its last few non-empty
// lines, joined with "; ", at most about 500 characters. Exposed for tests.
std::string SummarizeFfmpegErrors(std::string_view stderr_text);

}  // namespace streamgrid
