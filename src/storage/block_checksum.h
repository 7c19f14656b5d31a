#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "storage/sha256.h"

struct XXH3_state_s;

namespace streamgrid::storage {

// The checksum of each kChecksumBlockBytes block of a stored file. It guards
// against bit rot and torn or damaged copies; a file's identity is its
// whole-file SHA-256, which stays. The algorithm travels with the file (its
// checksum record, Put and Get): files stored before XXH3-128 keep SHA-256
// blocks and verify as before.
enum class BlockAlgorithm {
  kSha256 = 0,   // 32-byte digests; the only algorithm of records before v3
  kXxh3_128 = 1  // 16-byte digests (canonical, big-endian); new files
};

// A block digest: the algorithm's DigestBytes() leading bytes, the rest zero.
// Same type as Sha256::Digest, so SHA-256 block digests are stored unchanged.
using BlockDigest = Sha256::Digest;

// The algorithm new files get.
inline constexpr BlockAlgorithm kDefaultBlockAlgorithm = BlockAlgorithm::kXxh3_128;

// The number of meaningful bytes in a digest of `algorithm`.
constexpr size_t DigestBytes(BlockAlgorithm algorithm) {
  return algorithm == BlockAlgorithm::kSha256 ? 32 : 16;
}

// The algorithm's name in checksum records and messages: "sha256", "xxh3-128".
std::string_view BlockAlgorithmName(BlockAlgorithm algorithm);
// The algorithm named `name` (see BlockAlgorithmName), nullopt if unknown.
std::optional<BlockAlgorithm> ParseBlockAlgorithm(std::string_view name);

// The meaningful bytes of `digest` as lower-case hex.
std::string BlockDigestHex(BlockAlgorithm algorithm, const BlockDigest& digest);

// Incremental hashing of one block with either algorithm. Not thread-safe;
// one per stream of blocks.
class BlockHasher {
 public:
  explicit BlockHasher(BlockAlgorithm algorithm);
  ~BlockHasher();
  BlockHasher(const BlockHasher&) = delete;
  BlockHasher& operator=(const BlockHasher&) = delete;

  BlockAlgorithm algorithm() const { return algorithm_; }

  // Feeds more bytes of the current block.
  void Update(std::span<const char> data);
  // The digest of the current block; then starts the next one (no Reset()
  // needed between blocks).
  BlockDigest Finish();

  // The digest of `data` in one call.
  static BlockDigest Of(BlockAlgorithm algorithm, std::span<const char> data);

 private:
  const BlockAlgorithm algorithm_;
  std::optional<Sha256> sha256_;  // with kSha256
  XXH3_state_s* xxh3_ = nullptr;  // with kXxh3_128
};

}  // namespace streamgrid::storage
