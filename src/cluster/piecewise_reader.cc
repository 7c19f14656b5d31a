#include "cluster/piecewise_reader.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <span>
#include <string_view>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cluster/replica_calls.h"
#include "common/strings.h"
#include "storage/sha256.h"

namespace streamgrid::cluster_internal {
namespace {

using storage::StorageClient;
using storage::StoredFile;

// Tries `nodes` from index `first` on (wrapping around) until one opens
// `video_id/name` at the range, skipping those `damaged` marks; see OpenReader
// for the error rules. A node answering DATA_LOSS found its copy damaged: it
// is reported for repair, marked in `damaged`, and the next one is tried.
struct Opened {
  size_t index = 0;
  std::unique_ptr<StorageClient::GetStream> stream;
};
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

}  // namespace

absl::StatusOr<std::unique_ptr<ContentReader>> OpenPiecewiseReader(
    Cluster& cluster, std::string video_id, std::string name, std::vector<ClusterNode> nodes,
    size_t piece_bytes, uint64_t offset, std::optional<uint64_t> length) {
  auto reader = std::make_unique<PiecewiseReader>(cluster, std::move(video_id), std::move(name),
                                                  std::move(nodes), piece_bytes, offset, length);
  if (absl::Status s = reader->Start(); !s.ok()) return s;
  return reader;
}

}  // namespace streamgrid::cluster_internal
