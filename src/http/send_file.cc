#include "http/send_file.h"

#include <sys/sendfile.h>
#include <sys/types.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace streamgrid::http {

absl::StatusOr<size_t> SendFileOnce(int socket_fd, int file_fd, uint64_t offset, size_t n) {
  for (;;) {
    // sendfile advances its own copy of the offset; the caller keeps the
    // position, so that a retry after would-block starts at the right byte.
    off_t position = static_cast<off_t>(offset);
    const ssize_t sent = ::sendfile(socket_fd, file_fd, &position, n);
    if (sent > 0) return static_cast<size_t>(sent);
    if (sent == 0) {
      return absl::DataLossError(absl::StrCat("the file ends before byte ", offset + 1));
    }
    const int error = errno;
    switch (error) {
      case EINTR:
        continue;
      case EAGAIN:
        return size_t{0};
      case EPIPE:
      case ECONNRESET:
      case ENOTCONN:
        return absl::UnavailableError(absl::StrCat("sendfile: ", std::strerror(error)));
      case EINVAL:
      case ESPIPE:  // a pipe or socket: sendfile reads only at an offset
      case ENOSYS:
      case EOPNOTSUPP:
        // The file (or the pair of descriptors) does not support sendfile:
        // nothing went out, so the caller can still send the bytes itself.
        return absl::FailedPreconditionError(absl::StrCat("sendfile: ", std::strerror(error)));
      default:
        return absl::InternalError(absl::StrCat("sendfile: ", std::strerror(error)));
    }
  }
}

}  // namespace streamgrid::http
