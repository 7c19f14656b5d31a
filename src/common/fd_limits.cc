#include "common/fd_limits.h"

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>

#include "absl/strings/str_cat.h"

namespace streamgrid {
namespace {

constexpr int kMinConnections = 16;
// Each connection's socket plus a file it may be streaming.
constexpr uint64_t kDescriptorsPerConnection = 2;

// The kernel refuses RLIM_INFINITY for RLIMIT_NOFILE; its real ceiling.
uint64_t KernelCeiling() {
  std::ifstream in("/proc/sys/fs/nr_open");
  uint64_t value = 0;
  if (in >> value && value > 0) return value;
  return 1 << 20;  // Linux's default nr_open
}

}  // namespace

absl::StatusOr<OpenFileLimit> RaiseOpenFileLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return absl::InternalError(absl::StrCat("getrlimit(RLIMIT_NOFILE): ", std::strerror(errno)));
  }
  OpenFileLimit result{
      .soft_before = limit.rlim_cur, .soft = limit.rlim_cur, .hard = limit.rlim_max};
  rlim_t target = limit.rlim_max;
  if (target == RLIM_INFINITY) target = KernelCeiling();
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < target) {
    rlimit raised = limit;
    raised.rlim_cur = target;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) result.soft = target;
  }
  if (result.soft == RLIM_INFINITY) result.soft = KernelCeiling();
  if (result.hard == RLIM_INFINITY) result.hard = std::numeric_limits<uint64_t>::max();
  return result;
}

uint64_t ReservedDescriptors(const DescriptorBudget& budget) {
  // 128 for the process itself (standard streams, logs, epoll and eventfds of
  // the event loops and gRPC, SQLite's database, journal and WAL files, etcd
  // and storage node channels, the admin API's listener and clients); one per
  // blocking thread (the file or stream its call has open); two per upload
  // (its spool file, and the copy into the content store); 16 per
  // transcoding worker (ffmpeg's pipes and the files it writes and uploads).
  return 128 + static_cast<uint64_t>(std::max(budget.blocking_threads, 0)) +
         2 * static_cast<uint64_t>(std::max(budget.max_concurrent_uploads, 0)) +
         16 * static_cast<uint64_t>(std::max(budget.transcode_workers, 0));
}

ConnectionLimit ConnectionLimitFor(uint64_t fd_limit, uint64_t reserve, int requested) {
  uint64_t fits = fd_limit > reserve ? (fd_limit - reserve) / kDescriptorsPerConnection : 0;
  fits = std::clamp<uint64_t>(fits, kMinConnections, std::numeric_limits<int>::max());
  if (requested <= 0) return {.max_connections = static_cast<int>(fits)};
  if (static_cast<uint64_t>(requested) <= fits) return {.max_connections = requested};
  return {.max_connections = static_cast<int>(fits), .clamped = true};
}

}  // namespace streamgrid
