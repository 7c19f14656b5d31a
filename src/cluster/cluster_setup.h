#pragma once

// Start-up helpers of a web server whose content lives on the storage cluster.

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cluster/cluster.h"
#include "cluster/cluster_state_store.h"
#include "cluster/network_video_content_service.h"

namespace streamgrid {

// "HOST:PORT,HOST:PORT,..." as a list; INVALID_ARGUMENT for an empty list, an
// entry without a port or a repeated entry.
absl::StatusOr<std::vector<std::string>> ParseNodeAddresses(std::string_view list);

// The stored cluster state; when nothing is stored yet, a new one whose
// placement has a node per address (id = address, weight 1) with
// `replication_factor` replicas, saved first (if another server saved one
// meanwhile, that one wins). Addresses that differ from a stored state's are
// only logged: they seed a new cluster, they do not change an existing one.
// With no addresses a stored state is required (FAILED_PRECONDITION if there
// is none).
absl::StatusOr<ClusterState> LoadOrCreateClusterState(ClusterStateStore& store,
                                                      const std::vector<std::string>& addresses,
                                                      int replication_factor);

// Asks every node of `cluster` for its health and logs the answers; returns
// the ids of the nodes that did not answer (marked failed in `cluster`).
std::vector<std::string> CheckNodeHealth(Cluster& cluster);

// Everything a web server needs for content on the cluster; members depend on
// the ones before them.
struct ClusterContent {
  std::unique_ptr<ClusterStateStore> store;
  std::unique_ptr<Cluster> cluster;
  std::unique_ptr<NetworkVideoContentService> service;
};

// Loads or creates the state in `store` (LoadOrCreateClusterState with
// `addresses`, "HOST:PORT,...", or "" to join the stored cluster), and
// health-checks the nodes (only logging the
// ones that do not answer: reads tolerate R-1 of them). The cluster's clients
// use `options` (e.g. the cluster token and TLS).
absl::StatusOr<ClusterContent> OpenClusterContent(std::unique_ptr<ClusterStateStore> store,
                                                  std::string_view addresses,
                                                  int replication_factor,
                                                  ClusterOptions options = {});

}  // namespace streamgrid
