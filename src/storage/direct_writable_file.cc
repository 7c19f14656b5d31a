#include "storage/direct_writable_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace streamgrid::storage {

namespace fs = std::filesystem;

void DirectWritableFile::FreeAligned::operator()(char* p) const { std::free(p); }

DirectWritableFile::DirectWritableFile(ScopedFd fd, fs::path path, DirectWriteOptions options)
    : fd_(std::move(fd)), path_(std::move(path)), options_(options) {
  if (options_.buffer_bytes == 0 || options_.buffer_bytes % kDirectIoAlignment != 0) {
    // Not a size a direct write can have: stay buffered rather than fail.
    buffered_for_good_ = true;
  }
}

DirectWritableFile::~DirectWritableFile() = default;

bool DirectWritableFile::StartDirect() {
  if (!buffer_) {
    void* memory = nullptr;
    if (posix_memalign(&memory, kDirectIoAlignment, options_.buffer_bytes) != 0) {
      buffered_for_good_ = true;
      return false;
    }
    buffer_.reset(static_cast<char*>(memory));
  }
  const int flags = fcntl(fd_.get(), F_GETFL);
  if (flags < 0 || fcntl(fd_.get(), F_SETFL, flags | O_DIRECT) != 0) {
    // EINVAL: this file system has no direct I/O. Buffered it is.
    buffered_for_good_ = true;
    return false;
  }
  direct_ = true;
  return true;
}

absl::Status DirectWritableFile::StopDirect() {
  buffered_for_good_ = true;
  if (!direct_) return absl::OkStatus();
  direct_ = false;
  const int flags = fcntl(fd_.get(), F_GETFL);
  if (flags < 0 || fcntl(fd_.get(), F_SETFL, flags & ~O_DIRECT) != 0) {
    return ErrnoStatus(errno, "fcntl(~O_DIRECT)", path_);
  }
  return absl::OkStatus();
}

absl::Status DirectWritableFile::Write(std::span<const char> data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd_.get(), data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL && direct_) {
        // The file system refused this direct write (alignment it does not
        // take, or no direct I/O after all): the rest goes buffered.
        if (absl::Status s = StopDirect(); !s.ok()) return s;
        continue;
      }
      return ErrnoStatus(errno, "write", path_);
    }
    if (direct_) direct_bytes_ += static_cast<uint64_t>(n);
    size_ += static_cast<uint64_t>(n);
    data = data.subspan(static_cast<size_t>(n));
    // A short direct write leaves an offset that may not be aligned: finish
    // buffered rather than risk EINVAL in the middle of the file.
    if (direct_ && !data.empty()) {
      if (absl::Status s = StopDirect(); !s.ok()) return s;
    }
  }
  if (!direct_) writeback_.Wrote(fd_.get(), size_);
  return absl::OkStatus();
}

absl::Status DirectWritableFile::Append(std::span<const char> data) {
  if (fd_.get() < 0) return absl::FailedPreconditionError(path_.string() + " is closed");
  if (!direct_) {
    if (buffered_for_good_) return Write(data);
    // The prefix through the page cache.
    const uint64_t written = size_ + staged_;
    if (written < options_.buffered_prefix_bytes) {
      const size_t take = static_cast<size_t>(
          std::min<uint64_t>(data.size(), options_.buffered_prefix_bytes - written));
      if (absl::Status s = Write(data.first(take)); !s.ok()) return s;
      data = data.subspan(take);
    }
    if (data.empty()) return absl::OkStatus();
    if (!StartDirect()) return Write(data);
  }
  // Staged in the aligned buffer, written a whole buffer at a time.
  while (!data.empty()) {
    const size_t take = std::min(data.size(), options_.buffer_bytes - staged_);
    std::memcpy(buffer_.get() + staged_, data.data(), take);
    staged_ += take;
    data = data.subspan(take);
    if (staged_ == options_.buffer_bytes) {
      staged_ = 0;
      if (absl::Status s = Write(std::span<const char>(buffer_.get(), options_.buffer_bytes));
          !s.ok()) {
        return s;
      }
      if (!direct_) {
        // Refused meanwhile: what is left goes buffered too.
        return data.empty() ? absl::OkStatus() : Write(data);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status DirectWritableFile::Drain() {
  if (fd_.get() < 0) return absl::FailedPreconditionError(path_.string() + " is closed");
  if (absl::Status s = StopDirect(); !s.ok()) return s;
  if (staged_ == 0) return absl::OkStatus();
  const size_t n = std::exchange(staged_, 0);
  return Write(std::span<const char>(buffer_.get(), n));
}

absl::Status DirectWritableFile::Sync() {
  if (absl::Status s = Drain(); !s.ok()) return s;
  if (fsync(fd_.get()) != 0) return ErrnoStatus(errno, "fsync", path_);
  return absl::OkStatus();
}

absl::StatusOr<FileStat> DirectWritableFile::Stat() {
  if (absl::Status s = Drain(); !s.ok()) return s;
  struct stat st;
  if (fstat(fd_.get(), &st) != 0) return ErrnoStatus(errno, "fstat", path_);
  return FromStat(st);
}

absl::Status DirectWritableFile::Close() {
  if (fd_.get() < 0) return absl::OkStatus();
  absl::Status drained = Drain();
  if (int err = fd_.Close(); err != 0 && drained.ok()) return ErrnoStatus(err, "close", path_);
  return drained;
}

}  // namespace streamgrid::storage
