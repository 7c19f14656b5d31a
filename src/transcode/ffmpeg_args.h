#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "transcode/ladder.h"
#include "transcode/probe.h"
#include "transcode/storyboard.h"

namespace streamgrid {

// Names of the files the ladder command writes into its output directory. Media
// playlists are "media_<N>.m3u8", init segments "init-<N>.m4s" and media
// segments "chunk-<N>-<number, 5 digits>.m4s", with N the output stream index
// (video rungs first, then audio).
inline constexpr std::string_view kDashManifestName = "manifest.mpd";
inline constexpr std::string_view kHlsMasterName = "master.m3u8";
inline constexpr std::string_view kThumbnailName = "thumbnail.jpg";
// What the ladder command writes for a thumbnail (BuildLadderCommand()).
inline constexpr std::string_view kLadderFirstFrameName = "thumbnail-1.jpg";
inline constexpr std::string_view kLadderThumbnailName = "thumbnail-2.jpg";
// What the ladder command writes for a storyboard: the first frame on a
// sheet-sized canvas at once (so that ffmpeg reports progress from the
// start), then the sheet itself.
inline constexpr std::string_view kLadderStoryboardFirstName = "storyboard-1.jpg";
inline constexpr std::string_view kLadderStoryboardName = "storyboard-2.jpg";

// Seconds between forced keyframes and per segment. A segment is what a
// video still being encoded becomes playable by (the first one of every
// stream must be stored): 2 s, not 4, makes it playable that much sooner and
// lets playback follow the encode closer (docs/transcode-pipeline.md).
inline constexpr int kKeyframeIntervalSeconds = 2;
inline constexpr int kSegmentSeconds = 2;

// The argv for one ffmpeg process that decodes `source` once and encodes every
// rung of `ladder` (plus the first audio stream, when `info` has audio) into
// DASH and HLS in `out_dir`, reporting progress on stdout (`-progress pipe:1`).
// `source` is read only as an allowed format (InputSafetyOptions()). `ladder`
// must not be empty. With `thumbnail_at`, the same run also writes
// `out_dir/thumbnail-1.jpg`, the first frame, and `out_dir/thumbnail-2.jpg`, the
// frame BuildThumbnailCommand() would pick from that many seconds into the video
// (none when the video has no frame there), both sized by ThumbnailSize().
// With `storyboard`, it also writes `out_dir/storyboard-1.jpg`, a throwaway
// (the first frame on a sheet-sized canvas), and `out_dir/storyboard-2.jpg`, the sheet of tiles
// laid out as `storyboard` says (a frame every interval from the first; blank tiles past the end).
std::vector<std::string> BuildLadderCommand(
    const std::string& ffmpeg, const std::filesystem::path& source, const MediaInfo& info,
    const std::vector<Rung>& ladder, const std::filesystem::path& out_dir,
    std::optional<double> thumbnail_at = std::nullopt,
    const std::optional<StoryboardLayout>& storyboard = std::nullopt);

// The argv for an ffmpeg process that writes `out_dir/thumbnail.jpg`: a
// representative frame from around `seek_seconds`, at most 360 pixels high,
// reading `source` only as an allowed format (InputSafetyOptions()).
std::vector<std::string> BuildThumbnailCommand(const std::string& ffmpeg,
                                               const std::filesystem::path& source,
                                               const MediaInfo& info, double seek_seconds,
                                               const std::filesystem::path& out_dir);

// The thumbnail's size for `info`: the display aspect ratio, even dimensions,
// 360 pixels high or the source height if that is smaller.
void ThumbnailSize(const MediaInfo& info, int* width, int* height);

}  // namespace streamgrid
