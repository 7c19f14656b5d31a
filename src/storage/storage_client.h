#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "auth/grpc_auth.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/slice.h"
#include "grpcpp/support/sync_stream.h"
#include "proto/storage.grpc.pb.h"
#include "storage/block_checksum.h"
#include "storage/hint_store.h"
#include "storage/sha256.h"
#include "storage/stored_file.h"

namespace streamgrid::storage {

struct StorageClientOptions {
  // Deadline of each Stat, Delete, DeleteVideo, List and Health call.
  std::chrono::milliseconds call_timeout = std::chrono::seconds(10);
  // Deadline of a whole Put or Get stream, from its start.
  std::chrono::milliseconds transfer_timeout = std::chrono::minutes(10);
  // Data per Put message; clipped to 1 MiB, the node's limit.
  size_t put_chunk_bytes = size_t{1} << 20;
  // The cluster token and TLS of channels the client makes itself (from a
  // target); a channel passed in carries its own.
  auth::ClientSecurity security;
};

struct PutOptions {
  // The file's size, when known: the node refuses it up front if it has no
  // room, and fails the upload if a different amount arrives.
  std::optional<uint64_t> size;
  // The expected SHA-256 (hex), when known up front (e.g. copying a replica).
  // Otherwise the client computes it from the data it sends; either way the
  // node checks it before committing.
  std::string sha256;
  // When set, the node stores the copy as a stand-in for this owner (which
  // is down) and records a hint for it (see HintStore).
  std::string hinted_for;
  // When set (and `sha256` is empty), the stream computes no checksum: the
  // caller passes it to Commit(), e.g. one computed once for several
  // replicas of the same bytes. The node still checks it.
  bool sha256_at_commit = false;
  // With sha256_at_commit or `sha256` (e.g. a copy relayed with the holder's
  // recorded digests): the caller also has the SHA-256 of every
  // kChecksumBlockBytes block and passes them to PutStream::AddBlockDigests()
  // (every block's before Commit()); the node then hashes the data once (its
  // blocks, checked against these) instead of twice.
  bool block_sha256_follow = false;
  // With block_sha256_follow: the algorithm of the digests passed to
  // AddBlockDigests(); the node records the file with it. A relayed copy
  // keeps its holder's (GetStream::block_algorithm()).
  BlockAlgorithm block_algorithm = BlockAlgorithm::kSha256;
};

// A file to copy from one node to another with Pull: the version listed on
// the source node.
struct PullSpec {
  std::string video_id;
  std::string name;
  std::string source_address;  // HOST:PORT of a node holding the file
  uint64_t size = 0;
  std::string sha256;  // hex
};

// What a Pull did: the stored copy, or (not OK) why the source could not give
// the file, in which case nothing was stored.
struct PullResult {
  StoredFile file;
  absl::Status source_error;
};

// A node's answer to Health.
struct NodeHealth {
  std::string node_id;
  int64_t uptime_seconds = 0;
  uint64_t files = 0;
  uint64_t bytes_used = 0;
  uint64_t free_bytes = 0;
  uint64_t total_bytes = 0;
  // New at every start of the node process (a change means it restarted).
  std::string instance_id;
  // Scrubber, quarantine and hint figures.
  v1::IntegrityStats integrity;
};

// A page of a node's quarantine log (see ListQuarantined in storage.proto).
struct QuarantinePage {
  std::vector<v1::QuarantinedCopy> copies;
  // Entries after the last one returned remain.
  bool more = false;
  // The lowest sequence number the node still keeps.
  uint64_t oldest_kept_seq = 0;
};

// A synchronous client of one storage node (streamgrid.storage.v1), over one
// channel that all calls share. Every call has a deadline; errors are the
// node's (see proto/storage.proto) or gRPC's, e.g. UNAVAILABLE when the node is
// unreachable and DEADLINE_EXCEEDED when a deadline passes. Files stream both
// ways in chunks: no call holds a whole file in memory. Thread-safe; streams
// are not (use each from one thread at a time).
class StorageClient {
 public:
  class PutStream;
  class GetStream;

  // Fills up to `buffer.size()` bytes of the file to upload; 0 means the end.
  using ChunkSource = std::function<absl::StatusOr<size_t>(std::span<char> buffer)>;
  // Takes the next bytes of a downloaded range; an error stops the download.
  using ChunkSink = std::function<absl::Status(std::span<const char> data)>;

  // A channel to `target` ("host:port") with the keepalive settings the node
  // expects, sending `security`'s token on every call (over TLS if it says
  // so), for sharing among clients. A `receive_window_bytes` above 0 fixes
  // each stream's HTTP/2 receive window at that size (for bulk reads).
  static std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target,
                                                    const auth::ClientSecurity& security = {},
                                                    size_t receive_window_bytes = 0);

  explicit StorageClient(const std::string& target, StorageClientOptions options = {});
  explicit StorageClient(std::shared_ptr<grpc::Channel> channel, StorageClientOptions options = {});
  ~StorageClient();

  // Starts uploading `video_id/name`; the node validates the header (errors
  // surface here or on the first Append).
  absl::StatusOr<std::unique_ptr<PutStream>> StartPut(std::string_view video_id,
                                                      std::string_view name,
                                                      const PutOptions& options = {});

  // Uploads everything `source` produces, then commits.
  absl::StatusOr<StoredFile> Put(std::string_view video_id, std::string_view name,
                                 const ChunkSource& source, const PutOptions& options = {});

  // Uploads `data` (for small files: it is all in memory already).
  absl::StatusOr<StoredFile> PutBytes(std::string_view video_id, std::string_view name,
                                      std::string_view data);

  // Opens `length` bytes (0: to the end) from `offset` of `video_id/name`.
  // NOT_FOUND and OUT_OF_RANGE (offset past the end) are reported here. With
  // `verify`, a read of the whole file is checked against its SHA-256 at the
  // end (DATA_LOSS); a caller whose receiver checks it anyway (a copy to a
  // node) can spare that pass. With `block_digests`, asks the node for the
  // recorded digest of every block of a whole file (GetStream::block_digests).
  absl::StatusOr<std::unique_ptr<GetStream>> OpenGet(std::string_view video_id,
                                                     std::string_view name, uint64_t offset = 0,
                                                     uint64_t length = 0, bool verify = true,
                                                     bool block_digests = false,
                                                     bool receiver_verifies_blocks = false);

  // Asks this node to copy `spec`'s file from the node at its source_address
  // (node to node, see Pull in proto/storage.proto), within the transfer
  // deadline. The result's source_error says why the source could not give
  // it (nothing stored); an error status is this node's (UNIMPLEMENTED: it
  // does not pull, relay the copy instead). Once `cancelled` returns true
  // (polled while waiting) the call is cancelled: CANCELLED, nothing stored.
  absl::StatusOr<PullResult> Pull(const PullSpec& spec,
                                  const std::function<bool()>& cancelled = nullptr);

  // Streams the range into `sink` and returns the whole file's info. A
  // download of the whole file is checked against its SHA-256 (DATA_LOSS).
  absl::StatusOr<StoredFile> Get(std::string_view video_id, std::string_view name, uint64_t offset,
                                 uint64_t length, const ChunkSink& sink);

  absl::StatusOr<StoredFile> Stat(std::string_view video_id, std::string_view name);
  absl::Status Delete(std::string_view video_id, std::string_view name);
  // Returns how many files were removed.
  absl::StatusOr<uint64_t> DeleteVideo(std::string_view video_id);
  // One page of files in (video_id, name) order; `video_id` empty for all.
  absl::StatusOr<StoredFilePage> List(std::string_view video_id, std::string_view page_token = "",
                                      uint32_t page_size = 0);
  // One page of a listing as `options` asks, e.g. only some partitions. The
  // node examines a bounded number of files per call, so a filtered page may be
  // short or empty while its next_page_token is set: page until the token is
  // empty. The node checks the filter (INVALID_ARGUMENT).
  absl::StatusOr<StoredFilePage> List(const ListOptions& options);
  absl::StatusOr<NodeHealth> Health();
  // The damaged copies the node took out of service with a sequence number
  // above `after_seq`, oldest first; `page_size` 0 means the node's default.
  absl::StatusOr<QuarantinePage> ListQuarantined(uint64_t after_seq, uint32_t page_size = 0);

  // One page of the hints the node holds, oldest first; only those for
  // `intended_node` when it is not empty. Page until the token is empty.
  absl::StatusOr<HintPage> ListHints(std::string_view intended_node = "",
                                     std::string_view page_token = "", uint32_t page_size = 0);
  // What DropHint() did.
  struct DropHintResult {
    // The hint stays: it names another version than `only_if_sha256`.
    bool hint_kept = false;
    // The node's copy was removed.
    bool file_deleted = false;
  };
  // Drops the node's hint of `video_id/name` for `intended_node` (OK if there
  // is none), but with `only_if_sha256` set only if the hint still names
  // that version; with `delete_sha256` set, also removes the node's copy if
  // it still has that SHA-256 and no other hint needs it.
  absl::StatusOr<DropHintResult> DropHint(std::string_view video_id, std::string_view name,
                                          std::string_view intended_node,
                                          std::optional<std::string> delete_sha256 = std::nullopt,
                                          std::optional<std::string> only_if_sha256 = std::nullopt);

 private:
  void SetCallDeadline(grpc::ClientContext& context) const;

  const StorageClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::StorageService::Stub> stub_;
};

// An upload in progress. Nothing is stored unless Commit() succeeds;
// destroying the stream before that cancels the upload.
class StorageClient::PutStream {
 public:
  ~PutStream();
  PutStream(const PutStream&) = delete;
  PutStream& operator=(const PutStream&) = delete;

  // Sends `data` (buffered into full-size chunks first); strings and
  // string_views convert implicitly. After an error the stream is finished and
  // its error is returned again by later calls.
  absl::Status Append(std::span<const char> data);
  // A literal would be sent with its terminating NUL; pass a string_view.
  template <size_t N>
  absl::Status Append(const char (&)[N]) = delete;

  // Append() of `data`'s bytes without copying them: the slice is referenced
  // by the messages sent (so one slice can feed several streams, as a
  // replicated write does, encoded once for every replica). What Append()
  // buffered goes first.
  absl::Status AppendShared(const grpc::Slice& data);

  // For a stream started with PutOptions::block_sha256_follow: the digests of
  // the next blocks of the file, in order; sent with the next chunk or the
  // commit.
  // Each digest is of PutOptions::block_algorithm.
  void AddBlockDigests(std::span<const BlockDigest> digests);

  // Sends the rest and the checksum and waits for the node to store the file.
  absl::StatusOr<StoredFile> Commit();
  // Commit() with the checksum (hex) of everything appended, for a stream
  // started with PutOptions::sha256_at_commit.
  absl::StatusOr<StoredFile> Commit(std::string sha256);

  // Abandons the upload; the node stores nothing. Idempotent.
  void Cancel();

  // Cancels the call from any thread, so that an Append() or Commit()
  // blocked in another thread (a node that stopped reading) returns promptly
  // with CANCELLED, as does every later call. Nothing is stored unless the
  // node had already received the commit. The stream must still be destroyed
  // by its owner.
  void Interrupt();

 private:
  friend class StorageClient;
  PutStream(size_t chunk_bytes, std::string expected_sha256, bool hash = true,
            BlockAlgorithm block_algorithm = BlockAlgorithm::kSha256);

  // Sends what Append() buffered as one chunk.
  absl::Status SendChunk();
  // Sends `data` as one chunk message, with the pending block digests.
  absl::Status SendSlice(grpc::Slice data);
  // Ends the call and records (and returns) its status.
  absl::Status Finish();

  const size_t chunk_bytes_;
  const std::string expected_sha256_;  // empty: send the computed one
  const bool hash_;                    // compute the checksum of what is sent
  const size_t digest_bytes_;          // of each block digest sent
  grpc::ClientContext context_;
  v1::PutResponse response_;
  // Messages are v1::PutRequest, encoded by us (see storage_client.cc), so
  // that a chunk's bytes are not copied into a protobuf and again into the
  // message sent.
  std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> writer_;
  std::unique_ptr<char[]> pending_;  // the chunk being filled (chunk_bytes_)
  size_t pending_size_ = 0;
  std::string pending_digests_;  // raw block digests for the next message
  Sha256 hasher_;
  std::optional<absl::Status> finished_;  // set once the call is over
};

// A download in progress; destroying it early cancels the call.
class StorageClient::GetStream {
 public:
  ~GetStream();
  GetStream(const GetStream&) = delete;
  GetStream& operator=(const GetStream&) = delete;

  // The whole file's info.
  const StoredFile& file() const { return file_; }

  // Fills up to `buffer.size()` bytes; returns 0 at the end of the range.
  absl::StatusOr<size_t> Read(std::span<char> buffer);

  // True when the stream was opened with `block_digests` and the node sends
  // the recorded SHA-256 of every block of the file (a node that does not
  // know the request, or a range that is not the whole file, gets none).
  bool block_digests_follow() const { return digests_follow_; }
  // The block digests received so far, in order (all of them once Next() or
  // Read() reached the end). A malformed digest field fails the stream
  // (DATA_LOSS).
  std::span<const BlockDigest> block_digests() const { return block_digests_; }
  // The algorithm of block_digests(), the one the node recorded the file with
  // (SHA-256 from a node that does not say).
  BlockAlgorithm block_algorithm() const { return block_algorithm_; }

  // The next chunk as received (or the rest of one Read() left), valid until
  // the next call; empty at the end.
  absl::StatusOr<std::span<const char>> Next();

  // Next() without a copy: the chunk's bytes are swapped into `chunk` (its
  // old buffer is kept for the next message); empty at the end.
  absl::Status NextInto(std::string& chunk);

  // Cancels the call from any thread: a Next() or Read() blocked on it
  // returns soon, with an error. For a reader on another thread that stops.
  void Interrupt();

 private:
  friend class StorageClient;
  GetStream(uint64_t offset, uint64_t length, bool verify);
  absl::Status Open();
  absl::Status Finish();
  // Takes the block digests of response_ (with digests_follow_).
  absl::Status TakeBlockDigests();

  const uint64_t offset_;
  const uint64_t length_;
  const bool verify_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<v1::GetResponse>> reader_;
  v1::GetResponse response_;
  bool first_unread_ = false;      // response_ holds the first message, not yet returned
  std::span<const char> pending_;  // the unread rest of response_'s chunk (for Read)
  StoredFile file_;
  uint64_t received_ = 0;
  std::optional<Sha256> hasher_;  // set when the whole file is being read
  std::optional<absl::Status> finished_;
  bool want_digests_ = false;
  bool digests_follow_ = false;
  BlockAlgorithm block_algorithm_ = BlockAlgorithm::kSha256;
  std::vector<BlockDigest> block_digests_;  // at most one per block of the file
};

}  // namespace streamgrid::storage
