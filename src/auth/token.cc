#include "auth/token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"

namespace streamgrid::auth {
namespace {

// A token is a password, not a document: anything larger is a wrong path.
constexpr size_t kMaxTokenFileBytes = 4096;

using Digest = std::array<unsigned char, 32>;

// SHA-256 of `data`. Comparing digests of equal length hides the token's
// length too, which a length check followed by memcmp would reveal.
Digest Sha256Of(std::string_view data) {
  Digest digest{};
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), digest.data(), &size, EVP_sha256(), nullptr);
  return digest;
}

}  // namespace

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read token file ", path, ": ", std::strerror(errno)));
  }
  std::string token;
  token.resize(kMaxTokenFileBytes + 1);
  in.read(token.data(), static_cast<std::streamsize>(token.size()));
  if (in.bad()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read token file ", path));
  }
  token.resize(static_cast<size_t>(in.gcount()));
  // A secret every local user can read protects nothing (the same rule as
  // --api-token-file's).
  struct stat info {};
  if (stat(path.c_str(), &info) == 0 && (info.st_mode & S_IRWXO) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("token file ", path, " is accessible to every user: chmod 600 ", path));
  }
  if (token.size() > kMaxTokenFileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("token file ", path, " is larger than ", kMaxTokenFileBytes, " bytes"));
  }
  // Editors and `echo` end a file with a newline; only one is stripped, so a
  // token never silently loses other characters.
  if (!token.empty() && token.back() == '\n') token.pop_back();
  if (!token.empty() && token.back() == '\r') token.pop_back();
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("token file ", path, " is empty"));
  }
  for (char c : token) {
    if (c < 0x20 || c > 0x7e) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token file ", path,
          " holds characters other than printable ASCII (one line, e.g. base64 or hex)"));
    }
  }
  return token;
}

bool TokensEqual(std::string_view a, std::string_view b) {
  const Digest da = Sha256Of(a);
  const Digest db = Sha256Of(b);
  return CRYPTO_memcmp(da.data(), db.data(), da.size()) == 0;
}

std::string BearerValue(std::string_view token) {
  std::string value(kBearerPrefix);
  value.append(token);
  return value;
}

}  // namespace streamgrid::auth
