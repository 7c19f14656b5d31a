#pragma once

// Seek-bar previews: one sprite sheet of small frames, taken every few seconds
// by the ladder's own ffmpeg run (BuildLadderCommand()), and a WebVTT track
// that maps each stretch of time to its tile ("storyboard.jpg#xywh=x,y,w,h").

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "transcode/probe.h"

namespace streamgrid {

// The files a video's storyboard is stored as, beside its segments.
inline constexpr std::string_view kStoryboardImageName = "storyboard.jpg";
inline constexpr std::string_view kStoryboardTrackName = "storyboard.vtt";

// At most this many tiles in a sheet (the interval grows with the duration),
// this many per row, and the longer side of a tile in pixels.
inline constexpr int kStoryboardMaxTiles = 100;
inline constexpr int kStoryboardColumns = 10;
inline constexpr int kStoryboardTileLongSide = 160;

// How a sheet is laid out: tile i (0-based, row by row) shows the frame at
// i * interval_seconds from the start.
struct StoryboardLayout {
  int interval_seconds = 1;
  int tile_width = 0;   // even
  int tile_height = 0;  // even
  int columns = 0;
  int rows = 0;
  int sheet_width() const { return tile_width * columns; }
  int sheet_height() const { return tile_height * rows; }
  bool operator==(const StoryboardLayout&) const = default;
};

// The layout for `info`: one tile per interval_seconds = max(1, ceil(duration /
// kStoryboardMaxTiles)) seconds, tiles of the display aspect ratio with their
// longer side kStoryboardTileLongSide (or the source's, if smaller), up to
// kStoryboardColumns per row. nullopt when the duration or size is unknown.
std::optional<StoryboardLayout> PlanStoryboard(const MediaInfo& info);

// The WebVTT track for a sheet laid out as `layout` of a video of
// `duration_seconds` (what was encoded): a cue per tile, [i * interval,
// (i + 1) * interval), the last one ending at the duration; tiles beyond the
// sheet's are not named (the last cue then stretches to the end). Each cue's
// text is `image_name` + "#xywh=x,y,w,h". Empty cue list when the duration
// is not positive.
std::string StoryboardVtt(const StoryboardLayout& layout, double duration_seconds,
                          std::string_view image_name = kStoryboardImageName);

// "hh:mm:ss.mmm", as WebVTT cue times are written (milliseconds rounded).
std::string VttTimestamp(double seconds);

// Writes StoryboardVtt() to `path` (replacing it). INTERNAL on a write error.
absl::Status WriteStoryboardVtt(const std::filesystem::path& path, const StoryboardLayout& layout,
                                double duration_seconds);

}  // namespace streamgrid
