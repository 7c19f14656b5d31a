#include "transcode/storyboard.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/strings.h"

namespace streamgrid {

std::optional<StoryboardLayout> PlanStoryboard(const MediaInfo& info) {
  if (!(info.duration_seconds > 0) || info.width <= 0 || info.height <= 0) return std::nullopt;
  StoryboardLayout layout;
  // Whole seconds, so that the fps filter's rate (1/interval) is exact.
  layout.interval_seconds =
      std::max(1, static_cast<int>(std::ceil(info.duration_seconds / kStoryboardMaxTiles - 1e-9)));
  const int tiles = std::clamp(
      static_cast<int>(std::ceil(info.duration_seconds / layout.interval_seconds - 1e-9)), 1,
      kStoryboardMaxTiles);
  layout.columns = std::min(tiles, kStoryboardColumns);
  layout.rows = (tiles + layout.columns - 1) / layout.columns;
  // The longer side gets the tile's length (never more than the source's);
  // the other follows the aspect ratio, both even and at least 2.
  const bool wide = info.width >= info.height;
  const int long_side = std::min(kStoryboardTileLongSide, wide ? info.width : info.height) & ~1;
  const double short_side = static_cast<double>(wide ? info.height : info.width) * long_side /
                            (wide ? info.width : info.height);
  const int short_even = std::max(2, static_cast<int>(std::lround(short_side / 2)) * 2);
  layout.tile_width = wide ? std::max(2, long_side) : short_even;
  layout.tile_height = wide ? short_even : std::max(2, long_side);
  return layout;
}

std::string VttTimestamp(double seconds) {
  const int64_t ms = std::llround(std::max(0.0, seconds) * 1000);
  return absl::StrFormat("%02d:%02d:%02d.%03d", ms / 3'600'000, ms / 60'000 % 60, ms / 1000 % 60,
                         ms % 1000);
}

std::string StoryboardVtt(const StoryboardLayout& layout, double duration_seconds,
                          std::string_view image_name) {
  std::string vtt = "WEBVTT\n";
  if (!(duration_seconds > 0) || layout.columns <= 0 || layout.rows <= 0) return vtt;
  const int interval = std::max(1, layout.interval_seconds);
  const int64_t wanted = static_cast<int64_t>(std::ceil(duration_seconds / interval - 1e-9));
  const int64_t cues =
      std::clamp<int64_t>(wanted, 1, static_cast<int64_t>(layout.columns) * layout.rows);
  for (int64_t i = 0; i < cues; ++i) {
    const double start = static_cast<double>(i * interval);
    // The last cue covers the rest: a partial interval, or every interval
    // past the sheet's last tile.
    const double end = i + 1 == cues ? duration_seconds : static_cast<double>((i + 1) * interval);
    const int64_t x = (i % layout.columns) * layout.tile_width;
    const int64_t y = (i / layout.columns) * layout.tile_height;
    absl::StrAppend(&vtt, "\n", VttTimestamp(start), " --> ", VttTimestamp(end), "\n",
                    ToAbsl(image_name), "#xywh=", x, ",", y, ",", layout.tile_width, ",",
                    layout.tile_height, "\n");
  }
  return vtt;
}

absl::Status WriteStoryboardVtt(const std::filesystem::path& path, const StoryboardLayout& layout,
                                double duration_seconds) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << StoryboardVtt(layout, duration_seconds);
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path.string()));
  return absl::OkStatus();
}

}  // namespace streamgrid
