#pragma once

// The storage node's one place for low-level file handling (LevelDB's Env is
// the model): open/read/write/sync/rename/unlink/list/stat, with every failure
// turned into an absl::Status naming the operation, the path and the errno
// text. Everything the engine writes (data, checksum records, quarantine) goes
// through an Env, so tests can substitute one that injects faults
// (storage/testing/fault_injection_env.h).

#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace streamgrid::storage {

// What stat() says about a file.
struct FileStat {
  uint64_t inode = 0;
  uint64_t size = 0;
  int64_t mtime_unix_nanos = 0;
  bool is_directory = false;
};

// The FileStat of what stat(2) or fstat(2) filled in.
FileStat FromStat(const struct stat& st);

// A file open for appending (created by Env::NewWritableFile).
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Writes all of `data` at the end (retrying short writes and EINTR).
  virtual absl::Status Append(std::span<const char> data) = 0;
  // fsync: the data written so far is durable when this returns OK.
  virtual absl::Status Sync() = 0;
  // The open file's identity and size (fstat).
  virtual absl::StatusOr<FileStat> Stat() = 0;
  // Closes the descriptor; further calls fail. The destructor closes too.
  virtual absl::Status Close() = 0;
};

// A file open for positional reads.
class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  // Reads up to `buffer.size()` bytes at `offset`; fewer only at the end of
  // the file (retries short reads and EINTR). 0 at or past the end.
  virtual absl::StatusOr<size_t> ReadAt(uint64_t offset, std::span<char> buffer) = 0;
  // The open file's identity and size (fstat): that of the version opened
  // even if the path has been replaced since.
  virtual absl::StatusOr<FileStat> Stat() = 0;
};

class Env {
 public:
  virtual ~Env() = default;

  // The process-wide POSIX implementation (never destroyed).
  static Env* Default();

  // Creates `path` (which must not exist) for writing.
  virtual absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::filesystem::path& path) = 0;
  // Opens an existing file for reading (symlinks are refused).
  virtual absl::StatusOr<std::unique_ptr<ReadableFile>> OpenReadable(
      const std::filesystem::path& path) = 0;
  // rename(2): atomically replaces `to` if it exists.
  virtual absl::Status Rename(const std::filesystem::path& from,
                              const std::filesystem::path& to) = 0;
  // Removes a file; NOT_FOUND if it does not exist.
  virtual absl::Status Unlink(const std::filesystem::path& path) = 0;
  // Makes the entries of `dir` (creations, renames, removals) durable.
  virtual absl::Status SyncDir(const std::filesystem::path& dir) = 0;
  // Creates `dir` if missing (not its parents); when new, fsyncs the parent so
  // that the directory itself survives a crash. FAILED_PRECONDITION if `dir`
  // exists and is not a directory.
  virtual absl::Status CreateDir(const std::filesystem::path& dir) = 0;
  // Removes an empty directory; FAILED_PRECONDITION if it is not empty,
  // NOT_FOUND if it does not exist.
  virtual absl::Status RemoveDir(const std::filesystem::path& dir) = 0;
  // The names in `dir` (not "." and ".."), sorted.
  virtual absl::StatusOr<std::vector<std::string>> ListDir(const std::filesystem::path& dir) = 0;
  // lstat(2); NOT_FOUND if the path does not exist.
  virtual absl::StatusOr<FileStat> Stat(const std::filesystem::path& path) = 0;

  // Replaces `path` with `contents` atomically, and durably unless `sync` is
  // false: a temp file beside it (kTempPrefix) is written, fsynced, renamed
  // over `path`, then the directory is fsynced. On failure `path` is
  // unchanged (unless only the final directory fsync failed) and the temp
  // file is removed.
  absl::Status WriteFileAtomically(const std::filesystem::path& path, std::string_view contents,
                                   bool sync = true);
  // The whole of a small file; FAILED_PRECONDITION if it is larger than
  // `max_bytes`, NOT_FOUND if it does not exist.
  absl::StatusOr<std::string> ReadSmallFile(const std::filesystem::path& path, size_t max_bytes);
};

// A fresh random name suffix (16 hex digits) for temp files.
std::string RandomSuffix();

}  // namespace streamgrid::storage
