// libFuzzer target: the streaming multipart/form-data parser and the
// Content-Type boundary parameter.
//
// Input layout: a Content-Type value up to the first '\n'; then one byte N
// (taken modulo 16) and N bytes of chunk sizes; then the body. The body is
// parsed twice, once in a single Feed() and once split into chunks of the
// sizes given (each byte + 1, cycled), and both runs must agree: same parts,
// same headers, same concatenated data, same status. A Content-Type that
// MultipartBoundary() rejects is used as the boundary itself when it is 1 to
// 70 bytes, so the parser also sees boundaries the server would never pass it.
// A part named "reject" is refused by its on_part_begin callback.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "fuzz_check.h"
#include "http/multipart_parser.h"

namespace streamgrid::fuzz {
namespace {

using http::MultipartParser;
using http::MultipartPartHeaders;

constexpr MultipartParser::Limits kLimits{.max_header_bytes = 512, .max_parts = 8};

struct Part {
  MultipartPartHeaders headers;
  std::string data;
  bool ended = false;
};

struct Run {
  std::vector<Part> parts;
  absl::Status status;  // The first non-OK Feed() or Finish(), else OK.
  bool done = false;
};

std::string Escaped(std::string_view s) {
  return absl::CEscape(absl::string_view(s.data(), s.size()));
}

// Parses `body` in chunks of the given sizes (the whole body at once when
// `sizes` is empty), checking the parser's own invariants on the way.
Run Parse(const std::string& boundary, std::string_view body, std::string_view sizes) {
  Run run;
  const std::string delimiter = absl::StrCat("\r\n--", boundary);
  MultipartParser::Callbacks callbacks;
  callbacks.on_part_begin = [&](const MultipartPartHeaders& headers) {
    FUZZ_CHECK(run.parts.empty() || run.parts.back().ended, "part began inside another");
    for (const std::string* text : {&headers.name, &headers.content_type}) {
      FUZZ_CHECK(text->find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos,
                 Escaped(*text));
    }
    if (headers.filename) {
      FUZZ_CHECK(
          headers.filename->find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos,
          Escaped(*headers.filename));
    }
    run.parts.push_back(Part{.headers = headers});
    // As the upload route does with an unexpected field: the callback's error
    // must stop the parser and come back from Feed() as is.
    if (headers.name == "reject") return absl::FailedPreconditionError("rejected part");
    return absl::OkStatus();
  };
  callbacks.on_part_data = [&](std::string_view data) {
    FUZZ_CHECK(!data.empty(), "empty data callback");
    FUZZ_CHECK(!run.parts.empty() && !run.parts.back().ended, "data outside a part");
    run.parts.back().data.append(data);
    return absl::OkStatus();
  };
  callbacks.on_part_end = [&] {
    FUZZ_CHECK(!run.parts.empty() && !run.parts.back().ended, "end outside a part");
    run.parts.back().ended = true;
    return absl::OkStatus();
  };
  MultipartParser parser(boundary, std::move(callbacks), kLimits);

  size_t next_size = 0;
  while (!body.empty()) {
    size_t take = body.size();
    if (!sizes.empty()) {
      take = std::min<size_t>(take, static_cast<uint8_t>(sizes[next_size]) + 1);
      next_size = (next_size + 1) % sizes.size();
    }
    absl::Status status = parser.Feed(body.substr(0, take));
    body.remove_prefix(take);
    FUZZ_CHECK(parser.buffered_bytes() <= delimiter.size() + kLimits.max_header_bytes,
               absl::StrCat(parser.buffered_bytes(), " bytes buffered"));
    if (!status.ok()) {
      FUZZ_CHECK(parser.Feed("x") == status, "error not sticky");
      FUZZ_CHECK(parser.Finish() == status, "error not sticky in Finish");
      run.status = status;
      return run;
    }
  }
  run.status = parser.Finish();
  run.done = parser.done();
  FUZZ_CHECK(run.status.ok() == run.done, run.status.ToString());
  if (run.done) {
    for (const Part& part : run.parts) FUZZ_CHECK(part.ended, "closed body with an open part");
  }
  for (const Part& part : run.parts) {
    // A part's data ends at the first delimiter, so it never holds one.
    FUZZ_CHECK(part.data.find(delimiter) == std::string::npos, Escaped(part.data));
  }
  FUZZ_CHECK(static_cast<int>(run.parts.size()) <= kLimits.max_parts);
  return run;
}

bool SameHeaders(const MultipartPartHeaders& a, const MultipartPartHeaders& b) {
  return a.name == b.name && a.filename == b.filename && a.content_type == b.content_type;
}

}  // namespace
}  // namespace streamgrid::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace streamgrid::fuzz;
  std::string_view input(reinterpret_cast<const char*>(bytes), size);
  size_t newline = input.find('\n');
  if (newline == std::string_view::npos) return 0;
  std::string_view content_type = input.substr(0, newline);
  input.remove_prefix(newline + 1);
  if (input.empty()) return 0;
  size_t count = static_cast<uint8_t>(input[0]) % 16;
  input.remove_prefix(1);
  if (input.size() < count) return 0;
  std::string_view sizes = input.substr(0, count);
  std::string_view body = input.substr(count);

  std::string boundary;
  absl::StatusOr<std::string> parsed =
      streamgrid::http::MultipartBoundary(std::string(content_type));
  if (parsed.ok()) {
    boundary = *parsed;
    FUZZ_CHECK(!boundary.empty() && boundary.size() <= 70, Escaped(boundary));
    FUZZ_CHECK(boundary.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos,
               Escaped(boundary));
  } else {
    FUZZ_CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
    if (content_type.empty() || content_type.size() > 70) return 0;
    boundary = content_type;
  }

  Run whole = Parse(boundary, body, {});
  Run chunked = Parse(boundary, body, sizes);
  FUZZ_CHECK(whole.status == chunked.status,
             absl::StrCat(whole.status.ToString(), " vs ", chunked.status.ToString()));
  FUZZ_CHECK(whole.done == chunked.done);
  // Malformed input is INVALID_ARGUMENT; a callback's error comes back unchanged.
  FUZZ_CHECK(whole.status.ok() || whole.status.code() == absl::StatusCode::kInvalidArgument ||
                 whole.status == absl::FailedPreconditionError("rejected part"),
             whole.status.ToString());
  FUZZ_CHECK(whole.parts.size() == chunked.parts.size(),
             absl::StrCat(whole.parts.size(), " vs ", chunked.parts.size(), " parts"));
  for (size_t i = 0; i < whole.parts.size(); ++i) {
    const Part& a = whole.parts[i];
    const Part& b = chunked.parts[i];
    FUZZ_CHECK(SameHeaders(a.headers, b.headers), absl::StrCat("part ", i));
    FUZZ_CHECK(a.data == b.data, absl::StrCat("part ", i, ": \"", Escaped(a.data), "\" vs \"",
                                              Escaped(b.data), "\""));
    FUZZ_CHECK(a.ended == b.ended, absl::StrCat("part ", i));
  }
  return 0;
}
