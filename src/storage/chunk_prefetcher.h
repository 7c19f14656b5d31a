#pragma once

// Producing chunks of a stream on a thread of its own, a bounded number ahead
// of the consumer. A node copying a file is a pipeline of two sides that each
// wait on I/O: the source reads (and verifies) from its disk and sends, the
// destination receives, hashes and writes. Done one chunk after the other on
// one thread, each side waits for the other's I/O; with a prefetcher, the
// next chunks are read (or received) while the current one is sent (or
// stored).

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace streamgrid::storage {

class ChunkPrefetcher {
 public:
  // Sets `chunk` to the next bytes of the stream (it comes holding an earlier
  // chunk's buffer, for reuse); an empty chunk is the end; an error ends the
  // stream too. Called on the prefetcher's thread only, one call at a time.
  using Produce = std::function<absl::Status(std::string& chunk)>;

  // Starts calling `produce` at once, holding at most `max_chunks` (at least
  // 1) unconsumed chunks. `interrupt`, when given, must make a `produce` call
  // that is blocked return soon (e.g. cancel the call it reads); it is called,
  // from the destructor's thread, when the consumer stops early.
  ChunkPrefetcher(Produce produce, size_t max_chunks, std::function<void()> interrupt = {});

  // Stops producing (interrupting a blocked `produce`) and joins the thread.
  ~ChunkPrefetcher();

  ChunkPrefetcher(const ChunkPrefetcher&) = delete;
  ChunkPrefetcher& operator=(const ChunkPrefetcher&) = delete;

  // The next chunk, in order, valid until the next call; empty at the end;
  // the producer's error once the chunks before it were taken.
  absl::StatusOr<std::span<const char>> Next();

  // Next() without a copy: the next chunk's buffer is swapped into `chunk`,
  // whose old buffer is kept for the producer to reuse. `chunk` is empty at
  // the end; the producer's error as for Next().
  absl::Status Take(std::string& chunk);

 private:
  // Waits for the next chunk and moves it out; the end leaves `chunk` empty.
  // Caller holds `lock` (on mu_).
  absl::Status TakeLocked(std::unique_lock<std::mutex>& lock, std::string& chunk);

  void Run();

  const Produce produce_;
  const size_t max_chunks_;
  const std::function<void()> interrupt_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<std::string> ready_;   // produced, not yet taken; guarded by mu_
  std::vector<std::string> spare_;  // buffers to reuse; guarded by mu_
  bool ended_ = false;              // the producer is done; guarded by mu_
  absl::Status error_;              // why it ended early; guarded by mu_
  bool stop_ = false;               // the consumer went away; guarded by mu_
  std::string current_;             // the chunk Next() returned last (consumer only)
  std::thread thread_;
};

}  // namespace streamgrid::storage
