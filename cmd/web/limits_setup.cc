#include "limits_setup.h"

#include <spdlog/spdlog.h>

namespace streamgrid::web {

int SizeConnectionLimit(int requested, const DescriptorBudget& budget) {
  absl::StatusOr<OpenFileLimit> limit = RaiseOpenFileLimit();
  const uint64_t reserve = ReservedDescriptors(budget);
  if (!limit.ok()) {
    // Cannot happen on Linux; serve with what was asked (or a modest default).
    spdlog::warn("open-file limit unknown ({}); not sized", limit.status().ToString());
    return requested > 0 ? requested : 1024;
  }
  spdlog::info("open-file limit: soft {} (was {}), hard {}", limit->soft, limit->soft_before,
               limit->hard);
  ConnectionLimit connections = ConnectionLimitFor(limit->soft, reserve, requested);
  if (connections.clamped) {
    spdlog::warn(
        "--max-connections {} does not fit in the open-file limit of {} (each connection may "
        "need 2 descriptors, {} are reserved); using {}",
        requested, limit->soft, reserve, connections.max_connections);
  }
  spdlog::info(
      "at most {} connections ({} descriptors reserved for files, uploads, gRPC and "
      "transcoding)",
      connections.max_connections, reserve);
  return connections.max_connections;
}

}  // namespace streamgrid::web
