#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace streamgrid::http {

// A run of `length` bytes starting at `offset`.
struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;

  friend bool operator==(const ByteRange&, const ByteRange&) = default;
};

enum class RangeKind {
  kNone,           // Serve the whole representation (200).
  kSatisfiable,    // Serve `range` (206).
  kUnsatisfiable,  // Answer 416 with UnsatisfiedContentRange().
};

struct RangeResult {
  RangeKind kind = RangeKind::kNone;
  ByteRange range;  // Meaningful only for kSatisfiable; length is then >= 1.
};

// Interprets a Range header value (RFC 9110 §14.2) for a representation of
// `size` bytes. kNone when the header is empty, not a "bytes" range (the unit
// is case-insensitive), syntactically invalid (including last < first), or
// asks for several ranges: all are served as a full 200 response, which RFC
// 9110 allows. kUnsatisfiable when no byte of the single range is in the file
// ("bytes=0-" of an empty file, "bytes=-0"). Otherwise kSatisfiable with the
// range clipped to the file; a suffix longer than the file means all of it.
// Numbers too large for 64 bits are treated as "beyond any file", not errors.
RangeResult ParseRange(std::string_view header, uint64_t size);

// The Content-Range value for a 206 response: "bytes 0-99/1000".
// Requires range.length >= 1.
std::string ContentRange(const ByteRange& range, uint64_t size);

// The Content-Range value for a 416 response: "bytes */1000".
std::string UnsatisfiedContentRange(uint64_t size);

}  // namespace streamgrid::http
