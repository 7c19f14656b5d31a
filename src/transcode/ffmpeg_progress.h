#pragma once

#include <cstdint>
#include <string_view>

namespace streamgrid {

// Follows the `key=value` lines ffmpeg writes with `-progress` and turns them into
// a percentage of `duration_seconds`.
class FfmpegProgress {
 public:
  explicit FfmpegProgress(double duration_seconds) : duration_seconds_(duration_seconds) {}

  // Takes one line of output. Returns true when percent() changed.
  bool OnLine(std::string_view line);

  // 0..99 from the latest `out_time_us`: 100 is for the caller to report once
  // everything, not just ffmpeg, is done. Never goes backwards.
  int percent() const { return percent_; }

  // True after ffmpeg reported `progress=end`.
  bool ended() const { return ended_; }

  // The latest output timestamp, in microseconds.
  int64_t out_time_us() const { return out_time_us_; }

 private:
  double duration_seconds_;
  int percent_ = 0;
  bool ended_ = false;
  int64_t out_time_us_ = 0;
};

}  // namespace streamgrid
