#include "cluster/replica_calls.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/strings.h"

namespace streamgrid::cluster_internal {

std::string ETag(const std::string& sha256) { return absl::StrCat("\"", sha256, "\""); }

ContentInfo InfoOf(const storage::StoredFile& file) {
  return {.name = file.name, .size = file.size, .etag = ETag(file.sha256)};
}

std::string Describe(const ClusterNode& node, const absl::Status& status) {
  if (node.id == node.address) return absl::StrCat(node.id, ": ", status.message());
  return absl::StrCat(node.id, " (", node.address, "): ", status.message());
}

// The error for a call no node answered: UNAVAILABLE, naming each node's error.
absl::Status NoNodeAnswered(std::string_view what, const std::vector<std::string>& errors) {
  if (errors.empty())
    return absl::UnavailableError(absl::StrCat(ToAbsl(what), ": no storage node"));
  return absl::UnavailableError(
      absl::StrCat(ToAbsl(what), ": no storage node answered (", absl::StrJoin(errors, "; "), ")"));
}

void ReportDamaged(Cluster& cluster, const ClusterNode& node, std::string_view video_id,
                   std::string_view name, std::string reason) {
  spdlog::warn("damaged copy of {}/{} on {}: {}", video_id, name, node.id, reason);
  cluster.ReportDamage({.node_id = node.id,
                        .video_id = std::string(video_id),
                        .name = std::string(name),
                        .reason = std::move(reason)});
}

}  // namespace streamgrid::cluster_internal
