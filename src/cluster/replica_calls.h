#pragma once

// Internal to NetworkVideoContentService and its writer and reader
// (replicated_writer.cc, piecewise_reader.cc): small helpers they share.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "cluster/cluster.h"
#include "content/video_content_service.h"
#include "storage/stored_file.h"

namespace streamgrid::cluster_internal {

// The ETag of a file with this SHA-256: `"` + sha256 + `"`.
std::string ETag(const std::string& sha256);

// A stored file as a ContentInfo (ETag from its SHA-256).
ContentInfo InfoOf(const storage::StoredFile& file);

// "id (address): message", for error messages naming the node.
std::string Describe(const ClusterNode& node, const absl::Status& status);

// The error for a call no node answered: UNAVAILABLE, naming each node's error.
absl::Status NoNodeAnswered(std::string_view what, const std::vector<std::string>& errors);

// Logs `node`'s damaged copy of `video_id/name` and queues it for repair
// (Cluster::ReportDamage).
void ReportDamaged(Cluster& cluster, const ClusterNode& node, std::string_view video_id,
                   std::string_view name, std::string reason);

}  // namespace streamgrid::cluster_internal
