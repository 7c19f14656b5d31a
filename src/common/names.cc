#include "common/names.h"

#include <algorithm>

#include "absl/strings/ascii.h"

namespace streamgrid {
namespace {

constexpr size_t kVideoIdLength = 26;
constexpr size_t kMaxContentNameLength = 128;

bool IsCrockfordLower(char c) {
  // Crockford base32 leaves out i, l, o and u to avoid confusion with 1, 0 and v.
  if (c >= '0' && c <= '9') return true;
  if (c < 'a' || c > 'z') return false;
  return c != 'i' && c != 'l' && c != 'o' && c != 'u';
}

bool IsContentNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

}  // namespace

bool IsValidVideoId(std::string_view id) {
  return id.size() == kVideoIdLength && std::all_of(id.begin(), id.end(), IsCrockfordLower);
}

bool IsValidContentName(std::string_view name) {
  if (name.empty() || name.size() > kMaxContentNameLength) return false;
  if (!absl::ascii_isalnum(static_cast<unsigned char>(name.front()))) return false;
  return std::all_of(name.begin(), name.end(), IsContentNameChar);
}

}  // namespace streamgrid
