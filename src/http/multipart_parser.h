#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace streamgrid::http {

// What a multipart/form-data part says about itself.
struct MultipartPartHeaders {
  std::string name;                     // Content-Disposition name; required.
  std::optional<std::string> filename;  // Content-Disposition filename, unescaped; may be "".
  std::string content_type;             // Defaults to "text/plain" (RFC 7578 §4.4).
};

// Streaming multipart/form-data parser (RFC 7578, RFC 2046 §5.1). Input is fed
// in chunks of any size; part data is passed on as it arrives, so memory stays
// bounded regardless of body size: the parser only holds back bytes that may
// start a boundary delimiter, plus at most one part's header block.
//
// Accepts a preamble before the first boundary, transport padding (spaces and
// tabs) after each boundary, and an epilogue after the closing boundary, which
// is ignored. Folded header lines, header blocks over Limits::max_header_bytes,
// parts without a form-data Content-Disposition carrying a name, more than
// Limits::max_parts parts, and a boundary followed by anything but "--" or
// padding and CRLF are errors.
class MultipartParser {
 public:
  // Null callbacks are skipped. A callback's non-OK status stops the parser
  // and is returned by Feed() as is.
  struct Callbacks {
    std::function<absl::Status(const MultipartPartHeaders&)> on_part_begin;
    // Called zero or more times per part with consecutive pieces of its body.
    std::function<absl::Status(std::string_view data)> on_part_data;
    // Called once the delimiter ending the part has been fully validated.
    std::function<absl::Status()> on_part_end;
  };
  struct Limits {
    size_t max_header_bytes = 16 * 1024;  // Per part, including CRLFs.
    int max_parts = 64;
  };

  // `boundary` is the Content-Type boundary parameter, e.g. from
  // MultipartBoundary(); if it is not 1 to 70 characters, every call fails.
  MultipartParser(std::string boundary, Callbacks callbacks);
  MultipartParser(std::string boundary, Callbacks callbacks, Limits limits);

  MultipartParser(const MultipartParser&) = delete;
  MultipartParser& operator=(const MultipartParser&) = delete;

  // Parses the next piece of the body. Returns INVALID_ARGUMENT with a message
  // on malformed input, or a callback's error; after any error, every later
  // call returns that same status. Data after the closing boundary is ignored.
  absl::Status Feed(std::string_view chunk);

  // Call after the last Feed(). INVALID_ARGUMENT ("multipart body ended before
  // the closing boundary") unless the closing boundary was seen; an earlier
  // error is returned again.
  absl::Status Finish();

  // True once the closing boundary has been seen.
  bool done() const { return state_ == State::kEpilogue; }

  // Bytes currently held back between Feed() calls; bounded by the delimiter
  // length plus max_header_bytes whatever the body size.
  size_t buffered_bytes() const { return buffer_.size(); }

 private:
  enum class State {
    kPreamble,        // Skipping bytes until the first delimiter.
    kAfterDelimiter,  // Deciding between "--" (close) and padding + CRLF.
    kPadding,         // Skipping spaces/tabs before the CRLF ending the delimiter line.
    kHeaders,         // Reading a part's header lines.
    kBody,            // Passing on part data until the next delimiter.
    kEpilogue,        // After the closing delimiter; everything is ignored.
  };

  // Consumes as much of `data` as possible; returns how many bytes were used.
  // The rest is an incomplete token that needs more input.
  absl::StatusOr<size_t> Process(std::string_view data);
  // One step of Process(); returns 0 only if `data` is an incomplete token.
  absl::StatusOr<size_t> Step(std::string_view data);
  absl::StatusOr<size_t> StepSearch(std::string_view data);
  absl::StatusOr<size_t> StepPadding(std::string_view data);
  absl::StatusOr<size_t> StepHeaders(std::string_view data);
  absl::Status HeaderLine(std::string_view line);
  absl::Status BeginPart();
  absl::Status EndPart();
  absl::Status Fail(absl::Status status);

  std::string delimiter_;  // CRLF "--" boundary.
  Callbacks callbacks_;
  Limits limits_;
  State state_ = State::kPreamble;
  absl::Status status_;  // First error; sticky.
  std::string buffer_;   // Unconsumed input carried over to the next Feed().
  bool in_part_ = false;
  int parts_ = 0;
  size_t header_bytes_ = 0;
  std::optional<std::string> disposition_;
  std::optional<std::string> content_type_;
};

// The boundary parameter of a Content-Type value such as
// `multipart/form-data; boundary="abc"` (quoted or not; type and parameter
// names case-insensitive). INVALID_ARGUMENT if the type is not
// multipart/form-data or the boundary is missing, repeated, or not 1 to 70
// RFC 2046 boundary characters.
absl::StatusOr<std::string> MultipartBoundary(std::string_view content_type);

}  // namespace streamgrid::http
