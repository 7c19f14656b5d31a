#include "http/byte_range.h"

#include <limits>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/strings.h"

namespace streamgrid::http {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

// RFC 9110 optional whitespace is only spaces and tabs.
std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Value of a digit string, saturating at kMax: a position past 2^64 is past
// the end of any file, so saturation gives the right answer without an error.
uint64_t SaturatingValue(std::string_view digits) {
  uint64_t value = 0;
  for (char c : digits) {
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (value > (kMax - d) / 10) return kMax;
    value = value * 10 + d;
  }
  return value;
}

// Compares digit strings exactly, so that last < first is detected even when
// both saturate.
bool DigitsLess(std::string_view a, std::string_view b) {
  while (a.size() > 1 && a.front() == '0') a.remove_prefix(1);
  while (b.size() > 1 && b.front() == '0') b.remove_prefix(1);
  if (a.size() != b.size()) return a.size() < b.size();
  return a < b;
}

// The one non-empty element of a comma-separated list (RFC 9110 §5.6.1 lets
// recipients skip empty elements), or nullopt if there are none or several.
std::optional<std::string_view> SingleListElement(std::string_view list) {
  std::optional<std::string_view> found;
  while (true) {
    size_t comma = list.find(',');
    std::string_view element = TrimOws(list.substr(0, comma));
    if (!element.empty()) {
      if (found) return std::nullopt;
      found = element;
    }
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return found;
}

}  // namespace

RangeResult ParseRange(std::string_view header, uint64_t size) {
  const RangeResult none;
  const RangeResult unsatisfiable{RangeKind::kUnsatisfiable, {}};
  header = TrimOws(header);
  size_t eq = header.find('=');
  if (eq == std::string_view::npos) return none;
  if (!EqualsIgnoreCase(TrimOws(header.substr(0, eq)), "bytes")) return none;
  std::optional<std::string_view> spec = SingleListElement(header.substr(eq + 1));
  if (!spec) return none;

  size_t dash = spec->find('-');
  if (dash == std::string_view::npos) return none;
  std::string_view first = TrimOws(spec->substr(0, dash));
  std::string_view last = TrimOws(spec->substr(dash + 1));

  if (first.empty()) {
    // Suffix range: the final `last` bytes.
    if (!AllDigits(last)) return none;
    uint64_t suffix = SaturatingValue(last);
    if (suffix == 0 || size == 0) return unsatisfiable;
    uint64_t length = suffix < size ? suffix : size;
    return {RangeKind::kSatisfiable, {size - length, length}};
  }

  if (!AllDigits(first)) return none;
  if (!last.empty() && (!AllDigits(last) || DigitsLess(last, first))) return none;
  uint64_t offset = SaturatingValue(first);
  if (offset >= size) return unsatisfiable;
  uint64_t end = size - 1;  // Inclusive.
  if (!last.empty()) {
    uint64_t requested_end = SaturatingValue(last);
    if (requested_end < end) end = requested_end;
  }
  return {RangeKind::kSatisfiable, {offset, end - offset + 1}};
}

std::string ContentRange(const ByteRange& range, uint64_t size) {
  return absl::StrCat("bytes ", range.offset, "-", range.offset + range.length - 1, "/", size);
}

std::string UnsatisfiedContentRange(uint64_t size) { return absl::StrCat("bytes */", size); }

}  // namespace streamgrid::http
