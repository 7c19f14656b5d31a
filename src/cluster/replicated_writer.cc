#include "cluster/replicated_writer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cluster/fan_out.h"
#include "cluster/replica_calls.h"
#include "common/public_error.h"
#include "common/strings.h"
#include "storage/block_checksum.h"
#include "storage/checksum_store.h"
#include "storage/sha256.h"

namespace streamgrid::cluster_internal {
namespace {

using storage::StorageClient;
using storage::StoredFile;

// A write to every replica of a key; see NetworkVideoContentService.
class ReplicatedWriter : public ContentWriter {
 public:
  struct Replica {
    ClusterNode node;
    // The owner this node stands in for (sloppy quorum); empty for an owner.
    std::string hinted_for;
    std::unique_ptr<StorageClient::PutStream> stream;
    absl::Status status;
    StoredFile stored;
  };

  ReplicatedWriter(Cluster& cluster, std::string video_id, std::string name,
                   std::vector<Replica> replicas, std::shared_ptr<const void> token)
      : cluster_(cluster),
        video_id_(std::move(video_id)),
        name_(std::move(name)),
        replicas_(std::move(replicas)),
        token_(std::move(token)),
        fan_out_(replicas_.size()) {}

  ~ReplicatedWriter() override {
    if (!finished_) Abandon();
  }

  // Starts a stream to each owner of `plan` that is up, in parallel, and for
  // each other owner (not up, or its stream failed to start) to the next live
  // stand-in of the plan, hinted for that owner. UNAVAILABLE when there are
  // not as many live nodes as owners; an owner's answer that is not a node
  // failure (e.g. INVALID_ARGUMENT) fails the write.
  static absl::StatusOr<std::unique_ptr<ContentWriter>> Start(Cluster& cluster,
                                                              std::string_view video_id,
                                                              std::string_view name,
                                                              Cluster::WritePlan plan) {
    std::vector<Replica> replicas;
    for (ClusterNode& node : plan.nodes) replicas.push_back({.node = std::move(node)});
    auto writer =
        std::make_unique<ReplicatedWriter>(cluster, std::string(video_id), std::string(name),
                                           std::move(replicas), std::move(plan.token));
    writer->fan_out_.Run([&](size_t i) {
      Replica& r = writer->replicas_[i];
      const NodeLivenessInfo liveness = cluster.Liveness(r.node.id);
      if (liveness.liveness != NodeLiveness::kUp) {
        r.status = absl::UnavailableError(
            absl::StrCat("node is ", ToAbsl(NodeLivenessName(liveness.liveness)),
                         liveness.last_error.empty() ? "" : ": ", liveness.last_error));
        return;
      }
      // The bytes are hashed once here for every replica (see Append).
      const storage::PutOptions put{.sha256_at_commit = true,
                                    .block_sha256_follow = true,
                                    .block_algorithm = storage::kDefaultBlockAlgorithm};
      auto stream = r.node.client->StartPut(video_id, name, put);
      // The channel may still be backing off from an outage the node is over:
      // the owner is the best place for its copy, so give it one prompt
      // reconnect before a stand-in takes it.
      if (absl::IsUnavailable(stream.status()) &&
          Cluster::Reconnect(r.node, std::chrono::seconds(2))) {
        stream = r.node.client->StartPut(video_id, name, put);
      }
      if (stream.ok()) {
        r.stream = *std::move(stream);
      } else {
        r.status = stream.status();
        if (Cluster::IsNodeFailure(r.status)) cluster.MarkFailure(r.node.id, r.status.ToString());
      }
    });
    if (absl::Status s = writer->StandIn(plan.stand_ins); !s.ok()) return s;
    if (absl::Status s = writer->CheckReplicas(); !s.ok()) return s;
    return writer;
  }

  absl::Status Append(std::span<const char> data) override {
    if (finished_) return *finished_;
    if (cancelled_) return Cancelled();
    SendBlockDigests();
    // One SHA-256 of the whole file (its identity) and one XXH3-128 of each
    // block for all replicas, on the first two replicas' threads while the
    // sends run: each node then hashes only its blocks (checked against
    // ours, with the fast block checksum), not the whole file.
    const size_t block_thread = replicas_.size() > 1 ? 1 : 0;
    // One copy of the bytes, referenced by every replica's messages (not a
    // copy per replica into its own protobuf, and another when serialized).
    const grpc::Slice shared(data.data(), data.size());
    fan_out_.Run([&](size_t i) {
      if (i == 0) hasher_.Update(data);
      if (i == block_thread) HashBlocks(data);
      replicas_[i].status = replicas_[i].stream->AppendShared(shared);
    });
    // The streams' CANCELLED then says nothing about the nodes' health.
    if (cancelled_) return Cancelled();
    return CheckReplicas();
  }

  void Cancel() override {
    cancelled_ = true;
    // The streams were all started by Start() and live as long as the
    // writer; Interrupt() is the one call on them that any thread may make.
    for (Replica& r : replicas_) {
      if (r.stream) r.stream->Interrupt();
    }
  }

  absl::StatusOr<ContentInfo> Commit() override {
    if (finished_) {
      return finished_->ok() ? absl::FailedPreconditionError("already committed") : *finished_;
    }
    if (cancelled_) return Cancelled();
    const std::string sha256 = hasher_.FinishHex();
    if (block_filled_ > 0) {
      new_blocks_.push_back(block_hasher_.Finish());
      block_filled_ = 0;
    }
    SendBlockDigests();
    fan_out_.Run([&](size_t i) {
      Replica& r = replicas_[i];
      absl::StatusOr<StoredFile> stored = r.stream->Commit(sha256);
      if (stored.ok()) {
        r.stored = *std::move(stored);
      } else {
        r.status = stored.status();
      }
    });
    if (cancelled_ && !std::all_of(replicas_.begin(), replicas_.end(),
                                   [](const Replica& r) { return r.status.ok(); })) {
      Cancelled().IgnoreError();
      DeleteCommitted();
      return *finished_;
    }
    if (absl::Status s = CheckReplicas(); !s.ok()) return s;
    for (const Replica& r : replicas_) {
      cluster_.MarkSuccess(r.node.id);
      // Every replica hashed the same bytes; a difference means a bug or
      // corruption, and the file must not be served with two ETags.
      if (r.stored.sha256 != replicas_[0].stored.sha256 ||
          r.stored.size != replicas_[0].stored.size) {
        finished_ = absl::DataLossError(
            absl::StrCat("replicas of ", video_id_, "/", name_, " differ after commit"));
        DeleteCommitted();
        return *finished_;
      }
    }
    finished_ = absl::FailedPreconditionError("already committed");
    return InfoOf(replicas_[0].stored);
  }

 private:
  // Digests of every kChecksumBlockBytes block, as the bytes go by (the
  // blocks the nodes check and record).
  void HashBlocks(std::span<const char> data) {
    while (!data.empty()) {
      const size_t take =
          std::min<uint64_t>(data.size(), storage::kChecksumBlockBytes - block_filled_);
      block_hasher_.Update(data.first(take));
      block_filled_ += take;
      data = data.subspan(take);
      if (block_filled_ == storage::kChecksumBlockBytes) {
        new_blocks_.push_back(block_hasher_.Finish());
        block_filled_ = 0;
      }
    }
  }

  // Hands the block digests computed so far to every stream (between
  // parallel steps: a stream is used by one thread at a time).
  void SendBlockDigests() {
    if (new_blocks_.empty()) return;
    for (Replica& r : replicas_) r.stream->AddBlockDigests(new_blocks_);
    new_blocks_.clear();
  }

  // Replaces each owner whose stream did not start for a node failure (or
  // that is not up) by the next stand-in in `stand_ins` that is up and
  // starts a stream hinted for that owner. Other errors are left for
  // CheckReplicas.
  absl::Status StandIn(const std::vector<ClusterNode>& stand_ins) {
    size_t next = 0;
    std::vector<std::string> errors;
    for (Replica& r : replicas_) {
      if (r.status.ok() || !Cluster::IsNodeFailure(r.status)) continue;
      errors.push_back(Describe(r.node, r.status));
      const std::string owner = r.node.id;
      bool placed = false;
      while (!placed && next < stand_ins.size()) {
        const ClusterNode& node = stand_ins[next++];
        if (cluster_.Liveness(node.id).liveness != NodeLiveness::kUp) continue;
        auto stream = node.client->StartPut(video_id_, name_,
                                            {.hinted_for = owner,
                                             .sha256_at_commit = true,
                                             .block_sha256_follow = true,
                                             .block_algorithm = storage::kDefaultBlockAlgorithm});
        if (!stream.ok()) {
          if (Cluster::IsNodeFailure(stream.status())) {
            cluster_.MarkFailure(node.id, stream.status().ToString());
          }
          errors.push_back(Describe(node, stream.status()));
          continue;
        }
        r = Replica{.node = node, .hinted_for = owner, .stream = *std::move(stream)};
        placed = true;
      }
      if (!placed) {
        // Fewer live nodes than copies to make: the write cannot be durable
        // R times, so nothing is stored.
        finished_ = WithPublicMessage(
            absl::UnavailableError(absl::StrCat(
                "cannot store ", video_id_, "/", name_, ": fewer than ", replicas_.size(),
                " storage nodes are up (", absl::StrJoin(errors, "; "), ")")),
            "not enough storage nodes are up to store the file; try again later");
        Abandon();
        return *finished_;
      }
    }
    return absl::OkStatus();
  }

  // After a parallel step: OK if every replica is fine, else fails the whole
  // write (cancelling every stream) with the first replica's error.
  absl::Status CheckReplicas() {
    for (const Replica& r : replicas_) {
      if (r.status.ok()) continue;
      absl::Status error = r.status;
      if (Cluster::IsNodeFailure(error)) cluster_.MarkFailure(r.node.id);
      std::string message = absl::StrCat(
          "cannot store ", video_id_, "/", name_, " on all ", replicas_.size(), " replicas: node ",
          Describe(r.node, error), r.hinted_for.empty() ? "" : " (standing in for ", r.hinted_for,
          r.hinted_for.empty() ? "" : ")");
      switch (error.code()) {
        case absl::StatusCode::kUnavailable:
        case absl::StatusCode::kDeadlineExceeded:
        case absl::StatusCode::kCancelled:
        case absl::StatusCode::kUnknown:
          finished_ = absl::UnavailableError(message);
          break;
        case absl::StatusCode::kResourceExhausted:
          // A node out of disk space says RESOURCE_EXHAUSTED (HTTP 507), but
          // so does gRPC when the node has no thread left for the call: that
          // one is a busy node.
          if (absl::StrContains(error.message(), "Threadpool Exhausted")) {
            finished_ = absl::UnavailableError(message);
          } else {
            finished_ = WithPublicMessage(absl::ResourceExhaustedError(message),
                                          "the storage nodes are out of space");
          }
          break;
        default:
          finished_ = absl::Status(error.code(), message);
      }
      Abandon();
      DeleteCommitted();
      return *finished_;
    }
    return absl::OkStatus();
  }

  // Ends the write after Cancel(): every stream abandoned, no node blamed.
  absl::Status Cancelled() {
    finished_ =
        absl::CancelledError(absl::StrCat("write of ", video_id_, "/", name_, " cancelled"));
    Abandon();
    return *finished_;
  }

  // Cancels every stream still open: no node stores anything for them.
  void Abandon() {
    for (Replica& r : replicas_) {
      if (r.stream) r.stream->Cancel();
    }
  }

  // A replica may have committed while another failed at commit time; remove
  // that copy again so a failed write leaves nothing visible (best effort).
  void DeleteCommitted() {
    for (Replica& r : replicas_) {
      if (r.status.ok() && !r.stored.sha256.empty()) {
        r.node.client->Delete(video_id_, name_).IgnoreError();
      }
    }
  }

  Cluster& cluster_;
  const std::string video_id_;
  const std::string name_;
  std::vector<Replica> replicas_;
  // Keeps the write counted under the cluster state it was planned in (see
  // Cluster::WaitForEarlierWrites) for as long as the writer lives.
  std::shared_ptr<const void> token_;
  FanOut fan_out_;
  storage::Sha256 hasher_;  // of everything appended
  // Of the current block; the nodes record the file with this algorithm.
  storage::BlockHasher block_hasher_{storage::kDefaultBlockAlgorithm};
  uint64_t block_filled_ = 0;                     // bytes of the current block hashed
  std::vector<storage::BlockDigest> new_blocks_;  // not yet handed to the streams
  std::optional<absl::Status> finished_;          // set once committed or failed
  std::atomic<bool> cancelled_{false};            // Cancel() was called (any thread)
};

}  // namespace

absl::StatusOr<std::unique_ptr<ContentWriter>> StartReplicatedWrite(Cluster& cluster,
                                                                    std::string_view video_id,
                                                                    std::string_view name,
                                                                    Cluster::WritePlan plan) {
  return ReplicatedWriter::Start(cluster, video_id, name, std::move(plan));
}

}  // namespace streamgrid::cluster_internal
