#pragma once

// Internal to NetworkVideoContentService: its replicated write (see
// network_video_content_service.h for the write's contract).

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "cluster/cluster.h"
#include "content/video_content_service.h"

namespace streamgrid::cluster_internal {

// Starts a write of `video_id/name` to the nodes of `plan`: a stream to each
// owner that is up, in parallel, and for each other owner (not up, or its
// stream failed to start) to the next live stand-in of the plan, hinted for
// that owner. UNAVAILABLE when there are not as many live nodes as owners; an
// owner's answer that is not a node failure (e.g. INVALID_ARGUMENT) fails the
// write. The writer's Commit succeeds only once every replica stored the file
// durably; a writer destroyed uncommitted abandons every stream. `cluster`
// must outlive the writer.
absl::StatusOr<std::unique_ptr<ContentWriter>> StartReplicatedWrite(Cluster& cluster,
                                                                    std::string_view video_id,
                                                                    std::string_view name,
                                                                    Cluster::WritePlan plan);

}  // namespace streamgrid::cluster_internal
