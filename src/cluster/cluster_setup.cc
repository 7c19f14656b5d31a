#include "cluster/cluster_setup.h"

#include <spdlog/spdlog.h>

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/strings.h"

namespace streamgrid {

absl::StatusOr<std::vector<std::string>> ParseNodeAddresses(std::string_view list) {
  std::vector<std::string> addresses;
  std::set<std::string, std::less<>> seen;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string_view::npos) comma = list.size();
    std::string_view address = StripWhitespace(list.substr(start, comma - start));
    start = comma + 1;
    if (address.empty()) continue;
    const size_t colon = address.rfind(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == address.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("storage node address must be HOST:PORT, got '", ToAbsl(address), "'"));
    }
    if (!seen.emplace(address).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("storage node ", ToAbsl(address), " is listed twice"));
    }
    addresses.emplace_back(address);
  }
  if (addresses.empty()) return absl::InvalidArgumentError("no storage node addresses given");
  return addresses;
}

absl::StatusOr<ClusterState> LoadOrCreateClusterState(ClusterStateStore& store,
                                                      const std::vector<std::string>& addresses,
                                                      int replication_factor) {
  // Two servers starting at once may both find nothing; the loser of the
  // compare-and-set loads the winner's state on the next round.
  for (int round = 0; round < 3; ++round) {
    absl::StatusOr<std::optional<ClusterState>> loaded = store.Load();
    if (!loaded.ok()) return loaded.status();
    if (*loaded) {
      ClusterState& state = **loaded;
      std::set<std::string> stored;
      for (const RingNode& node : state.current.nodes()) stored.insert(node.address);
      if (!addresses.empty() &&
          stored != std::set<std::string>(addresses.begin(), addresses.end())) {
        spdlog::info(
            "using the stored cluster ({}, replication factor {}); the given addresses ({}) "
            "only seed a new cluster",
            absl::StrJoin(stored, ","), state.current.replication_factor(),
            absl::StrJoin(addresses, ","));
      }
      if (state.current.replication_factor() != replication_factor) {
        spdlog::info("stored replication factor {} is kept (flag says {})",
                     state.current.replication_factor(), replication_factor);
      }
      return std::move(state);
    }
    if (addresses.empty()) {
      return absl::FailedPreconditionError(
          "no storage cluster is stored yet: give its first nodes as cluster:HOST:PORT,... to "
          "create it");
    }
    std::vector<RingNode> nodes;
    for (const std::string& address : addresses) {
      nodes.push_back({.id = address, .address = address, .weight = 1.0});
    }
    absl::StatusOr<Placement> placement = Placement::Create(std::move(nodes), replication_factor);
    if (!placement.ok()) return placement.status();
    ClusterState state{.current = *std::move(placement)};
    absl::StatusOr<uint64_t> revision = store.Save(state, 0);
    if (revision.ok()) {
      state.revision = *revision;
      spdlog::info("created cluster of {} storage nodes, replication factor {}", addresses.size(),
                   replication_factor);
      return state;
    }
    if (!absl::IsAborted(revision.status())) return revision.status();
  }
  return absl::AbortedError("cluster state kept changing while starting");
}

std::vector<std::string> CheckNodeHealth(Cluster& cluster) {
  std::vector<std::string> down;
  for (const ClusterNode& node : cluster.AllNodes()) {
    absl::StatusOr<storage::NodeHealth> health = node.client->Health();
    if (health.ok()) {
      cluster.MarkSuccess(node.id);
      spdlog::info("storage node {} at {}: up {} s, {} files, {} bytes free", node.id, node.address,
                   health->uptime_seconds, health->files, health->free_bytes);
    } else {
      cluster.MarkFailure(node.id);
      down.push_back(node.id);
      spdlog::warn("storage node {} at {} does not answer: {}", node.id, node.address,
                   health.status().ToString());
    }
  }
  return down;
}

absl::StatusOr<ClusterContent> OpenClusterContent(std::unique_ptr<ClusterStateStore> store,
                                                  std::string_view addresses,
                                                  int replication_factor, ClusterOptions options) {
  // No addresses: join the cluster already stored.
  absl::StatusOr<std::vector<std::string>> parsed = StripWhitespace(addresses).empty()
                                                        ? std::vector<std::string>{}
                                                        : ParseNodeAddresses(addresses);
  if (!parsed.ok()) return parsed.status();
  absl::StatusOr<ClusterState> state =
      LoadOrCreateClusterState(*store, *parsed, replication_factor);
  if (!state.ok()) return state.status();
  ClusterContent content;
  content.store = std::move(store);
  content.cluster = std::make_unique<Cluster>(*std::move(state), std::move(options));
  content.service = std::make_unique<NetworkVideoContentService>(*content.cluster);
  const std::vector<std::string> down = CheckNodeHealth(*content.cluster);
  const int replicas = content.cluster->state()->current.replication_factor();
  if (!down.empty()) {
    spdlog::warn(
        "{} of {} storage nodes do not answer ({}); reads survive {} down, writes need all "
        "replicas of a file",
        down.size(), content.cluster->AllNodes().size(), absl::StrJoin(down, ", "), replicas - 1);
  }
  return content;
}

}  // namespace streamgrid
