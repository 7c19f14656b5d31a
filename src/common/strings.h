#pragma once

// Small std::string_view helpers. Debian's Abseil keeps absl::string_view a
// type of its own, so its string functions do not take std::string_view; these
// fill the gap.

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/strings/string_view.h"

namespace streamgrid {

// `text` without leading and trailing ASCII whitespace.
std::string_view StripWhitespace(std::string_view text);

// True when `a` and `b` are equal ignoring ASCII case.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// `text` split at '\n' and '\r', each piece stripped, empty ones dropped.
std::vector<std::string_view> NonEmptyLines(std::string_view text);

// The same characters as an absl::string_view, for abseil's string and status
// functions.
inline absl::string_view ToAbsl(std::string_view text) { return {text.data(), text.size()}; }

// The whole of `text` as a decimal integer (optional sign), else nullopt.
std::optional<int64_t> ParseInt64(std::string_view text);

// The whole of `text` as a finite decimal floating-point number, else nullopt.
std::optional<double> ParseDouble(std::string_view text);

}  // namespace streamgrid
