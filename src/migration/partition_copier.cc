#include "migration/partition_copier.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/strings.h"
#include "ring/placement.h"
#include "storage/storage_client.h"

namespace streamgrid {
namespace {

using storage::StoredFile;

// Pages of one listing at most: far above any node's size (pages hold up to
// 1000 files) yet an end to a listing that never would.
constexpr int kMaxListPages = 1'000'000;
// Entries of each kind Describe() names before it only counts the rest.
constexpr size_t kDescribeAtMost = 5;
// Deadline of the health check of a node the failure detector thinks down.
constexpr auto kDownProbeTimeout = std::chrono::seconds(2);
constexpr auto kDownProbeInterval = std::chrono::seconds(10);

std::string Key(const StoredFile& file) { return absl::StrCat(file.video_id, "/", file.name); }

std::string NodeError(std::string_view node_id, const absl::Status& status) {
  return absl::StrCat("node ", ToAbsl(node_id), ": ", status.message());
}

template <typename Map>
std::string DescribeMap(const std::string& what, const Map& map) {
  std::vector<std::string> parts;
  for (const auto& [key, why] : map) {
    if (parts.size() == kDescribeAtMost) {
      parts.push_back(absl::StrCat("and ", map.size() - kDescribeAtMost, " more"));
      break;
    }
    parts.push_back(absl::StrCat(key, " (", why, ")"));
  }
  return absl::StrCat(what, " ", absl::StrJoin(parts, ", "));
}

}  // namespace

std::string CopyOutcome::Describe() const {
  std::vector<std::string> parts;
  // Partitions grouped by their dead owners, so that a dead pair of nodes
  // reads as one line, not thousands.
  std::map<std::string, std::vector<uint32_t>> by_owners;
  for (const auto& [partition, owners] : unlisted) by_owners[owners].push_back(partition);
  for (const auto& [owners, list] : by_owners) {
    std::vector<std::string> numbers;
    for (uint32_t partition : list) {
      if (numbers.size() == kDescribeAtMost) {
        numbers.push_back(absl::StrCat("and ", list.size() - kDescribeAtMost, " more"));
        break;
      }
      numbers.push_back(absl::StrCat(partition));
    }
    parts.push_back(absl::StrCat("no live replica to copy from for partitions ",
                                 absl::StrJoin(numbers, ", "), " (owners ", owners,
                                 " down or not answering)"));
  }
  if (!unrecoverable.empty()) {
    parts.push_back(DescribeMap("no intact live copy of", unrecoverable));
  }
  if (!failed_destinations.empty()) {
    parts.push_back(DescribeMap("cannot copy to", failed_destinations));
  }
  std::set<std::string> failing;  // each source's error once
  for (const auto& [id, why] : unlisted_sources) failing.insert(why);
  if (!parts.empty() && !failing.empty()) {
    parts.push_back(absl::StrCat("unreachable: ", absl::StrJoin(failing, "; ")));
  }
  return absl::StrJoin(parts, "; ");
}

absl::Status PartitionCopier::List(const ClusterNode& node, std::vector<uint32_t> partitions,
                                   const SleepFn& sleep,
                                   const std::function<void(StoredFile)>& each) {
  storage::ListOptions options{.partitions = std::move(partitions),
                               .partition_bits = Placement::kPartitionBits};
  for (int page = 0; page < kMaxListPages; ++page) {
    // A zero sleep only asks whether the caller is stopping.
    if (!sleep(std::chrono::milliseconds(0))) return absl::CancelledError("stopping");
    absl::StatusOr<storage::StoredFilePage> listed = node.client->List(options);
    if (!listed.ok()) return listed.status();
    for (StoredFile& file : listed->files) each(std::move(file));
    if (listed->next_page_token.empty()) return absl::OkStatus();
    options.page_token = std::move(listed->next_page_token);
  }
  return absl::InternalError("listing did not end");
}

absl::StatusOr<CopyOutcome> PartitionCopier::Copy(const std::vector<PartitionCopy>& partitions,
                                                  const SleepFn& sleep) {
  CopyOutcome outcome;
  // Which partitions each node lists (as a source, a destination or both).
  std::map<std::string, std::vector<uint32_t>> to_list;
  for (const PartitionCopy& copy : partitions) {
    std::set<std::string> ids(copy.sources.begin(), copy.sources.end());
    ids.insert(copy.destinations.begin(), copy.destinations.end());
    ids.insert(copy.surplus.begin(), copy.surplus.end());
    for (const std::string& id : ids) to_list[id].push_back(copy.partition);
  }

  // node → key → what it holds. Down nodes are not asked: their calls would
  // only wait for deadlines.
  std::map<std::string, std::map<std::string, StoredFile>> held;
  std::map<std::string, std::string> unlisted_nodes;  // id → why
  for (const auto& [id, listed_partitions] : to_list) {
    std::optional<ClusterNode> node = cluster_.Node(id);
    if (!node) {
      unlisted_nodes[id] = "not in the cluster view";
      continue;
    }
    if (cluster_.Liveness(id).liveness == NodeLiveness::kDown) {
      // A quick health check first (at most once per kDownProbeInterval): a
      // listing of a dead node would only wait for its deadline, and a node
      // back up must not stay skipped because nothing else asked it since.
      const bool probe = ShouldProbeDown(id);
      absl::StatusOr<storage::NodeHealth> health =
          probe ? cluster_.ClientFor(node->address, kDownProbeTimeout)->Health()
                : absl::UnavailableError("down");
      if (!health.ok()) {
        unlisted_nodes[id] = absl::StrCat("node ", id, " is down");
        continue;
      }
      cluster_.MarkSuccess(id);
    }
    std::map<std::string, StoredFile>& files = held[id];
    absl::Status listed = List(*node, listed_partitions, sleep, [&](StoredFile file) {
      std::string key = Key(file);
      files.emplace(std::move(key), std::move(file));
    });
    if (absl::IsCancelled(listed) && !sleep(std::chrono::milliseconds(0))) return listed;
    if (listed.ok()) {
      cluster_.MarkSuccess(id);
      continue;
    }
    if (Cluster::IsNodeFailure(listed)) cluster_.MarkFailure(id, std::string(listed.message()));
    unlisted_nodes[id] = NodeError(id, listed);
    held.erase(id);
  }

  // Plan: per file, the good version, who holds it and which destinations
  // lack it. Then the copies run in parallel, then surplus copies go.
  std::vector<PlannedFile> files;
  std::vector<CopyTask> tasks;
  for (const PartitionCopy& copy : partitions) {
    // The partition's content: every key any live source holds, with the
    // sources holding each version.
    std::vector<std::string> live_sources;
    std::vector<std::string> dead_sources;
    for (const std::string& id : copy.sources) {
      (held.contains(id) ? live_sources : dead_sources).push_back(id);
    }
    for (const std::string& id : dead_sources) outcome.unlisted_sources[id] = unlisted_nodes[id];
    if (live_sources.empty()) {
      std::vector<std::string> owners = dead_sources;
      std::sort(owners.begin(), owners.end());
      outcome.unlisted[copy.partition] = absl::StrJoin(owners, ", ");
      continue;
    }
    std::map<std::string, std::vector<Holder>> versions;  // key → holders of any version
    for (const std::string& id : live_sources) {
      for (const auto& [key, file] : held[id]) {
        if (Placement::PartitionOfKey(key) != copy.partition) continue;
        versions[key].push_back({.node_id = id, .file = file});
      }
    }
    std::vector<std::string> destinations;
    for (const std::string& id : copy.destinations) {
      if (!held.contains(id)) {
        outcome.failed_destinations.try_emplace(id, unlisted_nodes[id]);
        continue;
      }
      destinations.push_back(id);
    }

    for (const auto& [key, holders] : versions) {
      // The good version: the SHA-256 most sources hold; among equals the
      // newest (a file replaced while an owner was away).
      std::map<std::string, std::pair<int, int64_t>> votes;  // sha256 → (holders, newest mtime)
      for (const Holder& h : holders) {
        auto& [count, newest] = votes[h.file.sha256];
        ++count;
        newest = std::max(newest, h.file.mtime_unix_nanos);
      }
      auto best = std::max_element(votes.begin(), votes.end(), [](const auto& a, const auto& b) {
        return a.second < b.second;
      });
      const std::string& good = best->first;
      PlannedFile planned{.key = key, .copy = &copy};
      for (const Holder& h : holders) {
        if (h.file.sha256 != good) continue;
        planned.holders.push_back(h.node_id);
        planned.want = h.file;
      }
      // Up nodes first; suspect ones are still worth a try after them.
      std::stable_partition(planned.holders.begin(), planned.holders.end(),
                            [&](const std::string& id) {
                              return cluster_.Liveness(id).liveness == NodeLiveness::kUp;
                            });
      // Whether every destination holds the good version (so that surplus
      // copies can go): all were listed, and each has it or gets it.
      for (const std::string& id : destinations) {
        auto there = held[id].find(key);
        if (there != held[id].end() && there->second.sha256 == good) {
          ++planned.holding;
        } else {
          tasks.push_back({.file = files.size(), .destination = id});
        }
      }
      files.push_back(std::move(planned));
    }
  }

  if (absl::Status copied = RunCopies(files, tasks, sleep, outcome); !copied.ok()) return copied;

  for (const PlannedFile& file : files) {
    if (file.holding == file.copy->destinations.size() && !file.copy->destinations.empty()) {
      DeleteStrays(file.key, file.copy->surplus, held, sleep, outcome);
    }
  }
  return outcome;
}

absl::Status PartitionCopier::RunCopies(std::vector<PlannedFile>& files,
                                        const std::vector<CopyTask>& tasks, const SleepFn& sleep,
                                        CopyOutcome& outcome) {
  std::mutex mu;  // guards outcome and files[].holding
  std::atomic<size_t> next{0};
  std::atomic<bool> cancelled{false};
  // Each worker takes the next task until none is left. Small files cost
  // round trips and an fsync each, not bandwidth, so several in flight keep
  // both the network and the disks busy.
  auto work = [&] {
    for (size_t i = next++; i < tasks.size() && !cancelled; i = next++) {
      const CopyTask& task = tasks[i];
      PlannedFile& file = files[task.file];
      {
        std::lock_guard lock(mu);
        if (outcome.failed_destinations.contains(task.destination)) continue;
      }
      std::optional<ClusterNode> destination = cluster_.Node(task.destination);
      if (!destination) continue;
      if (!AcquireSlot(sleep)) {
        cancelled = true;
        return;
      }
      bool destination_failed = false;
      absl::StatusOr<uint64_t> copied =
          CopyFile(file.want, file.holders, *destination, sleep, destination_failed);
      ReleaseSlot();
      if (absl::IsCancelled(copied.status()) && !sleep(std::chrono::milliseconds(0))) {
        cancelled = true;
        return;
      }
      std::lock_guard lock(mu);
      if (copied.ok()) {
        ++outcome.files_copied;
        outcome.bytes_copied += *copied;
        ++file.holding;
      } else if (absl::IsNotFound(copied.status())) {
        // Deleted meanwhile.
      } else if (destination_failed) {
        outcome.failed_destinations.try_emplace(task.destination,
                                                std::string(copied.status().message()));
      } else {
        outcome.unrecoverable[file.key] = std::string(copied.status().message());
      }
    }
  };
  const size_t workers = std::min<size_t>(parallelism_, tasks.size());
  std::vector<std::thread> threads;
  for (size_t w = 1; w < workers; ++w) threads.emplace_back(work);
  work();
  for (std::thread& t : threads) t.join();
  if (cancelled) return absl::CancelledError("stopping");
  return absl::OkStatus();
}

void PartitionCopier::DeleteStrays(const std::string& key, const std::vector<std::string>& surplus,
                                   std::map<std::string, std::map<std::string, StoredFile>>& held,
                                   const SleepFn& sleep, CopyOutcome& outcome) {
  const int64_t now_nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
  const int64_t grace_nanos =
      std::chrono::duration_cast<std::chrono::nanoseconds>(stray_grace_).count();
  for (const std::string& id : surplus) {
    auto node_files = held.find(id);
    if (node_files == held.end()) continue;  // not listed (down)
    auto stray = node_files->second.find(key);
    if (stray == node_files->second.end()) continue;
    if (now_nanos - stray->second.mtime_unix_nanos < grace_nanos) continue;
    if (!sleep(std::chrono::milliseconds(0))) return;
    std::optional<ClusterNode> node = cluster_.Node(id);
    if (!node) continue;
    absl::Status deleted = node->client->Delete(stray->second.video_id, stray->second.name);
    if (deleted.ok()) {
      ++outcome.strays_deleted;
    } else if (!absl::IsNotFound(deleted)) {
      spdlog::warn("repair: cannot delete the surplus copy of {} on node {}: {}", key, id,
                   deleted.ToString());
    }
  }
}

bool PartitionCopier::ShouldProbeDown(const std::string& id) {
  std::lock_guard lock(probe_mu_);
  const auto now = std::chrono::steady_clock::now();
  auto [probed, first] = down_probed_.try_emplace(id, now);
  const bool probe = first || now - probed->second >= kDownProbeInterval;
  if (probe) probed->second = now;
  return probe;
}

bool PartitionCopier::AcquireSlot(const SleepFn& sleep) {
  std::unique_lock lock(slots_mu_);
  while (slots_taken_ >= parallelism_) {
    // Slots come back as copies end, and a stopping caller's copies end
    // within a chunk; the bounded wait only re-asks whether to stop.
    slot_freed_.wait_for(lock, std::chrono::milliseconds(50));
    if (slots_taken_ >= parallelism_) {
      lock.unlock();
      const bool go_on = sleep(std::chrono::milliseconds(0));
      lock.lock();
      if (!go_on) return false;
    }
  }
  ++slots_taken_;
  return true;
}

void PartitionCopier::ReleaseSlot() {
  {
    std::lock_guard lock(slots_mu_);
    --slots_taken_;
  }
  slot_freed_.notify_one();
}

bool PartitionCopier::Pulls(const std::string& destination) {
  // A throttled copy is relayed: the relay paces every chunk.
  if (!node_to_node_ || throttle_.limited()) return false;
  std::lock_guard lock(pull_mu_);
  return !relay_only_.contains(destination);
}

absl::StatusOr<uint64_t> PartitionCopier::Settle(const StoredFile& want,
                                                 const std::vector<std::string>& holders,
                                                 const ClusterNode& destination,
                                                 const StoredFile& stored) {
  // A video deleted while its file was in flight must not come back here:
  // if no holder has the file any more, remove the copy.
  for (const std::string& h : holders) {
    std::optional<ClusterNode> n = cluster_.Node(h);
    if (n && !absl::IsNotFound(n->client->Stat(want.video_id, want.name).status())) {
      return stored.size;
    }
  }
  destination.client->Delete(want.video_id, want.name).IgnoreError();
  return absl::NotFoundError("deleted while copying");
}

absl::StatusOr<uint64_t> PartitionCopier::CopyFile(const StoredFile& want,
                                                   const std::vector<std::string>& holders,
                                                   const ClusterNode& destination,
                                                   const SleepFn& sleep, bool& destination_failed) {
  std::vector<std::string> errors;
  // Set when pulls failed in a way a relay may not (the destination cannot
  // reach or is refused by the holders): a relay that works then makes
  // this destination a relay-only one.
  bool pull_failed = false;
  if (Pulls(destination.id)) {
    bool relay = false;
    bool pull_missing = true;
    for (const std::string& holder : holders) {
      std::optional<ClusterNode> node = cluster_.Node(holder);
      if (!node) continue;
      // Node to node: the destination reads from the holder itself, so the
      // bytes cross the network once instead of through this process.
      absl::StatusOr<storage::PullResult> pulled =
          destination.client->Pull({.video_id = want.video_id,
                                    .name = want.name,
                                    .source_address = node->address,
                                    .size = want.size,
                                    .sha256 = want.sha256},
                                   [&] { return !sleep(std::chrono::milliseconds(0)); });
      if (pulled.ok() && pulled->source_error.ok()) {
        return Settle(want, holders, destination, pulled->file);
      }
      if (pulled.ok()) {
        const absl::Status& error = pulled->source_error;
        if (absl::IsNotFound(error)) continue;  // deleted, or quarantined since the listing
        pull_missing = false;
        errors.push_back(std::string(error.message()));  // it names the holder
        if (!absl::IsDataLoss(error)) relay = true;
        continue;
      }
      if (absl::IsCancelled(pulled.status()) && !sleep(std::chrono::milliseconds(0))) {
        return absl::CancelledError("stopping");
      }
      if (!absl::IsUnimplemented(pulled.status())) {
        destination_failed = true;
        return absl::UnavailableError(NodeError(destination.id, pulled.status()));
      }
      // A node that cannot call others (e.g. TLS without a CA): relay.
      spdlog::info("node {} does not pull copies ({}); relaying them", destination.id,
                   std::string(pulled.status().message()));
      std::lock_guard lock(pull_mu_);
      relay_only_.insert(destination.id);
      relay = true;
      break;
    }
    if (!relay) {
      if (pull_missing) return absl::NotFoundError("deleted before copying");
      return absl::DataLossError(absl::StrCat("copy of ", want.video_id, "/", want.name, ": ",
                                              absl::StrJoin(errors, "; ")));
    }
    pull_failed = Pulls(destination.id);
    errors.clear();
  }
  bool missing = true;
  bool all_damaged = true;
  for (const std::string& holder : holders) {
    std::optional<ClusterNode> node = cluster_.Node(holder);
    if (!node) continue;
    // The destination checks the SHA-256 before it commits: no pass here.
    // The holder's block digests are passed on, so the destination checks
    // each block against them instead of hashing the whole file as well.
    auto get = node->client->OpenGet(want.video_id, want.name, /*offset=*/0, /*length=*/0,
                                     /*verify=*/false, /*block_digests=*/true);
    if (!get.ok()) {
      if (absl::IsNotFound(get.status())) continue;  // deleted, or quarantined since the listing
      missing = false;
      if (!absl::IsDataLoss(get.status())) all_damaged = false;
      if (Cluster::IsNodeFailure(get.status()) && !absl::IsDataLoss(get.status())) {
        cluster_.MarkFailure(holder, std::string(get.status().message()));
      }
      errors.push_back(NodeError(holder, get.status()));
      continue;
    }
    missing = false;
    const StoredFile info = (*get)->file();
    if (info.sha256 != want.sha256) {
      // Replaced since the listing: the next pass sees the new version.
      errors.push_back(absl::StrCat("node ", holder, ": changed since it was listed"));
      all_damaged = false;
      continue;
    }
    // The receiving node checks size and SHA-256 before it commits; the copy
    // keeps the holder's block algorithm and digests.
    const bool digests = (*get)->block_digests_follow();
    auto put = destination.client->StartPut(want.video_id, want.name,
                                            {.size = info.size,
                                             .sha256 = info.sha256,
                                             .block_sha256_follow = digests,
                                             .block_algorithm = (*get)->block_algorithm()});
    if (!put.ok()) {
      destination_failed = true;
      return absl::UnavailableError(NodeError(destination.id, put.status()));
    }
    absl::Status source_error;
    size_t digests_passed = 0;
    while (true) {
      absl::StatusOr<std::span<const char>> chunk = (*get)->Next();
      if (!chunk.ok()) {
        source_error = chunk.status();
        break;
      }
      if (chunk->empty()) break;
      if (!throttle_.Acquire(chunk->size(), [&](std::chrono::nanoseconds wait) {
            return sleep(std::chrono::ceil<std::chrono::milliseconds>(wait));
          })) {
        (*put)->Cancel();
        return absl::CancelledError("stopping");
      }
      if (absl::Status s = (*put)->Append(*chunk); !s.ok()) {
        destination_failed = true;
        return absl::UnavailableError(NodeError(destination.id, s));
      }
      // The digests of the blocks this chunk starts (they came with it).
      if (digests) {
        (*put)->AddBlockDigests((*get)->block_digests().subspan(digests_passed));
        digests_passed = (*get)->block_digests().size();
      }
    }
    if (!source_error.ok()) {
      (*put)->Cancel();
      if (!absl::IsDataLoss(source_error)) all_damaged = false;
      errors.push_back(NodeError(holder, source_error));
      continue;
    }
    absl::StatusOr<StoredFile> stored = (*put)->Commit();
    if (!stored.ok()) {
      destination_failed = true;
      return absl::UnavailableError(NodeError(destination.id, stored.status()));
    }
    if (pull_failed) {
      spdlog::warn(
          "node {} could not pull {}/{} from its holders but a relay could; relaying its "
          "copies from now on",
          destination.id, want.video_id, want.name);
      std::lock_guard lock(pull_mu_);
      relay_only_.insert(destination.id);
    }
    return Settle(want, holders, destination, *stored);
  }
  if (missing) return absl::NotFoundError("deleted before copying");
  const std::string what =
      absl::StrCat("copy of ", want.video_id, "/", want.name, ": ", absl::StrJoin(errors, "; "));
  if (all_damaged) return absl::DataLossError(what);
  return absl::UnavailableError(what);
}

}  // namespace streamgrid
