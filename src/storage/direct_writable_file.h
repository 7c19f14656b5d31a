#pragma once

// A data file writer that bypasses the page cache (O_DIRECT) once a file has
// grown past a prefix. A storage node writes every byte it receives once and
// makes it durable before it answers; copying it into the page cache first
// (and having the kernel write it back from there) was the largest item of a
// node's CPU profile during an upload (docs/ingest.md). Small files (segments,
// playlists, records) stay in the buffered prefix and keep being served from
// the page cache.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/file_writes.h"
#include "storage/env.h"
#include "storage/file_util.h"

namespace streamgrid::storage {

struct DirectWriteOptions {
  // Bytes written through the page cache before direct I/O starts. Should be
  // a multiple of kDirectIoAlignment: a file system refuses direct writes at
  // an unaligned offset, and the file then stays buffered (correct, slower).
  uint64_t buffered_prefix_bytes = uint64_t{8} << 20;
  // Each direct write is this big (a multiple of kDirectIoAlignment, at least
  // one): the bytes are staged in an aligned buffer of this size.
  size_t buffer_bytes = size_t{1} << 20;
};

// Alignment of the staging buffer's address and of direct writes' offsets and
// lengths: the page size, a multiple of the logical block size of common disks.
inline constexpr size_t kDirectIoAlignment = 4096;

// A WritableFile whose bytes past DirectWriteOptions::buffered_prefix_bytes
// are written with O_DIRECT in whole aligned buffers. The last partial buffer
// (up to buffer_bytes) is held in memory until Sync(), Stat() or Close(),
// which write it through the page cache (a direct write must be a whole
// number of blocks); bytes held when the file is destroyed without one of
// those are dropped (an abandoned upload). When the file system refuses
// direct I/O (fcntl or the first write says EINVAL), the file falls back to
// buffered writes for good, transparently. Not thread-safe.
class DirectWritableFile final : public WritableFile {
 public:
  // Takes `fd` (open for writing, empty, without O_DIRECT); `path` names it in
  // errors.
  DirectWritableFile(ScopedFd fd, std::filesystem::path path, DirectWriteOptions options = {});
  ~DirectWritableFile() override;

  absl::Status Append(std::span<const char> data) override;
  absl::Status Sync() override;
  absl::StatusOr<FileStat> Stat() override;
  absl::Status Close() override;

  // Bytes written with O_DIRECT so far (for tests and logs).
  uint64_t direct_bytes() const { return direct_bytes_; }

 private:
  // Switches the descriptor to O_DIRECT; false (and buffered from then on)
  // when the file system refuses.
  bool StartDirect();
  // Switches the descriptor back to buffered writes for good.
  absl::Status StopDirect();
  // Writes `data` at the end of the file, directly if the file is in direct
  // mode and the kernel accepts it, else through the page cache.
  absl::Status Write(std::span<const char> data);
  // Writes the staged bytes (buffered: a partial block cannot go direct).
  absl::Status Drain();

  ScopedFd fd_;
  const std::filesystem::path path_;
  const DirectWriteOptions options_;
  struct FreeAligned {
    void operator()(char* p) const;
  };
  std::unique_ptr<char[], FreeAligned> buffer_;  // allocated when direct I/O starts
  size_t staged_ = 0;                            // bytes in buffer_
  bool direct_ = false;                          // the descriptor has O_DIRECT
  bool buffered_for_good_ = false;               // refused, or drained
  uint64_t size_ = 0;                            // bytes written to the file
  uint64_t direct_bytes_ = 0;
  Writeback writeback_;  // for the buffered prefix
};

}  // namespace streamgrid::storage
