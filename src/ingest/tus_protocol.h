#pragma once

// The parts of the tus 1.0 resumable-upload protocol (https://tus.io) that
// are about header values, apart from HTTP and storage: parsed strictly, so a
// malformed request gets a 400 that says what is wrong.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace streamgrid::ingest {

inline constexpr std::string_view kTusVersion = "1.0.0";
inline constexpr std::string_view kTusExtensions = "creation,termination,expiration";
// Answers to a PATCH carry the new video's id in this header once the upload
// is complete and accepted (also on HEAD of a completed upload).
inline constexpr std::string_view kMediaIdHeader = "Stream-Media-Id";

// Upload-Metadata: "key base64value" pairs separated by commas; keys are
// non-empty, unique, without spaces or commas; a value may be absent (key
// alone). Returns key -> decoded value. INVALID_ARGUMENT names what is wrong.
// At most 64 pairs and 4 KiB of header.
absl::StatusOr<std::map<std::string, std::string>> ParseUploadMetadata(std::string_view header);

// A non-negative decimal integer header value (Upload-Length, Upload-Offset):
// digits only, no sign or spaces, at most 19 digits. INVALID_ARGUMENT naming
// `header_name` otherwise.
absl::StatusOr<uint64_t> ParseTusNumber(std::string_view header_name, std::string_view value);

// A new upload id: 32 lower-case hex digits of 128 random bits.
std::string NewTusUploadId();

// True for exactly what NewTusUploadId() makes; anything else never reaches a
// path.
bool IsTusUploadId(std::string_view id);

// An IMF-fixdate (RFC 9110), e.g. "Sun, 06 Nov 1994 08:49:37 GMT", for
// Upload-Expires.
std::string HttpDateFromUnixMillis(int64_t unix_millis);

}  // namespace streamgrid::ingest
