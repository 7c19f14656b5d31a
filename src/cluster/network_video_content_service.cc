#include "cluster/network_video_content_service.h"

#include <algorithm>
#include <future>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cluster/piecewise_reader.h"
#include "cluster/replica_calls.h"
#include "cluster/replicated_writer.h"
#include "common/names.h"
#include "common/public_error.h"
#include "common/strings.h"

namespace streamgrid {
namespace {

using cluster_internal::Describe;
using cluster_internal::InfoOf;
using cluster_internal::NoNodeAnswered;
using cluster_internal::ReportDamaged;
using storage::StorageClient;
using storage::StoredFile;

// More pages than any video has files; a node answering forever is a bug.
constexpr int kMaxListPages = 100'000;

absl::Status Validate(std::string_view video_id) {
  if (!IsValidVideoId(video_id)) return absl::InvalidArgumentError("invalid video id");
  return absl::OkStatus();
}

absl::Status Validate(std::string_view video_id, std::string_view name) {
  if (absl::Status s = Validate(video_id); !s.ok()) return s;
  if (!IsValidContentName(name)) return absl::InvalidArgumentError("invalid content name");
  return absl::OkStatus();
}

// A reader of an empty range.
class EmptyReader : public ContentReader {
 public:
  explicit EmptyReader(ContentInfo info) : info_(std::move(info)) {}
  absl::StatusOr<size_t> Read(std::span<char>) override { return 0; }
  const ContentInfo& info() const override { return info_; }

 private:
  const ContentInfo info_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ContentWriter>> NetworkVideoContentService::OpenWriter(
    std::string_view video_id, std::string_view name) {
  if (absl::Status s = Validate(video_id, name); !s.ok()) return s;
  Cluster::WritePlan plan = cluster_.PlanWrite(video_id, name);
  if (absl::Status fence = cluster_.WriteFence(); !fence.ok()) return fence;
  if (plan.nodes.empty()) return absl::UnavailableError("no storage nodes");
  return cluster_internal::StartReplicatedWrite(cluster_, video_id, name, std::move(plan));
}

absl::StatusOr<std::unique_ptr<ContentReader>> NetworkVideoContentService::OpenReader(
    std::string_view video_id, std::string_view name, uint64_t offset,
    std::optional<uint64_t> length) {
  if (absl::Status s = Validate(video_id, name); !s.ok()) return s;
  if (length && *length == 0) {
    // The node reads length 0 as "to the end"; an empty range only needs the
    // file's info (and the offset check).
    absl::StatusOr<ContentInfo> info = Stat(video_id, name);
    if (!info.ok()) return info.status();
    if (offset > info->size) return absl::OutOfRangeError("offset is past the end of the file");
    return std::make_unique<EmptyReader>(*std::move(info));
  }
  return cluster_internal::OpenPiecewiseReader(cluster_, std::string(video_id), std::string(name),
                                               cluster_.ReadNodes(video_id, name),
                                               read_piece_bytes_, offset, length);
}

absl::StatusOr<ContentInfo> NetworkVideoContentService::Stat(std::string_view video_id,
                                                             std::string_view name) {
  if (absl::Status s = Validate(video_id, name); !s.ok()) return s;
  std::vector<std::string> errors;
  bool not_found = false;
  for (const ClusterNode& node : cluster_.ReadNodes(video_id, name)) {
    absl::StatusOr<StoredFile> file = node.client->Stat(video_id, name);
    if (file.ok()) {
      cluster_.MarkSuccess(node.id);
      return InfoOf(*file);
    }
    if (absl::IsNotFound(file.status())) {
      cluster_.MarkSuccess(node.id);
      not_found = true;
      continue;
    }
    if (absl::IsDataLoss(file.status())) {
      // The node answered that its copy is damaged: another replica may
      // still describe the file.
      cluster_.MarkSuccess(node.id);
      ReportDamaged(cluster_, node, video_id, name,
                    absl::StrCat("stat: ", file.status().message()));
    } else if (Cluster::IsNodeFailure(file.status())) {
      cluster_.MarkFailure(node.id);
    }
    errors.push_back(Describe(node, file.status()));
  }
  const std::string what = absl::StrCat("stat ", ToAbsl(video_id), "/", ToAbsl(name));
  if (not_found) return absl::NotFoundError(what + ": no such file");
  return NoNodeAnswered(what, errors);
}

absl::StatusOr<std::vector<ContentInfo>> NetworkVideoContentService::List(
    std::string_view video_id) {
  if (absl::Status s = Validate(video_id); !s.ok()) return s;
  std::shared_ptr<const ClusterState> state = cluster_.state();
  int replicas = state->current.replication_factor();
  if (state->target) replicas = std::min(replicas, state->target->replication_factor());
  // A video's files spread over the whole ring: ask every node, keep the newest
  // copy of each name. Fewer than R nodes down still leaves a copy of each.
  std::map<std::string, std::pair<int64_t, ContentInfo>> files;
  std::vector<std::string> errors;
  for (const ClusterNode& node : cluster_.AllNodes()) {
    std::string token;
    absl::Status status;
    for (int page = 0; page < kMaxListPages; ++page) {
      absl::StatusOr<storage::StoredFilePage> listed = node.client->List(video_id, token);
      if (!listed.ok()) {
        status = listed.status();
        break;
      }
      for (const StoredFile& file : listed->files) {
        auto [it, inserted] = files.try_emplace(file.name, file.mtime_unix_nanos, InfoOf(file));
        if (!inserted && file.mtime_unix_nanos > it->second.first) {
          it->second = {file.mtime_unix_nanos, InfoOf(file)};
        }
      }
      token = std::move(listed->next_page_token);
      if (token.empty()) break;
    }
    if (status.ok()) {
      cluster_.MarkSuccess(node.id);
    } else {
      if (Cluster::IsNodeFailure(status)) cluster_.MarkFailure(node.id);
      errors.push_back(Describe(node, status));
    }
  }
  if (static_cast<int>(errors.size()) >= replicas) {
    return NoNodeAnswered(absl::StrCat("list ", ToAbsl(video_id)), errors);
  }
  std::vector<ContentInfo> result;
  result.reserve(files.size());
  for (auto& [name, entry] : files) result.push_back(std::move(entry.second));
  return result;
}

absl::Status NetworkVideoContentService::Delete(std::string_view video_id, std::string_view name) {
  if (absl::Status s = Validate(video_id, name); !s.ok()) return s;
  bool deleted = false;
  std::vector<std::string> errors;
  for (const ClusterNode& node : cluster_.WriteNodes(video_id, name)) {
    absl::Status s = node.client->Delete(video_id, name);
    if (s.ok() || absl::IsNotFound(s)) {
      cluster_.MarkSuccess(node.id);
      deleted = deleted || s.ok();
      continue;
    }
    if (Cluster::IsNodeFailure(s)) cluster_.MarkFailure(node.id);
    errors.push_back(Describe(node, s));
  }
  // A stand-in may hold a copy (and a hint that would hand it back to an
  // owner): ask the other nodes too, best effort, since a copy only a
  // stand-in holds is not one the owners would serve.
  const std::vector<ClusterNode> owners = cluster_.WriteNodes(video_id, name);
  for (const ClusterNode& node : cluster_.AllNodes()) {
    if (std::any_of(owners.begin(), owners.end(),
                    [&](const ClusterNode& owner) { return owner.id == node.id; })) {
      continue;
    }
    if (!cluster_.IsHealthy(node.id)) continue;
    absl::Status s = node.client->Delete(video_id, name);
    deleted = deleted || s.ok();
    if (Cluster::IsNodeFailure(s)) cluster_.MarkFailure(node.id, s.ToString());
  }
  const std::string what = absl::StrCat("delete ", ToAbsl(video_id), "/", ToAbsl(name));
  // A replica left behind would bring the file back: say so.
  if (!errors.empty()) {
    return absl::UnavailableError(
        absl::StrCat(what, ": not every replica answered (", absl::StrJoin(errors, "; "), ")"));
  }
  if (!deleted) return absl::NotFoundError(what + ": no such file");
  return absl::OkStatus();
}

absl::Status NetworkVideoContentService::DeleteVideo(std::string_view video_id) {
  if (absl::Status s = Validate(video_id); !s.ok()) return s;
  std::vector<std::string> errors;
  for (const ClusterNode& node : cluster_.AllNodes()) {
    absl::StatusOr<uint64_t> deleted = node.client->DeleteVideo(video_id);
    if (deleted.ok()) {
      cluster_.MarkSuccess(node.id);
      continue;
    }
    if (Cluster::IsNodeFailure(deleted.status())) cluster_.MarkFailure(node.id);
    errors.push_back(Describe(node, deleted.status()));
  }
  if (!errors.empty()) {
    return absl::UnavailableError(absl::StrCat("delete video ", ToAbsl(video_id),
                                               ": not every node answered (",
                                               absl::StrJoin(errors, "; "), ")"));
  }
  return absl::OkStatus();
}
absl::Status NetworkVideoContentService::CheckWritable() {
  if (absl::Status fence = cluster_.WriteFence(); !fence.ok()) return fence;
  std::vector<ClusterNode> nodes = cluster_.AllNodes();
  std::vector<std::future<absl::StatusOr<storage::NodeHealth>>> answers;
  for (const ClusterNode& node : nodes) {
    answers.push_back(std::async(std::launch::async, [this, node] {
      StorageClient client(node.channel, {.call_timeout = probe_timeout_});
      return client.Health();
    }));
  }
  std::vector<std::string> down;
  size_t up = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    absl::StatusOr<storage::NodeHealth> health = answers[i].get();
    if (health.ok()) {
      cluster_.MarkSuccess(nodes[i].id);
      ++up;
    } else {
      if (Cluster::IsNodeFailure(health.status())) {
        cluster_.MarkFailure(nodes[i].id, health.status().ToString());
      }
      down.push_back(Describe(nodes[i], health.status()));
    }
  }
  // Sloppy quorum: a copy meant for a node that is down goes to a stand-in,
  // so R live nodes anywhere are enough (during a migration a key may have
  // one owner more, and the writer says so if it lacks a node).
  std::shared_ptr<const ClusterState> state = cluster_.state();
  size_t needed = static_cast<size_t>(state->current.replication_factor());
  if (state->target) {
    needed = std::max(needed, static_cast<size_t>(state->target->replication_factor()));
  }
  if (up >= needed) return absl::OkStatus();
  return WithPublicMessage(
      absl::UnavailableError(
          absl::StrCat("new videos need ", needed, " storage nodes up to be stored, and only ", up,
                       " are (", absl::StrJoin(down, "; "), "); try again when one is back")),
      "not enough storage nodes are up to store new videos; try again when one is back");
}

}  // namespace streamgrid
