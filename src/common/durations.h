#pragma once

// Whole milliseconds of a duration, for the timings that logs report.

#include <chrono>
#include <cstdint>

namespace streamgrid {

// `d` in whole milliseconds (rounded toward zero).
template <typename Rep, typename Period>
int64_t WholeMs(std::chrono::duration<Rep, Period> d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// Whole milliseconds from `start` to now on the steady clock.
inline int64_t MsSince(std::chrono::steady_clock::time_point start) {
  return WholeMs(std::chrono::steady_clock::now() - start);
}

}  // namespace streamgrid
