#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "storage/storage_engine.h"

namespace streamgrid::storage {

struct ScrubberOptions {
  // Bytes read per second at most; 0 turns the scrubber off.
  uint64_t bytes_per_second = 10 << 20;
  // Pause between the end of a pass and the start of the next. The first
  // pass starts when the scrubber starts (a node that restarts daily would
  // otherwise never be scrubbed).
  std::chrono::milliseconds interval = std::chrono::hours(24);
};

// What the scrubber has done since it started (proto ScrubStats).
struct ScrubStats {
  uint64_t bytes_per_second = 0;
  uint64_t files_checked = 0;
  uint64_t bytes_checked = 0;
  uint64_t damaged_found = 0;
  uint64_t passes_completed = 0;
  int64_t last_pass_finished_unix_ms = 0;
};

// A background thread that re-reads and re-hashes every file of an engine
// (StorageEngine::ScrubFile), at a bounded rate, pass after pass. Damaged
// copies (bit flips, truncation, zero length, missing data, data without a
// record) are quarantined by the engine as it finds them. Thread-safe.
class Scrubber {
 public:
  // `engine` must outlive the scrubber.
  Scrubber(StorageEngine& engine, ScrubberOptions options);
  // Stops.
  ~Scrubber();

  Scrubber(const Scrubber&) = delete;
  Scrubber& operator=(const Scrubber&) = delete;

  // Starts the thread (nothing when bytes_per_second is 0). Call once.
  void Start();
  // Stops the thread and joins it, within about one block's read. Idempotent.
  void Stop();

  ScrubStats stats() const;

 private:
  void Run();
  void Pass();
  // Waits until reading `bytes` more keeps within the rate; false when stopping.
  bool Pace(uint64_t bytes);

  StorageEngine& engine_;
  const ScrubberOptions options_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  ScrubStats stats_;  // guarded by mu_
  // The pacing budget: bytes allowed since pace_start_ (thread only).
  std::chrono::steady_clock::time_point pace_start_;
  uint64_t paced_bytes_ = 0;
};

}  // namespace streamgrid::storage
