#pragma once

#include <openssl/types.h>

#include <array>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace streamgrid::storage {

// Incremental SHA-256 (OpenSSL EVP). Not thread-safe; one per stream.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  // Feeds more bytes. Must not be called after FinishHex().
  // Strings and string_views convert implicitly.
  void Update(std::span<const char> data);
  // A literal would be hashed with its terminating NUL; pass a string_view.
  template <size_t N>
  void Update(const char (&)[N]) = delete;

  // A SHA-256 digest in raw bytes.
  using Digest = std::array<unsigned char, 32>;

  // The digest of everything fed so far, raw or as 64 lower-case hex digits.
  // Call one of them once; after that only Reset() may follow.
  Digest Finish();
  std::string FinishHex();

  // Forgets what was fed and starts a new message (at any time), reusing the
  // context: hashing many short strings this way allocates nothing per string.
  void Reset();

  // The digest of `data` in one call.
  static std::string HexOf(std::string_view data);

  // `digest` as 64 lower-case hex digits.
  static std::string Hex(const Digest& digest);

 private:
  EVP_MD_CTX* ctx_;
};

// `text` as a canonical checksum (64 lower-case hex digits) if it is 64 hex
// digits of either case, else nullopt.
std::optional<std::string> NormalizeSha256Hex(std::string_view text);

}  // namespace streamgrid::storage
