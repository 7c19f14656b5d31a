#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>

namespace streamgrid {

// Limits a byte rate shared by several threads: each Acquire(n) returns when
// the bytes acquired so far fit the rate (with up to a second's burst).
// Thread-safe.
class Throttle {
 public:
  // `bytes_per_second` 0 means no limit.
  explicit Throttle(uint64_t bytes_per_second) : rate_(bytes_per_second) {}

  // Whether a rate is set (Acquire may wait).
  bool limited() const { return rate_ != 0; }

  // Waits, by calling `sleep` (which returns false to give up early), until
  // `bytes` more may pass; false if `sleep` gave up.
  bool Acquire(uint64_t bytes, const std::function<bool(std::chrono::nanoseconds)>& sleep);

  // How long a caller wanting `bytes` at `now` must wait (0: go), reserving
  // them; for tests and for Acquire.
  std::chrono::nanoseconds Reserve(uint64_t bytes, std::chrono::steady_clock::time_point now);

 private:
  const uint64_t rate_;
  std::mutex mu_;
  // When the bytes reserved so far will have passed at the rate.
  std::chrono::steady_clock::time_point next_free_;  // guarded by mu_
};

}  // namespace streamgrid
