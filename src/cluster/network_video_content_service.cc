#include "cluster/network_video_content_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/names.h"
#include "common/public_error.h"
#include "common/strings.h"
#include "storage/sha256.h"

namespace streamgrid {
namespace {

using storage::StorageClient;
using storage::StoredFile;

// More pages than any video has files; a node answering forever is a bug.
constexpr int kMaxListPages = 100'000;

std::string ETag(const std::string& sha256) { return absl::StrCat("\"", sha256, "\""); }

ContentInfo InfoOf(const StoredFile& file) {
  return {.name = file.name, .size = file.size, .etag = ETag(file.sha256)};
}

absl::Status Validate(std::string_view video_id) {
  if (!IsValidVideoId(video_id)) return absl::InvalidArgumentError("invalid video id");
  return absl::OkStatus();
}

absl::Status Validate(std::string_view video_id, std::string_view name) {
  if (absl::Status s = Validate(video_id); !s.ok()) return s;
  if (!IsValidContentName(name)) return absl::InvalidArgumentError("invalid content name");
  return absl::OkStatus();
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

// Runs fn(i) for every i below n at once, i = 0 on the calling thread and each
// other on a thread of its own kept for the object's lifetime, and waits for
// all. Lets a writer push one chunk to every replica in parallel without
// copying it or starting threads per chunk.
class FanOut {
 public:
  explicit FanOut(size_t n) {
    for (size_t i = 1; i < n; ++i) threads_.emplace_back([this, i] { Loop(i); });
  }
  ~FanOut() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    start_.notify_all();
    for (std::thread& thread : threads_) thread.join();
  }

  void Run(const std::function<void(size_t)>& fn) {
    {
      std::lock_guard lock(mu_);
      task_ = &fn;
      pending_ = threads_.size();
      ++generation_;
    }
    start_.notify_all();
    fn(0);
    std::unique_lock lock(mu_);
    done_.wait(lock, [&] { return pending_ == 0; });
    task_ = nullptr;
  }

 private:
  void Loop(size_t i) {
    uint64_t seen = 0;
    while (true) {
      const std::function<void(size_t)>* task;
      {
        std::unique_lock lock(mu_);
        start_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        task = task_;
      }
      (*task)(i);
      std::lock_guard lock(mu_);
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::mutex mu_;
  std::condition_variable start_;
  std::condition_variable done_;
  const std::function<void(size_t)>* task_ = nullptr;  // guarded by mu_
  uint64_t generation_ = 0;                            // guarded by mu_
  size_t pending_ = 0;                                 // guarded by mu_
  bool stop_ = false;                                  // guarded by mu_
  std::vector<std::thread> threads_;
};

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
      auto stream = r.node.client->StartPut(video_id, name);
      // The channel may still be backing off from an outage the node is over:
      // the owner is the best place for its copy, so give it one prompt
      // reconnect before a stand-in takes it.
      if (absl::IsUnavailable(stream.status()) &&
          Cluster::Reconnect(r.node, std::chrono::seconds(2))) {
        stream = r.node.client->StartPut(video_id, name);
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
    fan_out_.Run([&](size_t i) { replicas_[i].status = replicas_[i].stream->Append(data); });
    return CheckReplicas();
  }

  absl::StatusOr<ContentInfo> Commit() override {
    if (finished_) {
      return finished_->ok() ? absl::FailedPreconditionError("already committed") : *finished_;
    }
    fan_out_.Run([&](size_t i) {
      Replica& r = replicas_[i];
      absl::StatusOr<StoredFile> stored = r.stream->Commit();
      if (stored.ok()) {
        r.stored = *std::move(stored);
      } else {
        r.status = stored.status();
      }
    });
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
        auto stream = node.client->StartPut(video_id_, name_, {.hinted_for = owner});
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
  std::optional<absl::Status> finished_;  // set once committed or failed
};

// Tries `nodes` from index `first` on (wrapping around) until one opens
// `video_id/name` at the range, skipping those `damaged` marks; see OpenReader
// for the error rules. A node answering DATA_LOSS found its copy damaged: it
// is reported for repair, marked in `damaged`, and the next one is tried.
struct Opened {
  size_t index = 0;
  std::unique_ptr<StorageClient::GetStream> stream;
};

void ReportDamaged(Cluster& cluster, const ClusterNode& node, std::string_view video_id,
                   std::string_view name, std::string reason) {
  spdlog::warn("damaged copy of {}/{} on {}: {}", video_id, name, node.id, reason);
  cluster.ReportDamage({.node_id = node.id,
                        .video_id = std::string(video_id),
                        .name = std::string(name),
                        .reason = std::move(reason)});
}

absl::StatusOr<Opened> OpenOnSomeReplica(Cluster& cluster, const std::vector<ClusterNode>& nodes,
                                         std::vector<bool>& damaged, size_t first,
                                         std::string_view video_id, std::string_view name,
                                         uint64_t offset, uint64_t length,
                                         const std::string& want_sha256) {
  std::vector<std::string> errors;
  bool not_found = false;
  bool any_damaged = false;
  for (size_t k = 0; k < nodes.size(); ++k) {
    const size_t i = (first + k) % nodes.size();
    const ClusterNode& node = nodes[i];
    if (damaged[i]) {
      any_damaged = true;
      errors.push_back(absl::StrCat(node.id, ": its copy is damaged"));
      continue;
    }
    auto stream = node.client->OpenGet(video_id, name, offset, length);
    if (stream.ok()) {
      cluster.MarkSuccess(node.id);
      if (!want_sha256.empty() && (*stream)->file().sha256 != want_sha256) {
        // Another version of the file (replaced meanwhile): resuming there
        // would splice two versions together.
        errors.push_back(absl::StrCat(node.id, ": holds another version"));
        continue;
      }
      return Opened{i, *std::move(stream)};
    }
    const absl::Status& s = stream.status();
    if (absl::IsOutOfRange(s) || absl::IsInvalidArgument(s)) return s;
    if (absl::IsDataLoss(s)) {
      // The node answered: it is up, its copy is not.
      cluster.MarkSuccess(node.id);
      ReportDamaged(cluster, node, video_id, name, absl::StrCat("read: ", s.message()));
      damaged[i] = true;
      any_damaged = true;
      errors.push_back(Describe(node, s));
      continue;
    }
    if (absl::IsNotFound(s)) {
      // A replica answered that it has no such file. Writes reach every
      // replica, so that is the answer unless a migration target lacks it yet.
      cluster.MarkSuccess(node.id);
      not_found = true;
      continue;
    }
    if (Cluster::IsNodeFailure(s)) cluster.MarkFailure(node.id);
    errors.push_back(Describe(node, s));
  }
  const std::string what = absl::StrCat("read ", ToAbsl(video_id), "/", ToAbsl(name));
  // A quarantined copy answers NOT_FOUND from then on: that must not hide
  // the damage found a moment ago.
  if (any_damaged) {
    return absl::DataLossError(absl::StrCat(what, ": no undamaged replica could serve it (",
                                            absl::StrJoin(errors, "; "), ")"));
  }
  if (not_found && want_sha256.empty()) return absl::NotFoundError(what + ": no such file");
  if (!want_sha256.empty()) {
    return absl::UnavailableError(absl::StrCat(what, ": no replica could resume the read (",
                                               absl::StrJoin(errors, "; "), ")"));
  }
  return NoNodeAnswered(what, errors);
}

// A read in bounded pieces that fails over between replicas. Each piece is
// one Get of at most `piece_bytes`, read whole into the reader's own buffer at
// the node's pace, so the node's stream (and its thread) ends at once however
// slowly the HTTP client takes the bytes; the next piece is opened only when
// the buffer is drained. Every piece must come from a replica holding the same
// SHA-256 as the first, so a read never splices two versions of a file; a
// failed piece is fetched again from the next replica (nothing of it was
// handed out yet).
//
// Verification: nodes check their copies themselves and answer DATA_LOSS
// before sending a damaged block; such a replica is reported for repair
// (Cluster::ReportDamage) and the piece comes from the next one. A whole-file
// read is also hashed here, and its last piece is handed out only once the
// SHA-256 matches. On a mismatch the reader finds a replica whose copy does
// match, checks that the pieces already handed out agree with it (a 64-bit
// hash of each is kept), and serves the last piece from it; only if a piece
// already sent was wrong does the read fail (DATA_LOSS), so a response never
// completes with a damaged byte.
class PiecewiseReader : public ContentReader {
 public:
  PiecewiseReader(Cluster& cluster, std::string video_id, std::string name,
                  std::vector<ClusterNode> nodes, size_t piece_bytes, uint64_t offset,
                  std::optional<uint64_t> length)
      : cluster_(cluster),
        video_id_(std::move(video_id)),
        name_(std::move(name)),
        nodes_(std::move(nodes)),
        damaged_(nodes_.size(), false),
        piece_bytes_(std::max<size_t>(piece_bytes, 1)),
        next_(offset),
        length_(length),
        whole_file_(offset == 0) {}

  // Fetches the first piece, which also tells the file's info and version.
  absl::Status Start() {
    if (absl::Status s = Fetch(); !s.ok()) return s;
    // The range ends at the file's end at most.
    const uint64_t start = next_ - buffer_.size();
    const uint64_t available = info_.size > start ? info_.size - start : 0;
    end_ = start + (length_ ? std::min(*length_, available) : available);
    whole_file_ = whole_file_ && end_ == info_.size;
    if (whole_file_) hasher_.emplace();
    return CheckPiece();
  }

  absl::StatusOr<size_t> Read(std::span<char> buffer) override {
    if (buffer.empty()) return 0;
    if (served_ == buffer_.size()) {
      if (next_ >= end_) return 0;
      if (absl::Status s = Fetch(); !s.ok()) return s;
      if (absl::Status s = CheckPiece(); !s.ok()) return s;
    }
    const size_t n = std::min(buffer.size(), buffer_.size() - served_);
    std::copy_n(buffer_.data() + served_, n, buffer.data());
    served_ += n;
    return n;
  }

  const ContentInfo& info() const override { return info_; }

 private:
  // A piece handed out (or about to be) of a whole-file read.
  struct Piece {
    uint64_t offset;
    uint64_t size;
    size_t hash;     // absl::Hash of its bytes; compared within this process only
    size_t replica;  // index in nodes_
  };

  static size_t HashOf(const std::vector<char>& bytes) {
    return absl::Hash<std::string_view>{}(std::string_view(bytes.data(), bytes.size()));
  }

  void Damaged(size_t i, std::string reason) {
    ReportDamaged(cluster_, nodes_[i], video_id_, name_, std::move(reason));
    damaged_[i] = true;
  }

  // Reads `stream` to its end into `out` (at most `want` bytes; one more is
  // room to notice a node sending too much).
  absl::Status Drain(StorageClient::GetStream& stream, uint64_t want, std::vector<char>& out) {
    // One byte more than asked for: reading on to the stream's end (which
    // brings the node's status, and the client's check of the byte count)
    // rather than cancelling the call when the piece is complete.
    out.resize(static_cast<size_t>(want) + 1);
    size_t got = 0;
    while (true) {
      if (got == out.size()) {
        return absl::DataLossError(
            absl::StrCat("read ", video_id_, "/", name_, ": a node sent more than the range"));
      }
      absl::StatusOr<size_t> n = stream.Read(std::span(out.data() + got, out.size() - got));
      if (!n.ok()) return n.status();
      if (*n == 0) break;
      got += *n;
    }
    out.resize(got);
    return absl::OkStatus();
  }

  // Reads the piece at next_ into buffer_, trying each replica a bounded
  // number of times; the replica that served the last piece goes first.
  absl::Status Fetch() {
    const uint64_t want = end_ ? std::min<uint64_t>(piece_bytes_, end_ - next_)
                               : std::min<uint64_t>(piece_bytes_, length_.value_or(piece_bytes_));
    size_t first = index_;
    absl::Status last_error;
    for (size_t attempt = 0; attempt <= 2 * nodes_.size(); ++attempt) {
      auto opened = OpenOnSomeReplica(cluster_, nodes_, damaged_, first, video_id_, name_, next_,
                                      want, sha256_);
      if (!opened.ok()) return opened.status();
      index_ = opened->index;
      if (sha256_.empty()) {
        const StoredFile& file = opened->stream->file();
        sha256_ = file.sha256;
        info_ = InfoOf(file);
      }
      absl::Status status = Drain(*opened->stream, want, buffer_);
      if (status.ok()) {
        // The node sent what it promised (StorageClient checks the count).
        served_ = 0;
        next_ += buffer_.size();
        return absl::OkStatus();
      }
      // Nothing of this piece was handed out: any replica may serve it again.
      if (absl::IsDataLoss(status)) {
        // The node stopped before a block that failed its check.
        cluster_.MarkSuccess(nodes_[index_].id);
        Damaged(index_, absl::StrCat("read: ", status.message()));
      } else if (Cluster::IsNodeFailure(status)) {
        cluster_.MarkFailure(nodes_[index_].id);
      } else {
        return status;
      }
      last_error = status;
      first = (index_ + 1) % nodes_.size();
    }
    return absl::UnavailableError(absl::StrCat(
        "read ", video_id_, "/", name_, ": replicas kept failing (", last_error.message(), ")"));
  }

  // Hashes a whole-file read as it goes; the last piece is only handed out
  // once the file matches its checksum.
  absl::Status CheckPiece() {
    if (!hasher_) return absl::OkStatus();
    hasher_->Update(std::span<const char>(buffer_.data(), buffer_.size()));
    if (next_ < end_) {
      pieces_.push_back({.offset = next_ - buffer_.size(),
                         .size = buffer_.size(),
                         .hash = HashOf(buffer_),
                         .replica = index_});
      return absl::OkStatus();
    }
    std::string digest = hasher_->FinishHex();
    hasher_.reset();
    if (digest == sha256_) return absl::OkStatus();
    return Recover();
  }

  // Reads [offset, offset + size) from replica `i` (version sha256_) into `out`.
  absl::Status ReadFrom(size_t i, uint64_t offset, uint64_t size, std::vector<char>& out) {
    auto stream = nodes_[i].client->OpenGet(video_id_, name_, offset, size);
    if (!stream.ok()) return stream.status();
    if ((*stream)->file().sha256 != sha256_) {
      return absl::FailedPreconditionError("holds another version");
    }
    if (absl::Status s = Drain(**stream, size, out); !s.ok()) return s;
    if (out.size() != size) return absl::DataLossError("short read");
    return absl::OkStatus();
  }

  // The whole file did not match its SHA-256, with the last piece (buffer_,
  // from replica index_) not handed out yet: see the class comment.
  absl::Status Recover() {
    const std::string what = absl::StrCat("read ", video_id_, "/", name_);
    const size_t last_replica = index_;
    const uint64_t last_offset = next_ - buffer_.size();
    const uint64_t last_size = buffer_.size();
    std::set<size_t> served_from = {last_replica};
    for (const Piece& piece : pieces_) served_from.insert(piece.replica);
    // Pieces all came from one replica: that copy is the bad one.
    if (served_from.size() == 1) {
      Damaged(last_replica, "read: whole-file sha256 mismatch at the web server");
    }
    std::vector<char> bytes;
    for (size_t k = 1; k <= nodes_.size(); ++k) {
      const size_t r = (last_replica + k) % nodes_.size();
      if (damaged_[r]) continue;
      storage::Sha256 hasher;
      std::vector<const Piece*> differing;
      absl::Status status;
      for (const Piece& piece : pieces_) {
        status = ReadFrom(r, piece.offset, piece.size, bytes);
        if (!status.ok()) break;
        hasher.Update(std::span<const char>(bytes.data(), bytes.size()));
        if (HashOf(bytes) != piece.hash) differing.push_back(&piece);
      }
      if (status.ok()) status = ReadFrom(r, last_offset, last_size, bytes);
      if (!status.ok()) {
        if (absl::IsDataLoss(status)) Damaged(r, absl::StrCat("read: ", status.message()));
        continue;
      }
      hasher.Update(std::span<const char>(bytes.data(), bytes.size()));
      if (hasher.FinishHex() != sha256_) {
        Damaged(r, "read: whole-file sha256 mismatch at the web server");
        continue;
      }
      // Replica r holds the file as recorded: whoever disagrees with it is
      // damaged.
      bool last_differs = HashOf(bytes) != HashOf(buffer_);
      if (last_differs && !damaged_[last_replica]) {
        Damaged(last_replica, "read: bytes differ from a replica matching the sha256");
      }
      for (const Piece* piece : differing) {
        if (!damaged_[piece->replica]) {
          Damaged(piece->replica, "read: bytes differ from a replica matching the sha256");
        }
      }
      if (!differing.empty()) {
        return absl::DataLossError(
            absl::StrCat(what, ": damaged bytes were sent before the damage showed"));
      }
      buffer_ = std::move(bytes);
      served_ = 0;
      index_ = r;
      return absl::OkStatus();
    }
    return absl::DataLossError(absl::StrCat(what, " does not match its sha256 on any replica"));
  }

  Cluster& cluster_;
  const std::string video_id_;
  const std::string name_;
  const std::vector<ClusterNode> nodes_;
  std::vector<bool> damaged_;  // by index in nodes_: copies found damaged by this read
  const size_t piece_bytes_;
  size_t index_ = 0;  // the replica that served the last piece
  uint64_t next_;     // file offset of the next piece
  uint64_t end_ = 0;  // file offset where the range ends; 0 until known
  const std::optional<uint64_t> length_;
  bool whole_file_;
  ContentInfo info_;
  std::string sha256_;        // the version being read; empty until the first piece
  std::vector<char> buffer_;  // the current piece
  size_t served_ = 0;         // bytes of buffer_ handed out
  std::optional<storage::Sha256> hasher_;
  std::vector<Piece> pieces_;  // of a whole-file read, all but the last
};

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
  return ReplicatedWriter::Start(cluster_, video_id, name, std::move(plan));
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
  auto reader = std::make_unique<PiecewiseReader>(
      cluster_, std::string(video_id), std::string(name), cluster_.ReadNodes(video_id, name),
      read_piece_bytes_, offset, length);
  if (absl::Status s = reader->Start(); !s.ok()) return s;
  return reader;
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

}  // namespace streamgrid

namespace streamgrid {

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
