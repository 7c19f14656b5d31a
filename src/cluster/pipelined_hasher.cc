#include "cluster/pipelined_hasher.h"

#include <span>
#include <utility>

namespace streamgrid {
namespace {

std::span<const char> BytesOf(const grpc::Slice& slice) {
  return {reinterpret_cast<const char*>(slice.begin()), slice.size()};
}

}  // namespace

PipelinedHasher::PipelinedHasher(uint64_t inline_bytes, size_t max_queued_bytes)
    : inline_bytes_(inline_bytes), max_queued_bytes_(max_queued_bytes) {}

PipelinedHasher::~PipelinedHasher() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    queue_.clear();
  }
  changed_.notify_all();
  thread_.join();
}

void PipelinedHasher::Add(grpc::Slice data) {
  const size_t size = data.size();
  if (size == 0) return;
  added_ += size;
  if (!thread_.joinable()) {
    if (added_ <= inline_bytes_) {
      sha256_.Update(BytesOf(data));
      return;
    }
    // From here on sha256_ belongs to the thread, which starts after every
    // inline Update (thread creation orders them).
    thread_ = std::thread([this] { Loop(); });
  }
  std::unique_lock lock(mu_);
  auto room = [&] { return queued_bytes_ == 0 || queued_bytes_ + size <= max_queued_bytes_; };
  if (!room()) {
    // The thread may be asleep below its wake-up mark (a large slice).
    waiting_for_room_ = true;
    changed_.notify_all();
    changed_.wait(lock, room);
    waiting_for_room_ = false;
  }
  queue_.push_back(std::move(data));
  queued_bytes_ += size;
  // The thread is woken once half the bound is queued, not per slice: each
  // wake-up of another core costs an interrupt (on this VM, a costly one).
  if (queued_bytes_ >= WakeBytes()) changed_.notify_all();
}

std::string PipelinedHasher::FinishHex() {
  if (thread_.joinable()) {
    {
      std::unique_lock lock(mu_);
      finishing_ = true;
      changed_.notify_all();
      changed_.wait(lock, [&] { return queued_bytes_ == 0; });
      stop_ = true;
    }
    changed_.notify_all();
    // The join orders the thread's last Update before the Finish below.
    thread_.join();
  }
  return sha256_.FinishHex();
}

void PipelinedHasher::Loop() {
  std::unique_lock lock(mu_);
  bool draining = false;  // woken: hash until the queue is empty
  while (true) {
    changed_.wait(lock, [&] {
      return stop_ || (!queue_.empty() && (draining || finishing_ || waiting_for_room_ ||
                                           queued_bytes_ >= WakeBytes()));
    });
    if (stop_) return;
    draining = true;
    grpc::Slice slice = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    sha256_.Update(BytesOf(slice));
    const size_t size = slice.size();
    // The bytes are released before the room is, so the bound holds for the
    // memory as well as for the count.
    slice = grpc::Slice();
    lock.lock();
    queued_bytes_ -= size;
    if (queue_.empty()) draining = false;
    changed_.notify_all();
  }
}

}  // namespace streamgrid
