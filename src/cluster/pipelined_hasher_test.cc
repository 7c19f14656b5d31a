#include "cluster/pipelined_hasher.h"

#include <atomic>
#include <cstring>
#include <random>
#include <string>

#include "gtest/gtest.h"
#include "storage/sha256.h"

namespace streamgrid {
namespace {

// Slices whose buffers count themselves, so a test can see how many the
// hasher still holds.
std::atomic<int> live_slices{0};

grpc::Slice CountedSlice(std::string_view bytes) {
  char* buffer = new char[bytes.size()];
  std::memcpy(buffer, bytes.data(), bytes.size());
  ++live_slices;
  return grpc::Slice(buffer, bytes.size(), [](void* p) {
    delete[] static_cast<char*>(p);
    --live_slices;
  });
}

std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 random(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  return bytes;
}

TEST(PipelinedHasherTest, HashesLikeOneSha256AcrossTheInlinePartAndTheQueue) {
  const std::string data = RandomBytes(300'000, 1);
  // Ragged slices: some hashed inline (the first 10,000 bytes), the rest
  // queued against a bound smaller than some of them.
  std::mt19937 random(2);
  PipelinedHasher hasher(/*inline_bytes=*/10'000, /*max_queued_bytes=*/4'096);
  for (size_t offset = 0; offset < data.size();) {
    const size_t take = std::min<size_t>(data.size() - offset, 1 + random() % 6'000);
    hasher.Add(grpc::Slice(data.data() + offset, take));
    offset += take;
  }
  EXPECT_EQ(hasher.FinishHex(), storage::Sha256::HexOf(data));
}

TEST(PipelinedHasherTest, ASmallStreamIsHashedInline) {
  const std::string data = RandomBytes(5'000, 3);
  PipelinedHasher hasher(/*inline_bytes=*/1 << 20);
  hasher.Add(grpc::Slice(data.data(), 2'000));
  hasher.Add(grpc::Slice());  // empty: nothing to hash
  hasher.Add(grpc::Slice(data.data() + 2'000, 3'000));
  EXPECT_EQ(hasher.FinishHex(), storage::Sha256::HexOf(data));
}

TEST(PipelinedHasherTest, NothingAddedIsTheDigestOfNothing) {
  PipelinedHasher hasher;
  EXPECT_EQ(hasher.FinishHex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(PipelinedHasherTest, HoldsAtMostTheBoundOfSlices) {
  const std::string data = RandomBytes(1'000 * 200, 4);
  {
    // Nothing inline; room for four 1,000-byte slices, the one being hashed
    // included.
    PipelinedHasher hasher(/*inline_bytes=*/0, /*max_queued_bytes=*/4'000);
    for (size_t offset = 0; offset < data.size(); offset += 1'000) {
      hasher.Add(CountedSlice(std::string_view(data).substr(offset, 1'000)));
      // The test holds none: every live slice is the hasher's.
      EXPECT_LE(live_slices.load(), 4);
    }
    // A slice larger than the whole bound still goes through.
    const std::string big = RandomBytes(10'000, 5);
    hasher.Add(CountedSlice(big));
    EXPECT_EQ(hasher.FinishHex(), storage::Sha256::HexOf(data + big));
    EXPECT_EQ(live_slices.load(), 0);
  }
  EXPECT_EQ(live_slices.load(), 0);
}

TEST(PipelinedHasherTest, DestroyedUnfinishedItDropsWhatIsQueued) {
  const std::string data = RandomBytes(64'000, 6);
  {
    PipelinedHasher hasher(/*inline_bytes=*/0, /*max_queued_bytes=*/32'000);
    for (size_t offset = 0; offset < data.size(); offset += 8'000) {
      hasher.Add(CountedSlice(std::string_view(data).substr(offset, 8'000)));
    }
  }
  // The thread was joined and every slice released, hashed or not.
  EXPECT_EQ(live_slices.load(), 0);
}

}  // namespace
}  // namespace streamgrid
