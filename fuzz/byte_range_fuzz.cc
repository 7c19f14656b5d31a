// libFuzzer target: the Range header parser.
//
// Input layout: the representation's size in decimal up to the first '\n'
// (anything that is not a number means 1000), then the Range header value.
// Checks that a satisfiable range lies inside the file, that Content-Range
// describes it, that the outcome does not depend on letter case, that being
// syntactically invalid does not depend on the size, and, for the plain forms
// "bytes=A-B", "bytes=A-" and "bytes=-N", the exact answer.

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "fuzz_check.h"
#include "http/byte_range.h"

namespace streamgrid::fuzz {
namespace {

using http::ByteRange;
using http::ParseRange;
using http::RangeKind;
using http::RangeResult;

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

std::string Describe(const RangeResult& r) {
  return absl::StrCat("kind ", static_cast<int>(r.kind), " offset ", r.range.offset, " length ",
                      r.range.length);
}

bool Same(const RangeResult& a, const RangeResult& b) {
  if (a.kind != b.kind) return false;
  return a.kind != RangeKind::kSatisfiable || a.range == b.range;
}

// A decimal number of at most 18 digits (so it fits), or nullopt.
std::optional<uint64_t> SmallNumber(std::string_view s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  uint64_t value = 0;
  auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (error != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

// The answer RFC 9110 gives for the plain forms, or nullopt for other inputs.
std::optional<RangeResult> Expected(std::string_view header, uint64_t size) {
  if (!header.starts_with("bytes=")) return std::nullopt;
  header.remove_prefix(6);
  size_t dash = header.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  std::string_view first = header.substr(0, dash);
  std::string_view last = header.substr(dash + 1);
  const RangeResult unsatisfiable{RangeKind::kUnsatisfiable, {}};
  if (first.empty()) {
    std::optional<uint64_t> suffix = SmallNumber(last);
    if (!suffix) return std::nullopt;
    if (*suffix == 0 || size == 0) return unsatisfiable;
    uint64_t length = std::min(*suffix, size);
    return RangeResult{RangeKind::kSatisfiable, {size - length, length}};
  }
  std::optional<uint64_t> a = SmallNumber(first);
  if (!a) return std::nullopt;
  uint64_t b = kMax;
  if (!last.empty()) {
    std::optional<uint64_t> parsed = SmallNumber(last);
    if (!parsed) return std::nullopt;
    if (*parsed < *a) return RangeResult{};
    b = *parsed;
  }
  if (*a >= size) return unsatisfiable;
  uint64_t end = std::min(b, size - 1);
  return RangeResult{RangeKind::kSatisfiable, {*a, end - *a + 1}};
}

}  // namespace
}  // namespace streamgrid::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace streamgrid::fuzz;
  std::string_view input(reinterpret_cast<const char*>(bytes), size);
  size_t newline = input.find('\n');
  uint64_t file_size = 1000;
  std::string_view header = input;
  if (newline != std::string_view::npos) {
    std::string_view number = input.substr(0, newline);
    uint64_t value = 0;
    auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (error == std::errc() && end == number.data() + number.size()) file_size = value;
    header = input.substr(newline + 1);
  }

  const RangeResult result = ParseRange(header, file_size);
  if (result.kind == RangeKind::kSatisfiable) {
    const ByteRange& r = result.range;
    FUZZ_CHECK(r.length >= 1 && r.offset < file_size && r.length <= file_size - r.offset,
               Describe(result));
    const std::string content_range = streamgrid::http::ContentRange(r, file_size);
    FUZZ_CHECK(content_range ==
                   absl::StrCat("bytes ", r.offset, "-", r.offset + (r.length - 1), "/", file_size),
               content_range);
  }

  // Letter case never matters: the unit is case-insensitive and letters are
  // invalid everywhere else.
  std::string upper(header);
  absl::AsciiStrToUpper(&upper);
  FUZZ_CHECK(Same(ParseRange(upper, file_size), result), Describe(result));

  // Whether the header is ignored is a matter of syntax, not of the size.
  for (uint64_t other : {uint64_t{0}, uint64_t{1}, file_size / 2, kMax}) {
    FUZZ_CHECK(
        (ParseRange(header, other).kind == RangeKind::kNone) == (result.kind == RangeKind::kNone),
        absl::StrCat("size ", other, " vs ", file_size));
  }

  if (std::optional<RangeResult> expected = Expected(header, file_size)) {
    FUZZ_CHECK(Same(*expected, result),
               absl::StrCat("expected ", Describe(*expected), ", got ", Describe(result)));
  }
  return 0;
}
