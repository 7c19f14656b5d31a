#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace streamgrid::storage {

// The checksum of one stored file, bound to the exact data file it describes.
struct ChecksumRecord {
  // SHA-256 of the data, 64 lower-case hex digits.
  std::string sha256;
  // The data file's modification time when the record was made.
  int64_t mtime_unix_nanos = 0;
  // The data file's ContentInfo::etag (inode, size, mtime) when the record was
  // made. A data file with another etag is another version: the record is stale.
  std::string etag;

  bool operator==(const ChecksumRecord&) const = default;
};

// Checksum records kept beside the data as one small file per stored file,
// `root/<video_id>/<name>`, each replaced atomically and durably. Callers
// serialize access to a given file. Every call validates the video id and name
// (INVALID_ARGUMENT), so no path outside `root` is ever touched.
class ChecksumStore {
 public:
  // A store under `root`, which is created if missing.
  static absl::StatusOr<ChecksumStore> Open(std::filesystem::path root);

  const std::filesystem::path& root() const { return root_; }

  // The record of `video_id/name`; nullopt when there is none or it does not
  // parse (a record is only a cache of facts derivable from the data).
  absl::StatusOr<std::optional<ChecksumRecord>> Read(std::string_view video_id,
                                                     std::string_view name) const;

  // Stores the record of `video_id/name`, atomically; durable when this
  // returns OK unless `sync` is false (see WriteFileAtomically).
  absl::Status Write(std::string_view video_id, std::string_view name, const ChecksumRecord& record,
                     bool sync = true) const;

  // Removes the record of `video_id/name`; OK when there is none.
  absl::Status Remove(std::string_view video_id, std::string_view name) const;

  // Removes every record of a video; OK when there are none.
  absl::Status RemoveVideo(std::string_view video_id) const;

  // For start-up only (no concurrent writers): removes temp files left by a
  // crash, records for which `has_data(video_id, name)` is false, and video
  // directories left empty. Returns how many files it removed.
  absl::StatusOr<size_t> RemoveStale(
      const std::function<bool(const std::string& video_id, const std::string& name)>& has_data)
      const;

 private:
  explicit ChecksumStore(std::filesystem::path root) : root_(std::move(root)) {}

  absl::StatusOr<std::filesystem::path> PathOf(std::string_view video_id,
                                               std::string_view name) const;

  std::filesystem::path root_;
};

}  // namespace streamgrid::storage
