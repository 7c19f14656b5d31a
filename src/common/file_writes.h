#pragma once

// Sequential file writing shared by every writer of large files (the upload
// spool, storage nodes' data files, the local content store).

#include <cstdint>
#include <span>

namespace streamgrid {

// Writes all of `data` to `fd`, continuing after short writes and EINTR.
// Returns 0, or the errno of the write that failed (some bytes may have been
// written by then).
int WriteFully(int fd, std::span<const char> data);

// Starts the disk writing a sequentially written file's pages every `step`
// bytes, without waiting for it (sync_file_range SYNC_FILE_RANGE_WRITE): the
// disk works while the network does, and the fsync that makes the file
// durable at the end has little left to do. Advisory: errors are left for
// that fsync to report.
class Writeback {
 public:
  static constexpr uint64_t kDefaultStep = uint64_t{8} << 20;
  explicit Writeback(uint64_t step = kDefaultStep) : step_(step) {}

  // Tells that `fd` now holds `end` bytes (written from offset 0, in order);
  // starts writeback of what is new once a step has gathered. A step of 0
  // does nothing.
  void Wrote(int fd, uint64_t end);

 private:
  const uint64_t step_;
  uint64_t started_ = 0;  // bytes whose writeback was started
};

}  // namespace streamgrid
