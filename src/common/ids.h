#pragma once

#include <cstdint>
#include <string>

namespace streamgrid {

// A new video ID: 26 characters of lower-case Crockford base32 encoding a 48-bit
// millisecond timestamp followed by 80 random bits. IDs are URL-safe, unique in
// practice, and sort (as strings) by creation time to the millisecond.
std::string NewVideoId();

// The same, for a given time; exposed for tests.
std::string NewVideoIdAt(int64_t unix_millis);

// Milliseconds since the Unix epoch.
int64_t NowMillis();

}  // namespace streamgrid
