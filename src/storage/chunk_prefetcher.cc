#include "storage/chunk_prefetcher.h"

#include <algorithm>
#include <utility>

namespace streamgrid::storage {

ChunkPrefetcher::ChunkPrefetcher(Produce produce, size_t max_chunks,
                                 std::function<void()> interrupt)
    : produce_(std::move(produce)),
      max_chunks_(std::max<size_t>(1, max_chunks)),
      interrupt_(std::move(interrupt)) {
  thread_ = std::thread([this] { Run(); });
}

ChunkPrefetcher::~ChunkPrefetcher() {
  bool running;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    running = !ended_;
  }
  changed_.notify_all();
  // A producer blocked in its read would otherwise hold the join until its
  // own deadline.
  if (running && interrupt_) interrupt_();
  thread_.join();
}

void ChunkPrefetcher::Run() {
  while (true) {
    std::string chunk;
    {
      std::unique_lock lock(mu_);
      changed_.wait(lock, [&] { return stop_ || ready_.size() < max_chunks_; });
      if (stop_) break;
      if (!spare_.empty()) {
        chunk = std::move(spare_.back());
        spare_.pop_back();
      }
    }
    // Outside the lock: this is the slow part (a disk read, a network read).
    absl::Status produced = produce_(chunk);
    const bool end = !produced.ok() || chunk.empty();
    {
      std::lock_guard lock(mu_);
      if (!produced.ok()) error_ = std::move(produced);
      if (!end) ready_.push_back(std::move(chunk));
      if (end) ended_ = true;
    }
    changed_.notify_all();
    if (end) return;
  }
  std::lock_guard lock(mu_);
  ended_ = true;
}

absl::Status ChunkPrefetcher::TakeLocked(std::unique_lock<std::mutex>& lock, std::string& chunk) {
  // The buffer given back is free again; keeping a few avoids an allocation
  // per chunk.
  if (chunk.capacity() > 0 && spare_.size() < max_chunks_) spare_.push_back(std::move(chunk));
  chunk.clear();
  changed_.wait(lock, [&] { return !ready_.empty() || ended_; });
  if (ready_.empty()) return error_;
  chunk = std::move(ready_.front());
  ready_.pop_front();
  lock.unlock();
  changed_.notify_all();  // the producer may wait for room
  return absl::OkStatus();
}

absl::StatusOr<std::span<const char>> ChunkPrefetcher::Next() {
  std::unique_lock lock(mu_);
  if (absl::Status s = TakeLocked(lock, current_); !s.ok()) return s;
  return std::span<const char>(current_.data(), current_.size());
}

absl::Status ChunkPrefetcher::Take(std::string& chunk) {
  std::unique_lock lock(mu_);
  return TakeLocked(lock, chunk);
}

}  // namespace streamgrid::storage
