#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "cluster/cluster.h"
#include "content/video_content_service.h"

namespace streamgrid {

// A VideoContentService over the storage cluster: the file `video_id/name`
// lives on the replica set the placement gives its key.
//
// Writes stream every Append to all replicas in parallel (plus the target
// replicas during a migration), one chunk in flight, and Commit succeeds only
// when every replica stored the file durably; if any replica fails, the write
// fails with UNAVAILABLE and nothing is left visible (best effort: a replica
// that already committed when another failed at commit time is deleted again).
// Sloppy quorum: an owner that is not up (Cluster::Liveness) or whose stream
// does not start is replaced, for this write, by the next live node of the
// key's handoff order (Cluster::HandoffOrder), which stores the copy with a
// hint naming the owner (see docs/handoff.md); so a write needs as many live
// nodes as the key has owners, not those very owners. A replica failing
// mid-stream still fails the write: callers retry from their own copy of the
// data, and the retry routes around the failed node.
//
// Reads go to the first healthy replica (target owners first during a
// migration) and fail over to the next on a node error, also mid-stream, by
// resuming at the current offset on the next replica holding the same content.
// They fetch bounded pieces (`read_piece_bytes`, 1 MiB by default) into a
// buffer of their own, each a short Get completed at the node's pace, so a
// slow reader never keeps a node's stream open.
// Reads are verified: a replica answering DATA_LOSS (its node found the copy
// damaged) is reported for repair (Cluster::ReportDamage) and the piece comes
// from the next replica; a whole-file read is hashed, its last piece withheld
// until the SHA-256 matches, and a mismatch fails over the same way (or ends
// the read with DATA_LOSS if a damaged byte was already handed out). Range
// reads rely on the nodes' own block checks.
// Stat likewise. List asks every node and merges; Delete and DeleteVideo
// remove from every node concerned and fail with UNAVAILABLE if one of them is
// unreachable, so nothing is silently left behind (Delete also asks the other
// nodes that answer, for a stand-in's copy, best effort).
//
// ETags are `"` + SHA-256 + `"`, identical on every replica. When no replica
// answers, calls fail with UNAVAILABLE naming the nodes tried.
class NetworkVideoContentService : public VideoContentService {
 public:
  // `cluster` must outlive the service.
  explicit NetworkVideoContentService(
      Cluster& cluster, std::chrono::milliseconds probe_timeout = std::chrono::seconds(2),
      size_t read_piece_bytes = size_t{1} << 20)
      : cluster_(cluster), probe_timeout_(probe_timeout), read_piece_bytes_(read_piece_bytes) {}

  absl::StatusOr<std::unique_ptr<ContentWriter>> OpenWriter(std::string_view video_id,
                                                            std::string_view name) override;
  absl::StatusOr<std::unique_ptr<ContentReader>> OpenReader(
      std::string_view video_id, std::string_view name, uint64_t offset = 0,
      std::optional<uint64_t> length = std::nullopt) override;
  absl::StatusOr<ContentInfo> Stat(std::string_view video_id, std::string_view name) override;
  absl::StatusOr<std::vector<ContentInfo>> List(std::string_view video_id) override;
  absl::Status Delete(std::string_view video_id, std::string_view name) override;
  absl::Status DeleteVideo(std::string_view video_id) override;
  // Asks every node for its health (in parallel, `probe_timeout` each) and
  // marks each up or failing: OK when at least R nodes answer (stand-ins take
  // the copies of owners that are down), UNAVAILABLE otherwise.
  absl::Status CheckWritable() override;

 private:
  Cluster& cluster_;
  const std::chrono::milliseconds probe_timeout_;
  const size_t read_piece_bytes_;
};

}  // namespace streamgrid
