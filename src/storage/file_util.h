#pragma once

// POSIX file helpers shared by the storage node's on-disk structures.

#include <filesystem>
#include <string_view>
#include <utility>

#include "absl/status/status.h"

namespace streamgrid::storage {

// Hidden names beginning with this are in-progress writes. Content names never
// start with '.', so these cannot collide with stored files.
inline constexpr std::string_view kTempPrefix = ".tmp-";

// A status for a failed system call: NOT_FOUND for ENOENT/ENOTDIR,
// RESOURCE_EXHAUSTED for ENOSPC/EDQUOT, INTERNAL otherwise; the message names the
// operation, the path and the errno text.
absl::Status ErrnoStatus(int err, std::string_view op, const std::filesystem::path& path);

// Owns a file descriptor.
class ScopedFd {
 public:
  explicit ScopedFd(int fd = -1) : fd_(fd) {}
  ScopedFd(ScopedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  ScopedFd& operator=(ScopedFd&&) = delete;
  ~ScopedFd() { Close(); }

  int get() const { return fd_; }
  // Closes now; returns 0 or the errno of a failed close().
  int Close();

 private:
  int fd_;
};

// Makes the entries of `dir` (creations, renames, removals) durable.
absl::Status FsyncDir(const std::filesystem::path& dir);

// Creates `dir` if missing. When it is new, its parent is fsynced so that the
// directory itself survives a crash.
absl::Status EnsureDir(const std::filesystem::path& dir);

// Replaces `path` with `contents` atomically and durably: a temp file beside it
// is written, fsynced and renamed over `path`, then the directory is fsynced.
// With `sync` false the two fsyncs are skipped (atomic, not yet durable: for
// batches that sync the file system once at the end). On failure `path` is
// unchanged and the temp file is removed.
absl::Status WriteFileAtomically(const std::filesystem::path& path, std::string_view contents,
                                 bool sync = true);

// Flushes everything written to the file system holding `path` (syncfs).
absl::Status SyncFileSystem(const std::filesystem::path& path);

}  // namespace streamgrid::storage
