#pragma once

#include <string_view>

namespace streamgrid {

// True for IDs NewVideoId() can produce: 26 characters of lower-case Crockford
// base32. Anything else (empty, "..", slashes, NUL) is rejected.
bool IsValidVideoId(std::string_view id);

// True for names a video's files may have: 1 to 128 characters of [A-Za-z0-9._-],
// starting with a letter or digit (so never "." or ".." or a hidden temp file).
bool IsValidContentName(std::string_view name);

}  // namespace streamgrid
