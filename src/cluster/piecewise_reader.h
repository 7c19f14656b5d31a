#pragma once

// Internal to NetworkVideoContentService: its verified, failing-over read (see
// network_video_content_service.h for the read's contract).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cluster/cluster.h"
#include "content/video_content_service.h"

namespace streamgrid::cluster_internal {

// Opens a read of `length` bytes (to the end when nullopt; not 0) of
// `video_id/name` from `offset`, trying `nodes` in order and failing over
// between them, in pieces of at most `piece_bytes`, every piece from a
// replica holding the version the first came from; a node answering
// DATA_LOSS, or a whole-file read whose SHA-256 does not match, is reported
// for repair and the piece comes from the next replica, and no unverified
// byte of a whole-file read is handed out. The first piece is fetched here:
// NOT_FOUND when no replica has the file, OUT_OF_RANGE for an offset past its
// end, DATA_LOSS when only damaged copies answered, UNAVAILABLE when no node
// answered. `cluster` must outlive the reader.
absl::StatusOr<std::unique_ptr<ContentReader>> OpenPiecewiseReader(
    Cluster& cluster, std::string video_id, std::string name, std::vector<ClusterNode> nodes,
    size_t piece_bytes, uint64_t offset, std::optional<uint64_t> length);

}  // namespace streamgrid::cluster_internal
