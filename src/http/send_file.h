#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"

namespace streamgrid::http {

// One sendfile(2) of up to `n` (> 0) bytes of the file `file_fd` from byte
// `offset` to the non-blocking socket `socket_fd`, retried on EINTR; never
// blocks on the socket. Returns the bytes sent (> 0), or 0 when the socket
// takes nothing now (wait until it is writable, then call again). Errors:
// UNAVAILABLE when the peer is gone (the connection cannot be used further);
// DATA_LOSS when the file ends before `offset` + 1; FAILED_PRECONDITION when
// the descriptor cannot be sent from (e.g. a pipe), in which case nothing was
// sent and the caller may send the same bytes another way; INTERNAL for any
// other failure (e.g. a read error of the file). The process must ignore
// SIGPIPE (common/termination_signals does), or a gone peer kills it.
absl::StatusOr<size_t> SendFileOnce(int socket_fd, int file_fd, uint64_t offset, size_t n);

}  // namespace streamgrid::http
