#pragma once

// Shared secrets ("tokens") that admin and cluster gRPC calls carry, read from
// files and compared in constant time.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace streamgrid::auth {

// The gRPC metadata key a token travels in, and the scheme before it:
// "authorization: Bearer <token>".
inline constexpr std::string_view kAuthorizationKey = "authorization";
inline constexpr std::string_view kBearerPrefix = "Bearer ";

// The token stored in the file at `path`: its contents, with one trailing
// newline ("\n" or "\r\n") removed. INVALID_ARGUMENT, naming the path and the
// reason, if the file cannot be read, is not a regular file, is accessible to
// every user (mode o+rwx bits), is empty, is larger than 4 KiB, or holds characters other than
// printable ASCII (a metadata value cannot carry them).
// The token itself never appears in an error.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// Whether `a` and `b` are equal, in time that depends only on their lengths
// (both are hashed, then the digests compared with CRYPTO_memcmp), so a caller
// cannot find a token byte by byte from timings.
bool TokensEqual(std::string_view a, std::string_view b);

// "Bearer <token>".
std::string BearerValue(std::string_view token);

}  // namespace streamgrid::auth
