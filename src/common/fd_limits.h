#pragma once

#include <cstdint>

#include "absl/status/statusor.h"

namespace streamgrid {

// The process's open-file limit (RLIMIT_NOFILE) before and after raising it.
struct OpenFileLimit {
  uint64_t soft_before = 0;
  uint64_t soft = 0;  // in force now
  uint64_t hard = 0;
};

// Raises the soft open-file limit to the hard limit (an unlimited hard limit
// counts as the kernel's fs.nr_open ceiling) and returns what is in force. A
// failure to raise it leaves the old limit, reported in the result, not as an
// error; an error only when the limit cannot even be read.
absl::StatusOr<OpenFileLimit> RaiseOpenFileLimit();

// Descriptors the web server keeps for everything but client connections:
// standard streams, logs, event loops, SQLite, gRPC channels to etcd and the
// storage nodes, the admin API, a file or stream per blocking thread, spool
// files of uploads in progress, and each transcoding worker's ffmpeg pipes and
// output files. See docs/design.md ("Limits under abuse").
struct DescriptorBudget {
  int blocking_threads = 0;
  int max_concurrent_uploads = 0;
  int transcode_workers = 0;
};
uint64_t ReservedDescriptors(const DescriptorBudget& budget);

// How many client connections fit in `fd_limit` descriptors beside the
// reserve: each connection may hold two (its socket, and a file it streams).
// `requested` (0: none given) is honoured when it fits, else clamped; at least
// 16 either way so a tiny limit still serves someone.
struct ConnectionLimit {
  int max_connections = 0;
  bool clamped = false;  // `requested` did not fit
};
ConnectionLimit ConnectionLimitFor(uint64_t fd_limit, uint64_t reserve, int requested);

}  // namespace streamgrid
