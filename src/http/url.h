#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace streamgrid::http {

// Decodes %XX escapes (either hex case). With `plus_as_space`, '+' decodes to a
// space (form/query encoding). Returns nullopt if a '%' is not followed by two
// hex digits. Decoded bytes are returned as is, including NUL and '/': callers
// validate the result for their own use.
std::optional<std::string> PercentDecode(std::string_view s, bool plus_as_space = false);

// Splits a query string (the part after '?', without the '?') on '&' into
// decoded key/value pairs, in order. '+' decodes to a space; a pair without '='
// has an empty value; empty pairs and pairs that fail to decode are skipped.
std::vector<std::pair<std::string, std::string>> ParseQuery(std::string_view query);

// The decoded value of the first pair of `query` whose decoded key equals
// `key`, or nullopt if there is none.
std::optional<std::string> QueryValue(std::string_view query, std::string_view key);

// Splits a path on '/', keeping empty segments: "/a//b/" gives {"a", "", "b",
// ""}. One leading '/' is dropped rather than giving an empty first segment, so
// "//x" gives {"", "x"}; "" and "/" give no segments. The views point into
// `path`.
std::vector<std::string_view> SplitPath(std::string_view path);

}  // namespace streamgrid::http
