#include "migration/throttle.h"

#include <algorithm>

namespace streamgrid {

std::chrono::nanoseconds Throttle::Reserve(uint64_t bytes,
                                           std::chrono::steady_clock::time_point now) {
  if (rate_ == 0) return std::chrono::nanoseconds(0);
  std::lock_guard lock(mu_);
  // An idle throttle lets up to a second's worth through at once.
  const auto earliest = now - std::chrono::seconds(1);
  next_free_ = std::max(next_free_, earliest);
  const auto cost = std::chrono::nanoseconds(static_cast<int64_t>(
      static_cast<long double>(bytes) * 1e9L / static_cast<long double>(rate_)));
  next_free_ += cost;
  return std::max(std::chrono::nanoseconds(0),
                  std::chrono::duration_cast<std::chrono::nanoseconds>(next_free_ - now));
}

bool Throttle::Acquire(uint64_t bytes, const std::function<bool(std::chrono::nanoseconds)>& sleep) {
  const std::chrono::nanoseconds wait = Reserve(bytes, std::chrono::steady_clock::now());
  return wait.count() <= 0 || sleep(wait);
}

}  // namespace streamgrid
