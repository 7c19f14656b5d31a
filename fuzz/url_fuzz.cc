// libFuzzer target: percent-decoding, query strings, path splitting, and the
// validation of the names the content routes take from a decoded path
// segment (video ids and file names).
//
// The whole input is used as a path, as a query string and as a name. The
// invariants: PercentDecode fails exactly when a '%' lacks two hex digits and
// otherwise inverts percent-encoding; SplitPath's segments join back to the
// path; ParseQuery and QueryValue agree; and no name that validates, however
// it was encoded, can leave its directory: it never contains '/', '\\' or
// NUL, is never "." or "..", and is 1 to 128 bytes (26 for a video id).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "fuzz_check.h"
#include "http/url.h"

namespace streamgrid::fuzz {
namespace {

std::string Escaped(std::string_view s) {
  return absl::CEscape(absl::string_view(s.data(), s.size()));
}

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// Whether every '%' in `s` is followed by two hex digits.
bool EscapesWellFormed(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') continue;
    if (i + 2 >= s.size() || !IsHex(s[i + 1]) || !IsHex(s[i + 2])) return false;
    i += 2;
  }
  return true;
}

// Every byte escaped, so decoding must give `s` back.
std::string EncodeAll(std::string_view s) {
  std::string out;
  for (char c : s) {
    out += '%';
    out += "0123456789ABCDEF"[static_cast<unsigned char>(c) >> 4];
    out += "0123456789abcdef"[static_cast<unsigned char>(c) & 15];
  }
  return out;
}

void CheckName(std::string_view name) {
  const bool content = IsValidContentName(name);
  const bool id = IsValidVideoId(name);
  if (!content && !id) return;
  FUZZ_CHECK(name.find_first_of(std::string_view("/\\\0", 3)) == std::string_view::npos,
             Escaped(name));
  FUZZ_CHECK(name != "." && name != "..", Escaped(name));
  FUZZ_CHECK(!name.empty() && name.size() <= 128, Escaped(name));
  if (id) FUZZ_CHECK(name.size() == 26, Escaped(name));
}

void CheckDecode(std::string_view input, bool plus_as_space) {
  std::optional<std::string> decoded = http::PercentDecode(input, plus_as_space);
  FUZZ_CHECK(decoded.has_value() == EscapesWellFormed(input), Escaped(input));
  if (!decoded) return;
  FUZZ_CHECK(decoded->size() <= input.size());
  if (input.find('%') == std::string_view::npos && !plus_as_space) {
    FUZZ_CHECK(*decoded == input, Escaped(input));
  }
  std::optional<std::string> again = http::PercentDecode(EncodeAll(*decoded), plus_as_space);
  FUZZ_CHECK(again.has_value() && *again == *decoded, Escaped(*decoded));
  CheckName(*decoded);
}

}  // namespace
}  // namespace streamgrid::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace streamgrid::fuzz;
  using namespace streamgrid;
  std::string_view input(reinterpret_cast<const char*>(bytes), size);

  CheckName(input);
  CheckDecode(input, /*plus_as_space=*/false);
  CheckDecode(input, /*plus_as_space=*/true);

  // Paths: the segments are views into the input and join back to it.
  std::vector<std::string_view> segments = http::SplitPath(input);
  std::string_view rest = input.starts_with('/') ? input.substr(1) : input;
  std::string joined;
  for (size_t i = 0; i < segments.size(); ++i) {
    if (i > 0) joined += '/';
    joined += segments[i];
  }
  FUZZ_CHECK(joined == rest, Escaped(input));
  for (std::string_view segment : segments) {
    FUZZ_CHECK(segment.data() >= input.data() &&
               segment.data() + segment.size() <= input.data() + input.size());
    FUZZ_CHECK(segment.find('/') == std::string_view::npos);
    // What the content routes do with a path parameter.
    if (std::optional<std::string> decoded = http::PercentDecode(segment)) CheckName(*decoded);
  }

  // Queries: one pair per non-empty '&'-separated piece that decodes.
  std::vector<std::pair<std::string, std::string>> pairs = http::ParseQuery(input);
  size_t pieces = 0;
  for (std::string_view query = input; !query.empty();) {
    size_t amp = query.find('&');
    std::string_view piece = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (piece.empty()) continue;
    size_t eq = piece.find('=');
    std::string_view key = piece.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : piece.substr(eq + 1);
    if (EscapesWellFormed(key) && EscapesWellFormed(value)) ++pieces;
  }
  FUZZ_CHECK(pairs.size() == pieces, absl::StrCat(pairs.size(), " pairs, ", pieces, " pieces"));
  // QueryValue parses the whole query per call: a few keys are enough.
  for (size_t i = 0; i < pairs.size() && i < 8; ++i) {
    std::optional<std::string> value = http::QueryValue(input, pairs[i].first);
    FUZZ_CHECK(value.has_value(), Escaped(pairs[i].first));
    // QueryValue answers the first pair with that key.
    size_t first = 0;
    while (pairs[first].first != pairs[i].first) ++first;
    FUZZ_CHECK(*value == pairs[first].second, Escaped(pairs[i].first));
  }
  return 0;
}
