#include "storage/scrubber.h"

#include "spdlog/spdlog.h"

namespace streamgrid::storage {

Scrubber::Scrubber(StorageEngine& engine, ScrubberOptions options)
    : engine_(engine), options_(options) {
  stats_.bytes_per_second = options_.bytes_per_second;
}

Scrubber::~Scrubber() { Stop(); }

void Scrubber::Start() {
  if (options_.bytes_per_second == 0 || thread_.joinable()) return;
  thread_ = std::thread([this] { Run(); });
}

void Scrubber::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

ScrubStats Scrubber::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Scrubber::Run() {
  spdlog::info("scrubber: {} bytes/s, {} ms between passes", options_.bytes_per_second,
               options_.interval.count());
  while (true) {
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
    }
    Pass();
    std::unique_lock lock(mu_);
    if (stop_) return;
    wake_.wait_for(lock, options_.interval, [this] { return stop_; });
  }
}

bool Scrubber::Pace(uint64_t bytes) {
  using Clock = std::chrono::steady_clock;
  const auto now = Clock::now();
  // A budget that fell far behind (a pause between passes, a slow disk) is
  // not saved up as a burst: start counting afresh.
  const auto allowed_at =
      pace_start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                        static_cast<double>(paced_bytes_) / options_.bytes_per_second));
  if (allowed_at + std::chrono::seconds(1) < now) {
    pace_start_ = now;
    paced_bytes_ = 0;
  }
  const auto wait_until =
      pace_start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                        static_cast<double>(paced_bytes_) / options_.bytes_per_second));
  paced_bytes_ += bytes;
  std::unique_lock lock(mu_);
  wake_.wait_until(lock, wait_until, [this] { return stop_; });
  return !stop_;
}

void Scrubber::Pass() {
  uint64_t files = 0, damaged = 0;
  auto video_ids = engine_.ScrubVideoIds();
  if (!video_ids.ok()) {
    spdlog::error("scrubber: cannot list videos: {}", video_ids.status().ToString());
    return;
  }
  for (const std::string& video_id : *video_ids) {
    auto names = engine_.ScrubNames(video_id);
    if (!names.ok()) {
      spdlog::warn("scrubber: cannot list {}: {}", video_id, names.status().ToString());
      continue;
    }
    for (const std::string& name : *names) {
      auto result = engine_.ScrubFile(video_id, name, [this](uint64_t n) { return Pace(n); });
      if (!result.ok()) {
        if (absl::IsCancelled(result.status())) return;
        // Deleted meanwhile: nothing to check.
        if (absl::IsNotFound(result.status())) continue;
        spdlog::warn("scrubber: {}/{}: {}", video_id, name, result.status().ToString());
        continue;
      }
      ++files;
      if (result->damaged) ++damaged;
      std::lock_guard lock(mu_);
      ++stats_.files_checked;
      stats_.bytes_checked += result->bytes_checked;
      if (result->damaged) ++stats_.damaged_found;
      if (stop_) return;
    }
  }
  std::lock_guard lock(mu_);
  ++stats_.passes_completed;
  stats_.last_pass_finished_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count();
  spdlog::log(damaged > 0 ? spdlog::level::warn : spdlog::level::info,
              "scrubber: pass {} done: {} files checked, {} damaged", stats_.passes_completed,
              files, damaged);
}

}  // namespace streamgrid::storage
