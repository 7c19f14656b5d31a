#include "storage/chunk_prefetcher.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace streamgrid::storage {
namespace {

// Reads every chunk until the end or an error; returns them joined, with the
// status that ended the stream.
absl::Status Drain(ChunkPrefetcher& prefetcher, std::string& got) {
  while (true) {
    absl::StatusOr<std::span<const char>> chunk = prefetcher.Next();
    if (!chunk.ok()) return chunk.status();
    if (chunk->empty()) return absl::OkStatus();
    got.append(chunk->data(), chunk->size());
  }
}

TEST(ChunkPrefetcherTest, HandsOutEveryChunkInOrderThenTheEnd) {
  int next = 0;
  ChunkPrefetcher prefetcher(
      [&](std::string& chunk) {
        chunk = next < 100 ? std::string(1 + next % 7, static_cast<char>('a' + next % 26)) : "";
        ++next;
        return absl::OkStatus();
      },
      3);
  std::string got;
  ASSERT_TRUE(Drain(prefetcher, got).ok());
  std::string want;
  for (int i = 0; i < 100; ++i) want += std::string(1 + i % 7, static_cast<char>('a' + i % 26));
  EXPECT_EQ(got, want);
  // The end stays the end.
  auto again = prefetcher.Next();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
}

TEST(ChunkPrefetcherTest, NeverHoldsMoreThanItsBoundAhead) {
  std::atomic<int> produced = 0;
  std::atomic<int> consumed = 0;
  std::atomic<int> most_ahead = 0;
  constexpr int kBound = 4;
  ChunkPrefetcher prefetcher(
      [&](std::string& chunk) {
        // Chunks produced and not yet taken, this one included.
        const int ahead = ++produced - consumed;
        int seen = most_ahead;
        while (ahead > seen && !most_ahead.compare_exchange_weak(seen, ahead)) {
        }
        chunk = produced <= 200 ? "x" : "";
        return absl::OkStatus();
      },
      kBound);
  while (true) {
    auto chunk = prefetcher.Next();
    ASSERT_TRUE(chunk.ok());
    if (chunk->empty()) break;
    ++consumed;
  }
  EXPECT_EQ(consumed, 200);
  // Fewer than kBound waiting when a call starts, plus the one being
  // produced, plus the one the consumer holds (not yet counted as taken).
  EXPECT_LE(most_ahead, kBound + 1);
}

TEST(ChunkPrefetcherTest, TheProducersErrorComesAfterTheChunksBeforeIt) {
  int next = 0;
  ChunkPrefetcher prefetcher(
      [&](std::string& chunk) {
        if (next == 3) return absl::DataLossError("block 3 is damaged");
        chunk = std::to_string(next++);
        return absl::OkStatus();
      },
      8);
  std::string got;
  absl::Status ended = Drain(prefetcher, got);
  EXPECT_EQ(got, "012");
  EXPECT_EQ(ended.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ended.message(), "block 3 is damaged");
}

TEST(ChunkPrefetcherTest, TakeHandsOverEachChunksBufferAndReusesTheOnesGivenBack) {
  int next = 0;
  std::mutex mu;
  std::vector<const char*> produced_into;  // the buffer each chunk was produced in
  int reused = 0;                          // chunks produced into a buffer given back
  ChunkPrefetcher prefetcher(
      [&](std::string& chunk) {
        std::lock_guard lock(mu);
        if (next == 50) {
          chunk.clear();
          return absl::OkStatus();
        }
        if (chunk.capacity() >= 4096) ++reused;
        // Large enough to live on the heap, so a buffer is its data pointer.
        chunk.assign(4096, static_cast<char>('a' + next % 26));
        produced_into.push_back(chunk.data());
        ++next;
        return absl::OkStatus();
      },
      3);
  std::string chunk;
  std::vector<const char*> taken;
  std::string got;
  while (true) {
    ASSERT_TRUE(prefetcher.Take(chunk).ok());
    if (chunk.empty()) break;
    taken.push_back(chunk.data());
    got += chunk.front();
  }
  std::string want;
  for (int i = 0; i < 50; ++i) want += static_cast<char>('a' + i % 26);
  EXPECT_EQ(got, want);
  std::lock_guard lock(mu);
  // Each chunk came out in the buffer it was produced in (moved, not copied).
  EXPECT_EQ(taken, produced_into);
  // Buffers given back came to the producer again (the producer can run at
  // most 3 ahead, so from the 5th chunk on it waits for buffers given back).
  EXPECT_GT(reused, 0);
  // The end stays the end.
  ASSERT_TRUE(prefetcher.Take(chunk).ok());
  EXPECT_TRUE(chunk.empty());
}

TEST(ChunkPrefetcherTest, AConsumerThatStopsEarlyInterruptsABlockedProducer) {
  std::mutex mu;
  std::condition_variable cv;
  bool interrupted = false;
  bool blocked = false;
  int calls = 0;
  {
    ChunkPrefetcher prefetcher(
        [&](std::string& chunk) {
          std::unique_lock lock(mu);
          if (++calls == 1) {
            chunk = "first";
            return absl::OkStatus();
          }
          // Blocks like a read from a source that sends nothing more, until
          // interrupted.
          blocked = true;
          cv.notify_all();
          cv.wait(lock, [&] { return interrupted; });
          return absl::CancelledError("interrupted");
        },
        2,
        [&] {
          std::lock_guard lock(mu);
          interrupted = true;
          cv.notify_all();
        });
    auto first = prefetcher.Next();
    ASSERT_TRUE(first.ok());
    EXPECT_EQ(std::string(first->data(), first->size()), "first");
    {
      std::unique_lock lock(mu);
      ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return blocked; }));
    }
    // The destructor must return: it interrupts the blocked second call.
  }
  std::lock_guard lock(mu);
  EXPECT_TRUE(interrupted);
  EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace streamgrid::storage
