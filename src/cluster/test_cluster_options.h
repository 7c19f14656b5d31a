#pragma once

// ClusterOptions for tests of the cluster against in-process storage nodes
// (see test_nodes.h).

#include <chrono>
#include <optional>

#include "cluster/cluster.h"

namespace streamgrid::testing {

// Call deadlines generous enough for a loaded machine (5 s per call, 30 s per
// transfer). With `backoff`, a node's health mark lasts exactly that long:
// short to retry a failed node at once, long (minutes) so that marks hold
// while a test asserts them. Without it, the defaults of ClusterOptions.
inline ClusterOptions FastClusterOptions(
    std::optional<std::chrono::milliseconds> backoff = std::nullopt) {
  ClusterOptions options;
  options.client.call_timeout = std::chrono::seconds(5);
  options.client.transfer_timeout = std::chrono::seconds(30);
  if (backoff) {
    options.min_backoff = *backoff;
    options.max_backoff = *backoff;
  }
  return options;
}

}  // namespace streamgrid::testing
