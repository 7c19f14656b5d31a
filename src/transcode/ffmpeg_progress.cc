#include "transcode/ffmpeg_progress.h"

#include <algorithm>
#include <cmath>

#include "common/strings.h"

namespace streamgrid {

bool FfmpegProgress::OnLine(std::string_view line) {
  line = StripWhitespace(line);
  size_t equals = line.find('=');
  if (equals == std::string_view::npos) return false;
  std::string_view key = line.substr(0, equals);
  std::string_view value = StripWhitespace(line.substr(equals + 1));
  if (key == "progress") {
    if (value == "end") ended_ = true;
    return false;
  }
  // Only out_time_us: out_time_ms is also in microseconds (a long-standing
  // ffmpeg quirk) and out_time is the same figure as text. "N/A" appears before
  // the first packet; negative values with some inputs' start offsets.
  if (key != "out_time_us") return false;
  std::optional<int64_t> micros = ParseInt64(value);
  if (!micros || *micros < 0) return false;
  out_time_us_ = *micros;
  if (!(duration_seconds_ > 0)) return false;
  double fraction = static_cast<double>(*micros) / (duration_seconds_ * 1e6);
  int percent = std::clamp(static_cast<int>(std::floor(fraction * 100)), 0, 99);
  if (percent <= percent_) return false;
  percent_ = percent;
  return true;
}

}  // namespace streamgrid
