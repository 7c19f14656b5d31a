#include "auth/token.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "absl/cleanup/cleanup.h"
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
  auto fail = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("token file ", path, ": ", why));
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(std::strerror(errno));
  absl::Cleanup close_fd = [fd] { ::close(fd); };
  // Checked on the descriptor read, so the mode judged is the mode of the
  // file whose contents are used.
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) return fail("not a regular file");
  // A secret every local user can read protects nothing.
  if ((info.st_mode & S_IRWXO) != 0) {
    return fail(absl::StrCat("it is accessible to every user; chmod 600 ", path));
  }
  std::string token(kMaxTokenFileBytes + 1, '\0');
  size_t got = 0;
  while (got < token.size()) {
    const ssize_t n = ::read(fd, token.data() + got, token.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(std::strerror(errno));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  token.resize(got);
  if (token.size() > kMaxTokenFileBytes) {
    return fail(absl::StrCat("it is larger than ", kMaxTokenFileBytes, " bytes"));
  }
  // Editors and `echo` end a file with a newline; only one is stripped, so a
  // token never silently loses other characters.
  if (!token.empty() && token.back() == '\n') token.pop_back();
  if (!token.empty() && token.back() == '\r') token.pop_back();
  if (token.empty()) return fail("it is empty; put a random token in it");
  for (char c : token) {
    if (c < 0x20 || c > 0x7e) {
      return fail("it holds characters other than printable ASCII (one line, e.g. base64 or hex)");
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
