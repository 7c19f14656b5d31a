#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "content/local_video_content_service.h"
#include "storage/checksum_store.h"
#include "storage/sha256.h"
#include "storage/stored_file.h"

namespace streamgrid::storage {

// Counts for a node's health report.
struct StorageUsage {
  uint64_t files = 0;
  // Sum of the stored files' sizes.
  uint64_t bytes_used = 0;
  // Of the file system holding the data directory.
  uint64_t free_bytes = 0;
  uint64_t total_bytes = 0;
};

// A storage node's files and their checksums in one data directory:
//
//   DATA/content/<video_id>/<name>     the data (a LocalVideoContentService)
//   DATA/checksums/<video_id>/<name>   its SHA-256, bound to the data file's
//                                      inode, size and mtime (ChecksumStore)
//
// An upload is hashed while it is written and committed only if the hash (and
// the announced size) match: the data is fsynced and renamed into place, then
// its checksum record is written, both durable before Commit() returns. A crash
// between the two leaves data whose record is missing or stale; Open()
// recomputes those from the (durable, already verified) data, and removes temp
// files and records whose data is gone.
//
// Thread-safe. Reads and writes of a video are serialized against commits and
// deletes of the same video by a striped reader/writer lock, so a reader always
// gets a file and the checksum of that same version. One engine (one process)
// per data directory. Every call validates ids and names (INVALID_ARGUMENT).
class StorageEngine {
 public:
  class Upload;
  class Reader;

  // Listing pages hold this many entries unless asked for fewer.
  static constexpr size_t kMaxPageSize = 1000;
  // A listing page examines this many files at most by default.
  static constexpr size_t kDefaultListScanLimit = 100'000;

  // Opens (creating if needed) the store in `data_dir` and reconciles it as
  // described above. May take a while after a crash that left many stale records.
  static absl::StatusOr<std::unique_ptr<StorageEngine>> Open(const std::filesystem::path& data_dir);

  StorageEngine(const StorageEngine&) = delete;
  StorageEngine& operator=(const StorageEngine&) = delete;
  ~StorageEngine();

  const std::filesystem::path& data_dir() const { return data_dir_; }

  // Starts writing `video_id/name`. With `expected_size`, more data than that
  // fails the upload (DATA_LOSS) and a size above the free space is refused up
  // front (RESOURCE_EXHAUSTED). Nothing is visible before Upload::Commit().
  // The engine must outlive the upload.
  absl::StatusOr<std::unique_ptr<Upload>> StartUpload(
      std::string_view video_id, std::string_view name,
      std::optional<uint64_t> expected_size = std::nullopt);

  // Reads `length` bytes (to the end when nullopt) from `offset`. NOT_FOUND if
  // the file does not exist; OUT_OF_RANGE if `offset` is past its end. The
  // reader keeps reading the version it opened even if it is replaced meanwhile.
  absl::StatusOr<std::unique_ptr<Reader>> OpenReader(std::string_view video_id,
                                                     std::string_view name, uint64_t offset = 0,
                                                     std::optional<uint64_t> length = std::nullopt);

  // The file's description, or NOT_FOUND.
  absl::StatusOr<StoredFile> Stat(std::string_view video_id, std::string_view name);

  // Removes one file; NOT_FOUND if it does not exist.
  absl::Status Delete(std::string_view video_id, std::string_view name);

  // Removes every file of a video and returns how many there were (0 is OK).
  absl::StatusOr<uint64_t> DeleteVideo(std::string_view video_id);

  // One page of a listing in (video_id, name) order, as `options` describes:
  // up to its page_size files (capped at kMaxPageSize; 0 means the cap), only
  // video_id's when that is not empty, only those of the given partitions when
  // there are any, starting after page_token (empty for the first page).
  //
  // The page examines at most `scan_limit` files (at least 1) past the token,
  // matching or not. When it stops at that limit or at a full page with files
  // left to examine, next_page_token resumes right after the last file it
  // examined; so a filtered page may be short, or empty, with a token, and a
  // token does not promise another match. The token is empty once every file
  // has been examined. Files added or removed between pages may or may not
  // show; the others are listed exactly once.
  //
  // INVALID_ARGUMENT for a bad video id, a malformed token or one from a
  // listing of another video, partition_bits outside 1..kMaxListPartitionBits
  // while partitions is not empty, or a partition >= 2^partition_bits. Each
  // page costs time proportional to the number of videos plus the files of the
  // videos it touches, not to the whole store.
  absl::StatusOr<StoredFilePage> List(const ListOptions& options,
                                      size_t scan_limit = kDefaultListScanLimit);

  // Unfiltered List() of `video_id` (all videos when empty).
  absl::StatusOr<StoredFilePage> List(std::string_view video_id, std::string_view page_token,
                                      size_t page_size = kMaxPageSize);

  // File count and bytes stored (kept up to date in memory), plus the file
  // system's free and total space.
  absl::StatusOr<StorageUsage> Usage() const;

 private:
  StorageEngine(std::filesystem::path data_dir, std::unique_ptr<LocalVideoContentService> content,
                ChecksumStore checksums);

  absl::Status Reconcile();
  std::shared_mutex& LockFor(std::string_view video_id);
  // The description of the data file `info` of `video_id`, from its checksum
  // record, or recomputed from the data when the record is missing or stale.
  // Caller holds the video's lock (shared is enough: the data cannot change).
  // Sets `*recomputed` when it had to hash the data.
  absl::StatusOr<StoredFile> Describe(std::string_view video_id, const ContentInfo& info,
                                      bool* recomputed = nullptr);
  absl::StatusOr<int64_t> DataMtime(std::string_view video_id, std::string_view name) const;
  absl::StatusOr<StoredFile> CommitUpload(Upload& upload, const std::string& sha256);
  absl::StatusOr<std::optional<ContentInfo>> StatData(std::string_view video_id,
                                                      std::string_view name);
  void Account(const std::optional<ContentInfo>& before, const std::optional<ContentInfo>& after);

  const std::filesystem::path data_dir_;
  const std::unique_ptr<LocalVideoContentService> content_;
  const ChecksumStore checksums_;
  std::array<std::shared_mutex, 64> locks_;
  // True while Open() reconciles (single-threaded): recomputed records are
  // written without fsyncs and the file system is synced once at the end.
  bool reconciling_ = false;
  std::atomic<uint64_t> files_{0};
  std::atomic<uint64_t> bytes_{0};
};

// A file being written; see StorageEngine::StartUpload. Destroying it without
// a successful Commit() removes every trace of it.
class StorageEngine::Upload {
 public:
  ~Upload();

  // Writes the next bytes. After an error the upload is abandoned and unusable.
  absl::Status Append(std::span<const char> data);

  // Checks the data against `expected_sha256` (64 hex digits, either case;
  // INVALID_ARGUMENT otherwise) and the expected size, then makes the file
  // durable and visible, replacing any earlier version. DATA_LOSS on a mismatch,
  // leaving nothing behind. Call at most once.
  absl::StatusOr<StoredFile> Commit(std::string_view expected_sha256);

  uint64_t bytes_written() const { return written_; }

 private:
  friend class StorageEngine;
  Upload(StorageEngine& engine, std::string video_id, std::string name,
         std::optional<uint64_t> expected_size, std::unique_ptr<ContentWriter> writer);

  StorageEngine& engine_;
  const std::string video_id_;
  const std::string name_;
  const std::optional<uint64_t> expected_size_;
  std::unique_ptr<ContentWriter> writer_;  // null once abandoned or committed
  Sha256 hasher_;
  uint64_t written_ = 0;
};

// A byte range of a stored file, read sequentially.
class StorageEngine::Reader {
 public:
  Reader(std::unique_ptr<ContentReader> reader, StoredFile file)
      : reader_(std::move(reader)), file_(std::move(file)) {}

  // Fills up to `buffer.size()` bytes; returns 0 at the end of the range.
  absl::StatusOr<size_t> Read(std::span<char> buffer) { return reader_->Read(buffer); }

  // The whole file's description (not just the range's).
  const StoredFile& file() const { return file_; }

 private:
  std::unique_ptr<ContentReader> reader_;
  const StoredFile file_;
};

}  // namespace streamgrid::storage
