#include "common/file_writes.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace streamgrid {

int WriteFully(int fd, std::span<const char> data) {
  const char* next = data.data();
  size_t left = data.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, next, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    next += n;
    left -= static_cast<size_t>(n);
  }
  return 0;
}

void Writeback::Wrote(int fd, uint64_t end) {
  if (step_ == 0 || end < started_ + step_) return;
  ::sync_file_range(fd, static_cast<off_t>(started_), static_cast<off_t>(end - started_),
                    SYNC_FILE_RANGE_WRITE);
  started_ = end;
}

}  // namespace streamgrid
