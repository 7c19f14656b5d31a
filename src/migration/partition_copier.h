#pragma once

// Copying whole partitions between storage nodes: the data-moving part of a
// migration (a partition gains an owner) and of repair (an owner lost or
// damaged some of its copies).
//
// For each partition the caller names the nodes whose copies make up its
// content (the sources: the partition's owners) and the nodes that must end up
// holding all of it (the destinations). The copier lists every source and
// destination that is live, decides per file which version is the good one
// (the SHA-256 most sources agree on; among equals the newest), and streams it
// to each destination that lacks it or holds something else, from any live
// source holding the good version. The receiving node checks size and SHA-256
// before it commits, so a damaged source can never plant a bad copy. Nodes
// the cluster's failure detector considers down are not even tried, so a dead
// node costs nothing but is named in what the copier reports.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cluster/cluster.h"
#include "migration/throttle.h"
#include "storage/stored_file.h"

namespace streamgrid {

// One partition to copy and where.
struct PartitionCopy {
  uint32_t partition = 0;
  std::vector<std::string> sources;       // node ids whose copies are its content
  std::vector<std::string> destinations;  // node ids that must hold every file of it
  // Node ids whose copies of it are surplus (strays on non-owners): a file
  // there is deleted once every destination holds its good version, if it is
  // older than the copier's stray grace. Never deleted while a destination is
  // down, so a copy standing in for a down owner stays.
  std::vector<std::string> surplus;
};

// What a Copy() did and what it could not do.
struct CopyOutcome {
  uint64_t files_copied = 0;
  uint64_t bytes_copied = 0;
  uint64_t strays_deleted = 0;  // surplus copies removed
  // Partitions none of whose sources could be listed → those sources' ids
  // ("node0, node1"). Nothing of them was copied.
  std::map<uint32_t, std::string> unlisted;
  // Destinations that could not be listed or did not take a copy → the error;
  // their partitions may be incomplete.
  std::map<std::string, std::string> failed_destinations;
  // Files ("video_id/name") that some source lists but no source could serve
  // intact (every holder answered DATA_LOSS, or failed) → the errors.
  std::map<std::string, std::string> unrecoverable;
  // Sources that could not be listed → why (their partitions were listed on
  // other sources where there were any).
  std::map<std::string, std::string> unlisted_sources;

  // True when every partition is complete on every destination.
  bool complete() const {
    return unlisted.empty() && failed_destinations.empty() && unrecoverable.empty();
  }
  // A one-line account of what is missing, naming partitions, files and nodes
  // (at most a few of each); "" when complete().
  std::string Describe() const;
};

// Thread-safe: several Copy() calls may run at once (on disjoint partitions,
// e.g. a migration's consecutive batches), and together they make at most
// parallelism() copies at a time, on threads of their own.
class PartitionCopier {
 public:
  // Waits up to the duration, false if the caller is stopping.
  using SleepFn = std::function<bool(std::chrono::milliseconds)>;

  // `cluster` resolves node ids (current and target placements) and knows
  // which are down; `throttle` bounds the bytes copied (shared with others).
  // Both must outlive the copier.
  PartitionCopier(Cluster& cluster, Throttle& throttle) : cluster_(cluster), throttle_(throttle) {}

  // Surplus copies younger than this are left alone (a write or a hand-back
  // may still be using them). Default: kDefaultStrayGrace.
  static constexpr std::chrono::minutes kDefaultStrayGrace{10};
  void set_stray_grace(std::chrono::milliseconds grace) { stray_grace_ = grace; }

  // Whether destinations pull copies straight from a holder (the Pull RPC)
  // rather than through this process; on by default. Throttled copies, and
  // copies to a node that answers UNIMPLEMENTED, are relayed anyway.
  void set_node_to_node(bool on) { node_to_node_ = on; }

  // Files copied at once at most, over every Copy() running. Default:
  // kDefaultParallelism. Set before the first Copy().
  static constexpr int kDefaultParallelism = 8;
  void set_parallelism(int files) { parallelism_ = std::max(1, files); }
  int parallelism() const { return parallelism_; }

  // Makes every destination of `partitions` hold every file of them (see the
  // file comment). CANCELLED when `sleep` returns false (the caller stops);
  // otherwise the outcome, with what could not be done in it. Memory grows
  // with the number of files listed: pass batches of partitions.
  absl::StatusOr<CopyOutcome> Copy(const std::vector<PartitionCopy>& partitions,
                                   const SleepFn& sleep);

 private:
  struct Holder {
    std::string node_id;
    storage::StoredFile file;
  };
  // A file of a partition as Copy() plans it.
  struct PlannedFile {
    std::string key;
    const PartitionCopy* copy = nullptr;
    storage::StoredFile want;          // the good version
    std::vector<std::string> holders;  // nodes holding it, up ones first
    size_t holding = 0;                // destinations holding it (or given it)
  };
  // One copy to make: a planned file to a destination lacking it.
  struct CopyTask {
    size_t file = 0;  // index into the planned files
    std::string destination;
  };
  // Makes `tasks`' copies, up to parallelism_ at once, recording in `outcome`
  // and in each file's `holding`. CANCELLED when `sleep` says stop.
  absl::Status RunCopies(std::vector<PlannedFile>& files, const std::vector<CopyTask>& tasks,
                         const SleepFn& sleep, CopyOutcome& outcome);
  // Every file of `partitions` on `node`, page by page.
  absl::Status List(const ClusterNode& node, std::vector<uint32_t> partitions, const SleepFn& sleep,
                    const std::function<void(storage::StoredFile)>& each);
  // Copies `want` from one of `holders` to `destination`. NOT_FOUND when no
  // holder has it any more (deleted meanwhile; nothing is left behind),
  // DATA_LOSS when every holder that answered had it damaged, UNAVAILABLE
  // naming the node otherwise; `destination_failed` tells whether the
  // destination was at fault.
  absl::StatusOr<uint64_t> CopyFile(const storage::StoredFile& want,
                                    const std::vector<std::string>& holders,
                                    const ClusterNode& destination, const SleepFn& sleep,
                                    bool& destination_failed);

  // Whether copies to `destination` go node to node (see set_node_to_node).
  bool Pulls(const std::string& destination);
  // Takes one of the parallelism_ copy slots shared by every Copy(); false
  // (no slot taken) when `sleep` says stop. ReleaseSlot() gives it back.
  bool AcquireSlot(const SleepFn& sleep);
  void ReleaseSlot();
  // Whether to health-check `id`, which the failure detector has down, now
  // (at most once per kDownProbeInterval).
  bool ShouldProbeDown(const std::string& id);
  // After `stored` was committed on `destination`: its size, or NOT_FOUND
  // (and the copy removed) when no holder has the file any more.
  absl::StatusOr<uint64_t> Settle(const storage::StoredFile& want,
                                  const std::vector<std::string>& holders,
                                  const ClusterNode& destination,
                                  const storage::StoredFile& stored);

  // Deletes `key` from the `surplus` nodes that listed it (in `held`), when
  // old enough.
  void DeleteStrays(const std::string& key, const std::vector<std::string>& surplus,
                    std::map<std::string, std::map<std::string, storage::StoredFile>>& held,
                    const SleepFn& sleep, CopyOutcome& outcome);

  Cluster& cluster_;
  Throttle& throttle_;
  std::chrono::milliseconds stray_grace_ = kDefaultStrayGrace;
  int parallelism_ = kDefaultParallelism;
  bool node_to_node_ = true;
  std::mutex pull_mu_;
  std::set<std::string> relay_only_;  // guarded by pull_mu_: answered UNIMPLEMENTED
  std::mutex slots_mu_;
  std::condition_variable slot_freed_;
  int slots_taken_ = 0;  // guarded by slots_mu_
  std::mutex probe_mu_;
  // When each node the failure detector has down was last health-checked.
  std::map<std::string, std::chrono::steady_clock::time_point> down_probed_;  // probe_mu_
};

}  // namespace streamgrid
