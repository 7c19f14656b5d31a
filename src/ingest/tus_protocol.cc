#include "ingest/tus_protocol.h"

#include <openssl/rand.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/strings.h"

namespace streamgrid::ingest {
namespace {

constexpr size_t kMaxMetadataBytes = 4096;
constexpr size_t kMaxMetadataPairs = 64;

bool IsBase64Char(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/';
}

// Standard base64 with padding, as the spec's clients (tus-js-client) send
// it. absl's decoder is lenient (padding optional, whitespace skipped), so
// the shape is checked here first.
bool IsStrictBase64(std::string_view text) {
  if (text.size() % 4 != 0) return false;
  size_t padding = 0;
  while (padding < 2 && padding < text.size() && text[text.size() - 1 - padding] == '=') ++padding;
  for (size_t i = 0; i + padding < text.size(); ++i) {
    if (!IsBase64Char(text[i])) return false;
  }
  return true;
}

std::string Shorten(std::string_view text) {
  return text.size() <= 40 ? std::string(text) : absl::StrCat(ToAbsl(text.substr(0, 40)), "...");
}

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> ParseUploadMetadata(std::string_view header) {
  std::map<std::string, std::string> out;
  if (header.size() > kMaxMetadataBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("Upload-Metadata is longer than ", kMaxMetadataBytes, " bytes"));
  }
  if (header.empty()) return out;
  for (absl::string_view raw : absl::StrSplit(ToAbsl(header), ',')) {
    // Clients put a space after the comma now and then; nothing else is loose.
    std::string_view pair(raw.data(), raw.size());
    while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
    if (pair.empty()) return absl::InvalidArgumentError("Upload-Metadata has an empty entry");
    const size_t space = pair.find(' ');
    std::string_view key = pair.substr(0, space);
    std::string_view value = space == std::string_view::npos ? "" : pair.substr(space + 1);
    for (char c : key) {
      if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
        return absl::InvalidArgumentError(
            absl::StrCat("Upload-Metadata key '", Shorten(key), "' has a character not allowed"));
      }
    }
    if (!IsStrictBase64(value)) {
      return absl::InvalidArgumentError(absl::StrCat("Upload-Metadata value of '", Shorten(key),
                                                     "' is not base64 (with padding)"));
    }
    std::string decoded;
    if (!absl::Base64Unescape(ToAbsl(value), &decoded)) {
      return absl::InvalidArgumentError(
          absl::StrCat("Upload-Metadata value of '", Shorten(key), "' is not base64"));
    }
    if (!out.emplace(std::string(key), std::move(decoded)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("Upload-Metadata has key '", Shorten(key), "' twice"));
    }
    if (out.size() > kMaxMetadataPairs) {
      return absl::InvalidArgumentError(
          absl::StrCat("Upload-Metadata has more than ", kMaxMetadataPairs, " entries"));
    }
  }
  return out;
}

absl::StatusOr<uint64_t> ParseTusNumber(std::string_view header_name, std::string_view value) {
  if (value.empty() || value.size() > 19) {
    return absl::InvalidArgumentError(absl::StrCat(
        ToAbsl(header_name), " must be a non-negative integer, got '", Shorten(value), "'"));
  }
  uint64_t n = 0;
  for (char c : value) {
    if (c < '0' || c > '9') {
      return absl::InvalidArgumentError(absl::StrCat(
          ToAbsl(header_name), " must be a non-negative integer, got '", Shorten(value), "'"));
    }
    n = n * 10 + static_cast<uint64_t>(c - '0');  // 19 digits cannot overflow
  }
  return n;
}

std::string NewTusUploadId() {
  std::array<unsigned char, 16> bytes;
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    // Guessable ids would let anyone write into others' uploads.
    std::fputs("streamgrid: RAND_bytes failed; cannot generate upload ids\n", stderr);
    std::abort();
  }
  constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  id.reserve(32);
  for (unsigned char b : bytes) {
    id.push_back(kHex[b >> 4]);
    id.push_back(kHex[b & 15]);
  }
  return id;
}

bool IsTusUploadId(std::string_view id) {
  if (id.size() != 32) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string HttpDateFromUnixMillis(int64_t unix_millis) {
  std::time_t seconds = static_cast<std::time_t>(unix_millis / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buffer[64];
  size_t n = std::strftime(buffer, sizeof(buffer), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buffer, n);
}

}  // namespace streamgrid::ingest
