#pragma once

// What StreamGrid agrees to read from an upload: which container formats
// ffprobe and ffmpeg may demux (never one that opens other files or URLs), and
// how much one video may cost (duration, picture size, streams, encode time).

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "transcode/probe.h"

namespace streamgrid {

// Demuxer names, as ffprobe prints them in format_name, that cameras, phones
// and screen recorders write: MP4/MOV/3GP, Matroska/WebM, AVI, MPEG-TS (also
// AVCHD .mts/.m2ts), FLV, Ogg, ASF (WMV), MPEG-PS (.mpg/.vob), MXF and DV.
// None of them opens another file or URL (see docs/design.md, "Accepted
// media"); the MOV demuxer could, through external data references, but only
// with its enable_drefs option, which is off by default and pinned off by
// InputSafetyOptions() where it can be.
inline constexpr std::string_view kAllowedInputFormats =
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,flv,ogg,asf,mpeg,mxf,dv";

// Input protocols: the upload is always a local file named "file:PATH".
inline constexpr std::string_view kAllowedInputProtocols = "file";

// For people: the kinds of files accepted, in the words of a file dialog.
inline constexpr std::string_view kAcceptedKinds =
    "MP4, MOV, 3GP, MKV, WebM, AVI, MPEG-TS (MTS, M2TS), FLV, Ogg, WMV, MPEG (MPG, VOB), MXF "
    "or DV";

// The options every ffprobe and ffmpeg invocation puts right before its "-i":
// the format and protocol whitelists. FFmpeg picks a demuxer by the content,
// whatever the file is called, so a text file holding an HLS playlist, a concat
// list or a DASH manifest would otherwise be opened as one and read whatever
// files and URLs it names; with these the open fails instead.
//
// `format_name` is the source's, when a probe already told it: for the MOV
// family the demuxer's external references are then also pinned off
// (-enable_drefs 0 -use_absolute_path 0). Without it they are left at their
// default (off): ffmpeg refuses a demuxer option the chosen demuxer lacks, so
// they can only be given when the demuxer is known.
std::vector<std::string> InputSafetyOptions(std::string_view format_name = "");

// True when `format_name` (ffprobe's, e.g. "mov,mp4,m4a,3gp,3g2,mj2") names
// one of kAllowedInputFormats.
bool IsAllowedInputFormat(std::string_view format_name);

// The uploader's message for a file FFmpeg recognised as `demuxer` (e.g.
// "hls", "concat", "png_pipe"), which is not allowed: what it looks like and
// what is accepted instead.
std::string RefusedFormatMessage(std::string_view demuxer);

// Caps on what one upload may cost to process. Defaults are generous: hours of
// video, and anything up to DCI 8K (8192x4320, the largest picture H.264 and
// HEVC level 6.2 define) in either orientation.
struct MediaLimits {
  double max_duration_seconds = 6 * 3600;
  // The picture's longer and shorter side, whichever way it is held: a
  // portrait 4320x8192 video fits 8192x4320.
  int max_long_side = 8192;
  int max_short_side = 4320;
  // Streams of all kinds; a real recording has a handful.
  int max_streams = 64;
};

// OK when `info` is within `limits`; else OUT_OF_RANGE with a message for the
// uploader naming the limit (HTTP 413 at upload).
absl::Status CheckMediaLimits(const MediaInfo& info, const MediaLimits& limits);

// Parses "WIDTHxHEIGHT" (e.g. "8192x4320", both at least 2) into
// limits->max_long_side/max_short_side (the larger and smaller of the two);
// INVALID_ARGUMENT on anything else.
absl::Status ParseMaxResolution(std::string_view text, MediaLimits* limits);

// How long the encode of a video of `duration_seconds` may take: `factor` times
// the duration plus `floor`. A factor of zero or less means no limit (returns
// zero).
std::chrono::milliseconds TranscodeTimeLimit(double duration_seconds, double factor,
                                             std::chrono::milliseconds floor);

}  // namespace streamgrid
