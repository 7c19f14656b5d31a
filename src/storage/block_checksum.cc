#include "storage/block_checksum.h"

#include <xxhash.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/escaping.h"

namespace streamgrid::storage {

std::string_view BlockAlgorithmName(BlockAlgorithm algorithm) {
  return algorithm == BlockAlgorithm::kSha256 ? "sha256" : "xxh3-128";
}

std::optional<BlockAlgorithm> ParseBlockAlgorithm(std::string_view name) {
  if (name == "sha256") return BlockAlgorithm::kSha256;
  if (name == "xxh3-128") return BlockAlgorithm::kXxh3_128;
  return std::nullopt;
}

std::string BlockDigestHex(BlockAlgorithm algorithm, const BlockDigest& digest) {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest.data()), DigestBytes(algorithm)));
}

BlockHasher::BlockHasher(BlockAlgorithm algorithm) : algorithm_(algorithm) {
  if (algorithm_ == BlockAlgorithm::kSha256) {
    sha256_.emplace();
    return;
  }
  xxh3_ = XXH3_createState();
  // Allocation failure is fatal, as it is for the SHA-256 context.
  if (xxh3_ == nullptr || XXH3_128bits_reset(xxh3_) != XXH_OK) std::abort();
}

BlockHasher::~BlockHasher() {
  if (xxh3_ != nullptr) XXH3_freeState(xxh3_);
}

void BlockHasher::Update(std::span<const char> data) {
  if (sha256_) {
    sha256_->Update(data);
  } else {
    XXH3_128bits_update(xxh3_, data.data(), data.size());
  }
}

BlockDigest BlockHasher::Finish() {
  if (sha256_) {
    BlockDigest digest = sha256_->Finish();
    sha256_->Reset();
    return digest;
  }
  // The canonical (big-endian) form, so that digests compare and print the
  // same on every machine.
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(xxh3_));
  static_assert(sizeof(canonical.digest) == DigestBytes(BlockAlgorithm::kXxh3_128));
  BlockDigest digest{};
  std::memcpy(digest.data(), canonical.digest, sizeof(canonical.digest));
  XXH3_128bits_reset(xxh3_);
  return digest;
}

BlockDigest BlockHasher::Of(BlockAlgorithm algorithm, std::span<const char> data) {
  if (algorithm == BlockAlgorithm::kSha256) {
    Sha256 hasher;
    hasher.Update(data);
    return hasher.Finish();
  }
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits(data.data(), data.size()));
  BlockDigest digest{};
  std::memcpy(digest.data(), canonical.digest, sizeof(canonical.digest));
  return digest;
}

}  // namespace streamgrid::storage
