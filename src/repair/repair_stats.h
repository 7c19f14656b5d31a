#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace streamgrid::repair {

// What the web server's self-repair loops (hinted handoff, anti-entropy,
// damage repair, re-replication) have done since it started, for the admin
// API's RepairStatus. Every loop adds to one shared instance. Thread-safe.
struct RepairStats {
  std::atomic<uint64_t> hints_pending{0};  // at the last look (set, not added)
  std::atomic<uint64_t> hints_handed_back{0};
  std::atomic<uint64_t> files_repaired{0};
  std::atomic<uint64_t> bytes_repaired{0};
  std::atomic<uint64_t> damaged_reported{0};
  std::atomic<uint64_t> anti_entropy_passes{0};
  std::atomic<int64_t> last_anti_entropy_unix_ms{0};
  std::atomic<uint64_t> files_unrecoverable{0};

  void SetLastError(std::string error) {
    std::lock_guard lock(mu_);
    last_error_ = std::move(error);
  }
  std::string LastError() const {
    std::lock_guard lock(mu_);
    return last_error_;
  }

 private:
  mutable std::mutex mu_;
  std::string last_error_;  // guarded by mu_
};

}  // namespace streamgrid::repair
