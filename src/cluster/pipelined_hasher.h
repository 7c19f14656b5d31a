#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "grpcpp/support/slice.h"
#include "storage/sha256.h"

namespace streamgrid {

// The SHA-256 of a stream of byte slices, computed behind the stream: once
// more than `inline_bytes` were added, Add() only queues a reference to the
// slice and a thread of the hasher's own hashes it, so that the thread that
// sends the bytes does not wait for the hash. Memory stays bounded: Add()
// waits while `max_queued_bytes` or more are queued. Add() and FinishHex()
// are called from one thread at a time.
class PipelinedHasher {
 public:
  // Slices hashed on the caller's thread until `inline_bytes` were added (a
  // small file is not worth a thread); at most `max_queued_bytes` queued.
  explicit PipelinedHasher(uint64_t inline_bytes = 4 << 20, size_t max_queued_bytes = 8 << 20);
  // Stops the thread; slices still queued are dropped unhashed.
  ~PipelinedHasher();
  PipelinedHasher(const PipelinedHasher&) = delete;
  PipelinedHasher& operator=(const PipelinedHasher&) = delete;

  // Hashes `data` after everything added before, on this thread or later on
  // the hasher's (the slice is referenced, not copied). Waits while the queue
  // is full; a slice larger than the bound is queued once the queue is empty.
  void Add(grpc::Slice data);

  // Waits until everything added is hashed and returns its SHA-256 as 64
  // lower-case hex digits. Once; nothing may be added after.
  std::string FinishHex();

 private:
  void Loop();
  // Queued bytes that wake the thread (it then hashes until the queue is
  // empty).
  size_t WakeBytes() const { return max_queued_bytes_ / 2; }

  const uint64_t inline_bytes_;
  const size_t max_queued_bytes_;
  uint64_t added_ = 0;  // bytes added so far (caller's thread only)
  // Used by the caller's thread until the hasher's thread starts, then only
  // by that thread until the queue is drained in FinishHex().
  storage::Sha256 sha256_;
  std::thread thread_;  // started by the Add() that passes inline_bytes_

  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<grpc::Slice> queue_;  // guarded by mu_
  size_t queued_bytes_ = 0;        // guarded by mu_; of queue_ and the slice being hashed
  bool waiting_for_room_ = false;  // guarded by mu_: Add() waits for the thread
  bool finishing_ = false;         // guarded by mu_: FinishHex() waits for the rest
  bool stop_ = false;              // guarded by mu_
};

}  // namespace streamgrid
