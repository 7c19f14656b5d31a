#include "storage/sha256.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <array>
#include <cstdio>
#include <cstdlib>

namespace streamgrid::storage {
namespace {

// A hashing failure means OpenSSL itself is broken (allocation or provider
// loading); there is no sensible way to carry on storing checksums.
[[noreturn]] void DieOpenSsl(const char* what) {
  std::fprintf(stderr, "fatal: %s failed: %s\n", what, ERR_error_string(ERR_get_error(), nullptr));
  std::abort();
}

// Fetched once: an explicit fetch spares each init the implicit provider
// lookup that EVP_sha256() costs in OpenSSL 3. Deliberately never freed.
const EVP_MD* Algorithm() {
  static const EVP_MD* md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (fetched == nullptr) DieOpenSsl("EVP_MD_fetch(SHA256)");
    return fetched;
  }();
  return md;
}

}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr) DieOpenSsl("EVP_MD_CTX_new");
  if (EVP_DigestInit_ex2(ctx_, Algorithm(), nullptr) != 1) DieOpenSsl("EVP_DigestInit_ex2");
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::Update(std::span<const char> data) {
  if (data.empty()) return;
  if (EVP_DigestUpdate(ctx_, data.data(), data.size()) != 1) DieOpenSsl("EVP_DigestUpdate");
}

Sha256::Digest Sha256::Finish() {
  Digest digest;
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx_, digest.data(), &length) != 1) DieOpenSsl("EVP_DigestFinal_ex");
  if (length != digest.size()) DieOpenSsl("EVP_DigestFinal_ex (digest length)");
  return digest;
}

std::string Sha256::FinishHex() { return Hex(Finish()); }

std::string Sha256::Hex(const Digest& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * digest.size());
  for (unsigned char byte : digest) {
    hex.push_back(kHex[byte >> 4]);
    hex.push_back(kHex[byte & 0xf]);
  }
  return hex;
}

void Sha256::Reset() {
  // Re-initializing with the same algorithm keeps the context's allocations.
  if (EVP_DigestInit_ex2(ctx_, Algorithm(), nullptr) != 1) DieOpenSsl("EVP_DigestInit_ex2");
}

std::string Sha256::HexOf(std::string_view data) {
  Sha256 hasher;
  hasher.Update(data);
  return hasher.FinishHex();
}

std::optional<std::string> NormalizeSha256Hex(std::string_view text) {
  if (text.size() != 64) return std::nullopt;
  std::string hex(text);
  for (char& c : hex) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return std::nullopt;
  }
  return hex;
}

}  // namespace streamgrid::storage
