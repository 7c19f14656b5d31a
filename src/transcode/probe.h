#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/statusor.h"

namespace streamgrid {

// What ffprobe tells us about a source file.
struct MediaInfo {
  double duration_seconds = 0;
  int width = 0;          // display size: after the sample aspect ratio and rotation
  int height = 0;         // are applied, i.e. what a player shows
  int rotation = 0;       // clockwise degrees the player must rotate by, 0..359
  double frame_rate = 0;  // average frames per second; 0 when unknown
  bool has_video = false;
  bool has_audio = false;
  int64_t bit_rate = 0;     // whole file, bits per second; 0 when unknown
  std::string format_name;  // e.g. "mov,mp4,m4a,3gp,3g2,mj2"
  std::string video_codec;  // e.g. "h264"
  int stream_count = 0;     // streams of every kind
  double start_time = 0;    // the container's first timestamp, seconds (0 when unknown)
  // The container states no length (a WebM recorded in a browser, any file
  // written as a live stream): duration_seconds was measured by reading every
  // packet through, without decoding.
  bool duration_measured = false;
};

class CancelToken;
namespace probe {
class ProbeHelperPool;
}

struct ProbeOptions {
  std::string ffprobe = "ffprobe";  // program, looked up on PATH
  std::chrono::milliseconds timeout{60'000};
  CancelToken* cancel = nullptr;  // when set and cancelled, ffprobe is killed
  // Long-lived streamgrid-probe helpers to describe the file with instead of
  // an ffprobe run (same answers and errors, no process start). When null,
  // the one SetDefaultProbeHelper() installed, if any; ffprobe otherwise,
  // and also when no helper can be started.
  probe::ProbeHelperPool* helper = nullptr;
};

// Makes `helper` (may be null; must outlive every ProbeMedia() call) the
// one ProbeMedia() uses when its options name none. The web server installs
// its helpers at start.
void SetDefaultProbeHelper(probe::ProbeHelperPool* helper);

// Describes `file` with ffprobe (or a probe helper, which answers as ffprobe
// does: ProbeOptions::helper), which may only read it as one of the container
// formats in media_policy.h. When the container states no duration, the file
// is read through once more, demuxing only, and its length is where its
// packets end (MediaInfo::duration_measured); that read has a timeout of its
// own (options.timeout again). Errors carry messages fit for the uploader:
// INVALID_ARGUMENT when the file is not a video (not a media file, no video
// stream, a still image, or a format that is not allowed: a playlist, a
// manifest, a concat list, an image sequence, ...); OUT_OF_RANGE when ffprobe's
// description is absurdly large (thousands of streams); DATA_LOSS when it is damaged (empty,
// truncated, no index, no packet with a timestamp to measure its length by); NOT_FOUND when `file`
// does not exist; DEADLINE_EXCEEDED when ffprobe takes longer than the timeout; CANCELLED when
// `options.cancel` fired; other codes when ffprobe cannot be run at all.
absl::StatusOr<MediaInfo> ProbeMedia(const std::filesystem::path& file,
                                     const ProbeOptions& options = {});

// Checks, without decoding anything, that `file` (described by `info`) is
// not cut short, and fails with DATA_LOSS if it is. This catches what
// ProbeMedia() cannot: a file whose index is intact but whose media data was
// cut (an MP4 with its index at the front, uploaded partially). First the
// container's own framing (an MP4's top-level boxes, a Matroska/WebM
// segment's declared size) must end inside the file; when it accounts for
// every byte (a whole unfragmented MP4, a Matroska file of known size) that
// settles it. Otherwise the packets of the last second or so (listed by
// ffprobe, which only demuxes) must lie inside the file and reach the end of
// the duration. Costs a few reads, and for other containers one short
// ffprobe run, whatever the file's size. Damage inside the media data
// (rather than a cut) is left for the transcode to report.
absl::Status VerifyMediaEnd(const std::filesystem::path& file, const MediaInfo& info,
                            const ProbeOptions& options = {});

// Interprets the output of `ffprobe -of json -show_format -show_streams` with the
// same rules and errors as ProbeMedia(), including the format allow-list,
// except that a description without a duration is not an error: its
// duration_seconds is then 0, for ProbeMedia() to measure. Exposed for tests.
absl::StatusOr<MediaInfo> ParseProbeJson(std::string_view json);

// The length of a file whose container states none, from a demux-only read of
// all of its packets: `packets` of them, the latest ending at `max_end`
// seconds (timestamp + duration), the file starting at `start_time`
// (MediaInfo::start_time). DATA_LOSS, with the uploader's message, when no
// packet had a timestamp to measure by. Exposed for tests.
absl::StatusOr<double> DurationFromPackets(int64_t packets, double max_end, double start_time);

}  // namespace streamgrid
