#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/block_checksum.h"
#include "storage/env.h"
#include "storage/sha256.h"

namespace streamgrid::storage {

// Files are verified in blocks of this many bytes (see ChecksumRecord).
inline constexpr uint64_t kChecksumBlockBytes = uint64_t{1} << 20;

// The checksums of one stored file, bound to the exact data file it describes.
struct ChecksumRecord {
  // SHA-256 of the data, 64 lower-case hex digits.
  std::string sha256;
  // The data file's modification time when the record was made.
  int64_t mtime_unix_nanos = 0;
  // The data file's etag (inode, size, mtime; the format of
  // LocalVideoContentService's ContentInfo::etag) when the record was made. A
  // data file with another etag is not the file the record describes.
  std::string etag;
  // The data's size.
  uint64_t size = 0;
  // The algorithm of `blocks`. A record without one (formats v1 and v2, all
  // records made before XXH3-128) has SHA-256 blocks.
  BlockAlgorithm block_algorithm = BlockAlgorithm::kSha256;
  // The digest of each kChecksumBlockBytes block, in order. With SHA-256:
  // present when the file has more than one block, empty otherwise (the
  // single block's checksum is `sha256`). With XXH3-128: one per block
  // always (none for an empty file).
  std::vector<BlockDigest> blocks;
  // Read from a record of the first format (no size, no blocks): only
  // `sha256`, `mtime_unix_nanos` and `etag` are set.
  bool legacy = false;

  bool operator==(const ChecksumRecord&) const = default;
};

// Checksum records kept beside the data as one small file per stored file,
// `root/<video_id>/<name>`, each replaced atomically and durably through an
// Env. Callers serialize access to a given file. Every call validates the
// video id and name (INVALID_ARGUMENT), so no path outside `root` is touched.
class ChecksumStore {
 public:
  // A store under `root`, which is created if missing. `env` must outlive it.
  static absl::StatusOr<ChecksumStore> Open(Env& env, std::filesystem::path root);

  const std::filesystem::path& root() const { return root_; }

  // The record of `video_id/name`; nullopt when there is none. A record that
  // does not parse is DATA_LOSS (it cannot vouch for the data).
  absl::StatusOr<std::optional<ChecksumRecord>> Read(std::string_view video_id,
                                                     std::string_view name) const;

  // Stores the record of `video_id/name`, atomically; durable when this
  // returns OK unless `sync` is false.
  absl::Status Write(std::string_view video_id, std::string_view name, const ChecksumRecord& record,
                     bool sync = true) const;

  // Removes the record of `video_id/name` durably; OK when there is none.
  absl::Status Remove(std::string_view video_id, std::string_view name) const;

  // Video ids with a record directory, sorted (other entries skipped).
  absl::StatusOr<std::vector<std::string>> Videos() const;
  // Names with a record under `video_id`, sorted; temp files are removed on
  // the way when `remove_temps` (start-up only), skipped otherwise.
  absl::StatusOr<std::vector<std::string>> Names(std::string_view video_id,
                                                 bool remove_temps = false) const;
  // Removes the video's record directory if it is empty (no error otherwise).
  void RemoveVideoDirIfEmpty(std::string_view video_id) const;

 private:
  ChecksumStore(Env& env, std::filesystem::path root) : env_(&env), root_(std::move(root)) {}

  absl::StatusOr<std::filesystem::path> PathOf(std::string_view video_id,
                                               std::string_view name) const;

  Env* env_;
  std::filesystem::path root_;
};

}  // namespace streamgrid::storage
