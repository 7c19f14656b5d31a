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

// The most bits a listing's partition numbers may have.
inline constexpr int kMaxListPartitionBits = 16;

// What one page of a listing asks for (see StorageEngine::List and the
// ListRequest of proto/storage.proto).
struct ListOptions {
  // Only this video's files when not empty.
  std::string video_id;
  // Empty for the first page, else the previous page's next_page_token.
  std::string page_token;
  // Entries per page at most; 0 means the node's maximum (1000), and larger
  // values are capped to it.
  uint32_t page_size = 0;
  // When not empty, only the files whose key "video_id/name" falls in one of
  // these partitions: the top `partition_bits` bits of the first 8 bytes of
  // SHA-256(key), read big-endian. Each must be below 2^partition_bits. Use the
  // same filter for every page of a listing.
  std::vector<uint32_t> partitions;
  // 1..kMaxListPartitionBits when `partitions` is not empty; ignored otherwise.
  int partition_bits = 0;
};

// One page of a listing in (video_id, name) order.
struct StoredFilePage {
  std::vector<StoredFile> files;
  // Pass back to get the next page; empty on the last one. A page may be short
  // or empty while this is set (each page examines a bounded number of files).
  std::string next_page_token;
};

}  // namespace streamgrid::storage
