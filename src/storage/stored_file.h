#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace streamgrid::storage {

// A file held by a storage node, as the node and its clients describe it.
struct StoredFile {
  std::string video_id;
  std::string name;
  uint64_t size = 0;
  // SHA-256 of the whole file, 64 lower-case hex digits.
  std::string sha256;
  // When the node stored it, in nanoseconds since the Unix epoch.
  int64_t mtime_unix_nanos = 0;

  bool operator==(const StoredFile&) const = default;
};

// One page of a listing in (video_id, name) order.
struct StoredFilePage {
  std::vector<StoredFile> files;
  // Pass back to get the next page; empty on the last one.
  std::string next_page_token;
};

}  // namespace streamgrid::storage
