#include "storage/storage_service.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/durations.h"
#include "common/names.h"
#include "common/strings.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "spdlog/spdlog.h"
#include "storage/block_checksum.h"
#include "storage/chunk_prefetcher.h"
#include "storage/grpc_convert.h"
#include "storage/sha256.h"

namespace streamgrid::storage {
namespace {

// gRPC's default; chunks between kMaxPutChunkBytes and this get a clear
// INVALID_ARGUMENT from the handler rather than a transport-level refusal.
constexpr int kMaxReceiveMessageBytes = 4 << 20;

grpc::Status InvalidArgument(std::string message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::move(message));
}

bool IsValidHintNode(std::string_view id) {
  if (id.empty() || id.size() > HintStore::kMaxNodeIdLength) return false;
  return std::all_of(id.begin(), id.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

// Which checksum an upload must match: the header's or the finish message's
// (they must agree if both are given).
absl::StatusOr<std::string> ExpectedChecksum(const std::string& from_header,
                                             const std::string& from_finish) {
  if (from_header.empty() && from_finish.empty()) {
    return absl::InvalidArgumentError(
        "no expected sha256: give one in the header or in the finish message");
  }
  if (from_header.empty()) return from_finish;
  if (!from_finish.empty() && NormalizeSha256Hex(from_finish) != NormalizeSha256Hex(from_header)) {
    return absl::InvalidArgumentError("the header and the finish message give different sha256");
  }
  return from_header;
}

// 128 random bits in hex: unique per process start for all practical purposes.
std::string NewInstanceId() {
  std::random_device random;
  std::string id;
  for (int i = 0; i < 4; ++i) absl::StrAppend(&id, absl::Hex(random(), absl::kZeroPad8));
  return id;
}

}  // namespace

StorageServiceImpl::StorageServiceImpl(StorageEngine& engine, StorageServiceOptions options)
    : engine_(engine),
      options_(std::move(options)),
      started_(std::chrono::steady_clock::now()),
      instance_id_(NewInstanceId()),
      node_id_(options_.node_id),
      watchdog_(options_.stream_idle_timeout) {
  // Beside the engine's own directories; the engine never looks at it.
  absl::StatusOr<std::unique_ptr<HintStore>> hints = HintStore::Open(engine_.data_dir() / "hints");
  if (hints.ok()) {
    hints_ = *std::move(hints);
  } else {
    hints_status_ = hints.status();
    spdlog::error("hint store: {}", hints_status_.ToString());
  }
}

StorageServiceImpl::~StorageServiceImpl() = default;

void StorageServiceImpl::set_node_id(std::string node_id) {
  std::lock_guard lock(node_id_mu_);
  node_id_ = std::move(node_id);
}

grpc::Status StorageServiceImpl::Put(grpc::ServerContext* context,
                                     grpc::ServerReader<v1::PutRequest>* reader,
                                     v1::PutResponse* response) {
  if (grpc::Status denied = options_.auth.Check(*context); !denied.ok()) return denied;
  auto watch = watchdog_.Start(context);
  v1::PutRequest request;
  if (!reader->Read(&request)) return InvalidArgument("empty upload stream");
  watch->Touch();
  if (request.part_case() != v1::PutRequest::kHeader) {
    return InvalidArgument("the first message of an upload must be its header");
  }
  const v1::PutHeader header = request.header();
  if (!header.sha256().empty() && !NormalizeSha256Hex(header.sha256())) {
    return InvalidArgument("the header's sha256 is not 64 hex digits");
  }
  const bool hinted = !header.hinted_for().empty();
  if (hinted) {
    if (!hints_) return ToGrpcStatus(hints_status_);
    if (!IsValidHintNode(header.hinted_for())) {
      return InvalidArgument("hinted_for is not a valid node id");
    }
  }
  const bool sender_blocks = header.block_sha256_follow();
  // The sender's block algorithm (SHA-256 from a sender that does not say);
  // without sender digests the node picks its own (the default).
  BlockAlgorithm algorithm = kDefaultBlockAlgorithm;
  if (sender_blocks) {
    switch (header.block_algorithm()) {
      case v1::BLOCK_CHECKSUM_SHA256:
        algorithm = BlockAlgorithm::kSha256;
        break;
      case v1::BLOCK_CHECKSUM_XXH3_128:
        algorithm = BlockAlgorithm::kXxh3_128;
        break;
      default:
        return InvalidArgument(
            absl::StrCat("unknown block_algorithm ", static_cast<int>(header.block_algorithm())));
    }
  }
  const size_t digest_bytes = DigestBytes(algorithm);
  auto upload = engine_.StartUpload(
      header.video_id(), header.name(),
      header.has_total_size() ? std::optional<uint64_t>(header.total_size()) : std::nullopt,
      sender_blocks, algorithm);
  if (!upload.ok()) return ToGrpcStatus(upload.status());
  // The sender's block digests (with block_sha256_follow): at most one per
  // block received so far, plus one, so bounded like the engine's own list.
  std::vector<BlockDigest> block_digests;
  auto take_block_digests = [&](const std::string& raw) -> grpc::Status {
    if (raw.empty()) return grpc::Status::OK;
    if (!sender_blocks) return InvalidArgument("block_sha256 without block_sha256_follow");
    if (raw.size() % digest_bytes != 0) {
      return InvalidArgument(absl::StrCat("block_sha256 is not a whole number of ", digest_bytes,
                                          "-byte ", ToAbsl(BlockAlgorithmName(algorithm)),
                                          " digests"));
    }
    const size_t n = raw.size() / digest_bytes;
    if (block_digests.size() + n > (*upload)->bytes_written() / kChecksumBlockBytes + 1) {
      return InvalidArgument("more block digests than blocks of data");
    }
    for (size_t i = 0; i < n; ++i) {
      BlockDigest& d = block_digests.emplace_back();
      std::memcpy(d.data(), raw.data() + i * digest_bytes, digest_bytes);
    }
    return grpc::Status::OK;
  };

  // Each message is handled before the next is read: one chunk in memory, and
  // a client faster than the disk is held back by flow control.
  while (reader->Read(&request)) {
    watch->Touch();
    switch (request.part_case()) {
      case v1::PutRequest::kChunk: {
        const std::string& chunk = request.chunk();
        if (chunk.size() > kMaxPutChunkBytes) {
          return InvalidArgument(absl::StrCat("chunk of ", chunk.size(), " bytes exceeds the ",
                                              kMaxPutChunkBytes, "-byte limit"));
        }
        absl::Status appended = (*upload)->Append(std::span<const char>(chunk));
        if (!appended.ok()) return ToGrpcStatus(appended);
        if (grpc::Status s = take_block_digests(request.block_sha256()); !s.ok()) return s;
        break;
      }
      case v1::PutRequest::kFinish: {
        auto expected = ExpectedChecksum(header.sha256(), request.finish().sha256());
        if (!expected.ok()) return ToGrpcStatus(expected.status());
        if (grpc::Status s = take_block_digests(request.block_sha256()); !s.ok()) return s;
        // A file and its hints change together (see DropHint).
        std::unique_lock<std::mutex> key_lock;
        if (hints_) key_lock = std::unique_lock(hints_->KeyLock(header.video_id(), header.name()));
        // The hint is recorded before the file is committed: a crash between
        // the two leaves a hint whose copy is missing or older, which the
        // hand-back finds and drops, never a stand-in copy nobody knows of.
        std::optional<Hint> previous;
        if (hinted) {
          previous = hints_->Find(header.video_id(), header.name(), header.hinted_for());
          absl::Status hinted_ok = hints_->Add({.video_id = header.video_id(),
                                                .name = header.name(),
                                                .intended_node = header.hinted_for(),
                                                .size = (*upload)->bytes_written(),
                                                .sha256 = *expected});
          if (!hinted_ok.ok()) return ToGrpcStatus(hinted_ok);
        }
        absl::StatusOr<StoredFile> file = (*upload)->Commit(*expected, block_digests);
        if (!file.ok()) {
          if (hinted) {
            // Nothing new was stored: the hint goes back to what it was.
            absl::Status undone =
                previous ? hints_->Add(*previous)
                         : hints_->Remove(header.video_id(), header.name(), header.hinted_for());
            if (!undone.ok()) spdlog::warn("hint store: {}", undone.ToString());
          }
          return ToGrpcStatus(file.status());
        }
        if (hinted) {
          spdlog::info("stored {}/{} as a stand-in for {}", file->video_id, file->name,
                       header.hinted_for());
        }
        spdlog::debug("stored {}/{} ({} bytes)", file->video_id, file->name, file->size);
        ToProto(*file, response->mutable_file());
        return grpc::Status::OK;
      }
      case v1::PutRequest::kHeader:
        return InvalidArgument("an upload has one header");
      case v1::PutRequest::PART_NOT_SET:
        return InvalidArgument("empty upload message");
    }
  }
  // Only a finish message commits, so an interrupted stream (which a half-close
  // cannot always be told apart from) never stores a prefix of the file.
  if (context->IsCancelled()) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "upload cancelled; nothing stored");
  }
  return InvalidArgument("upload ended without a finish message; nothing stored");
}

grpc::Status StorageServiceImpl::Get(grpc::ServerContext* context, const v1::GetRequest* request,
                                     grpc::ServerWriter<v1::GetResponse>* writer) {
  if (grpc::Status denied = options_.auth.Check(*context); !denied.ok()) return denied;
  auto watch = watchdog_.Start(context);
  // Counted and logged (debug) so that an operator, or a test, can see how
  // long readers keep the node's streams (and threads) busy.
  const int open = ++open_get_streams_;
  spdlog::debug("Get {}/{} from {} started, {} Get streams open", request->video_id(),
                request->name(), request->offset(), open);
  absl::Cleanup count = [&] {
    spdlog::debug("Get {}/{} ended, {} Get streams open", request->video_id(), request->name(),
                  --open_get_streams_);
  };
  auto reader = engine_.OpenReader(
      request->video_id(), request->name(), request->offset(),
      request->length() == 0 ? std::nullopt : std::optional<uint64_t>(request->length()));
  if (!reader.ok()) return ToGrpcStatus(reader.status());
  const size_t chunk_bytes = std::clamp<size_t>(options_.get_chunk_bytes, 1, 1 << 20);
  v1::GetResponse response;
  ToProto((*reader)->file(), response.mutable_file());
  // The recorded block digests, for a copier to check each block against
  // instead of hashing the whole file a second time (see Pull). Sent with the
  // chunk where each block starts, so no message grows with the file.
  std::vector<BlockDigest> digests;
  const size_t digest_bytes = DigestBytes((*reader)->block_algorithm());
  const bool whole_file = request->offset() == 0 &&
                          (request->length() == 0 || request->length() >= (*reader)->file().size);
  // A copy's read: the whole file with its digests (a pull or a relayed copy).
  const bool copy_read = request->want_block_sha256() && whole_file;
  if (copy_read) {
    digests = (*reader)->BlockDigests();
    response.set_block_sha256_follow(true);
    response.set_block_algorithm((*reader)->block_algorithm() == BlockAlgorithm::kSha256
                                     ? v1::BLOCK_CHECKSUM_SHA256
                                     : v1::BLOCK_CHECKSUM_XXH3_128);
    // The receiver checks each block against these stored digests, so a
    // second SHA-256 pass here would only repeat its work: a damaged block
    // still fails there (nothing stored), and its verified re-read of that
    // block quarantines the copy here. Client reads are always verified.
    if (request->receiver_verifies_blocks()) (*reader)->SkipBlockVerification();
  }
  size_t next_digest = 0;
  uint64_t position = 0;
  // A copy's read (the digests are asked for by pulls) logs where its time
  // went: reading and verifying here, or waiting for the receiver.
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  Clock::duration reading{};
  // A copy's chunks are read (and verified) on a thread of their own, ahead
  // of the one being sent. Destroyed before the reader.
  StorageEngine::Reader& file_reader = **reader;
  std::optional<ChunkPrefetcher> ahead;
  if (copy_read) {
    ahead.emplace(
        [&file_reader, chunk_bytes](std::string& chunk) -> absl::Status {
          chunk.resize(chunk_bytes);
          absl::StatusOr<size_t> n = file_reader.Read(std::span<char>(chunk.data(), chunk.size()));
          if (!n.ok()) return n.status();
          chunk.resize(*n);
          return absl::OkStatus();
        },
        options_.copy_read_ahead_chunks);
  }
  for (bool first = true;; first = false) {
    std::string* chunk = response.mutable_chunk();
    const Clock::time_point read_start = Clock::now();
    absl::StatusOr<size_t> n;
    if (ahead) {
      // The prefetched buffer itself goes into the message (the one sent
      // last goes back to the prefetcher for reuse): no copy.
      absl::Status next = ahead->Take(*chunk);
      n = next.ok() ? absl::StatusOr<size_t>(chunk->size()) : next;
    } else {
      chunk->resize(chunk_bytes);
      n = file_reader.Read(std::span<char>(chunk->data(), chunk->size()));
      if (n.ok()) chunk->resize(*n);
    }
    reading += Clock::now() - read_start;
    if (!n.ok()) return ToGrpcStatus(n.status());
    position += *n;
    response.clear_block_sha256();
    // Read() checked every block of this chunk (unless the receiver does):
    // their digests may go out.
    while (next_digest < digests.size() && next_digest * kChecksumBlockBytes < position) {
      response.mutable_block_sha256()->append(
          reinterpret_cast<const char*>(digests[next_digest].data()), digest_bytes);
      ++next_digest;
    }
    // The first message goes out even for an empty range: it carries the info.
    if (*n == 0 && !first) break;
    if (!writer->Write(response)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
    watch->Touch();
    if (*n == 0) break;
    if (first) {
      response.clear_file();
      response.clear_block_sha256_follow();
      response.clear_block_algorithm();
    }
  }
  if (request->want_block_sha256()) {
    const Clock::duration total = Clock::now() - start;
    spdlog::info("sent {}/{} for a copy: {} bytes in {} ms (reading {} ms, sending {} ms)",
                 request->video_id(), request->name(), position, WholeMs(total), WholeMs(reading),
                 WholeMs(total - reading));
  }
  return grpc::Status::OK;
}

grpc::Status StorageServiceImpl::Pull(grpc::ServerContext* context, const v1::PullRequest* request,
                                      v1::PullResponse* response) {
  if (grpc::Status denied = options_.auth.Check(*context); !denied.ok()) return denied;
  if (options_.puller == nullptr) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        "this node does not copy from other nodes; relay the copy");
  }
  absl::StatusOr<PullResult> pulled =
      options_.puller->Pull({.video_id = request->video_id(),
                             .name = request->name(),
                             .source_address = request->source_address(),
                             .size = request->size(),
                             .sha256 = request->sha256()},
                            [context] { return context->IsCancelled(); });
  if (!pulled.ok()) return ToGrpcStatus(pulled.status());
  if (!pulled->source_error.ok()) {
    response->mutable_source_error()->set_code(static_cast<int>(pulled->source_error.code()));
    response->mutable_source_error()->set_message(
        absl::StrCat("node ", request->source_address(), ": ", pulled->source_error.message()));
    return grpc::Status::OK;
  }
  spdlog::debug("pulled {}/{} ({} bytes) from {}", pulled->file.video_id, pulled->file.name,
                pulled->file.size, request->source_address());
  ToProto(pulled->file, response->mutable_file());
  return grpc::Status::OK;
}

grpc::Status StorageServiceImpl::Stat(grpc::ServerContext* context, const v1::StatRequest* request,
                                      v1::StatResponse* response) {
  if (grpc::Status denied = options_.auth.Check(*context); !denied.ok()) return denied;
  absl::StatusOr<StoredFile> file = engine_.Stat(request->video_id(), request->name());
  if (!file.ok()) return ToGrpcStatus(file.status());
  ToProto(*file, response->mutable_file());
  return grpc::Status::OK;
}

grpc::Status StorageServiceImpl::Delete(grpc::ServerContext* context,
                                        const v1::DeleteRequest* request, v1::DeleteResponse*) {
  if (grpc::Status denied = options_.auth.Check(*context); !denied.ok()) return denied;
  if (!hints_) return ToGrpcStatus(engine_.Delete(request->video_id(), request->name()));
  std::lock_guard key_lock(hints_->KeyLock(request->video_id(), request->name()));
  absl::Status deleted = engine_.Delete(request->video_id(), request->name());
  // A hint of a deleted file would hand it back to its owner.
  if (deleted.ok() || absl::IsNotFound(deleted)) {
    if (absl::Status s = hints_->RemoveKey(request->video_id(), request->name()); !s.ok()) {
      return ToGrpcStatus(s);
    }
  }
  return ToGrpcStatus(deleted);
}

grpc::Status StorageServiceImpl::DeleteVideo(grpc::ServerContext* context,
                                             const v1::DeleteVideoRequest* request,
                                             v1::DeleteVideoResponse* response) {
  if (grpc::Status denied = options_.auth.Check(*context); !denied.ok()) return denied;
  absl::StatusOr<uint64_t> deleted = engine_.DeleteVideo(request->video_id());
  if (!deleted.ok()) return ToGrpcStatus(deleted.status());
  if (hints_) {
    if (absl::Status s = hints_->RemoveVideo(request->video_id()); !s.ok()) return ToGrpcStatus(s);
  }
  response->set_files_deleted(*deleted);
  return grpc::Status::OK;
}

grpc::Status StorageServiceImpl::List(grpc::ServerContext* context, const v1::ListRequest* request,
                                      v1::ListResponse* response) {
  if (grpc::Status denied = options_.auth.Check(*context); !denied.ok()) return denied;
  ListOptions options{.video_id = request->video_id(),
                      .page_token = request->page_token(),
                      .page_size = request->page_size(),
                      .partitions = {request->partitions().begin(), request->partitions().end()},
                      // Clamped so that a huge value stays out of range as an int.
                      .partition_bits = static_cast<int>(std::min<uint32_t>(
                          request->partition_bits(), std::numeric_limits<int>::max()))};
  absl::StatusOr<StoredFilePage> page = engine_.List(options, options_.list_scan_limit);
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (const StoredFile& file : page->files) ToProto(file, response->add_files());
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status StorageServiceImpl::Health(grpc::ServerContext* context, const v1::HealthRequest*,
                                        v1::HealthResponse* response) {
  if (grpc::Status denied = options_.auth.Check(*context); !denied.ok()) return denied;
  absl::StatusOr<StorageUsage> usage = engine_.Usage();
  if (!usage.ok()) return ToGrpcStatus(usage.status());
  {
    std::lock_guard lock(node_id_mu_);
    response->set_node_id(node_id_);
  }
  response->set_uptime_seconds(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_)
          .count());
  response->set_files(usage->files);
  response->set_bytes_used(usage->bytes_used);
  response->set_free_bytes(usage->free_bytes);
  response->set_total_bytes(usage->total_bytes);
  response->set_instance_id(instance_id_);
  v1::IntegrityStats* integrity = response->mutable_integrity();
  if (options_.scrubber != nullptr) {
    const ScrubStats scrub = options_.scrubber->stats();
    v1::ScrubStats* out = integrity->mutable_scrub();
    out->set_bytes_per_second(scrub.bytes_per_second);
    out->set_files_checked(scrub.files_checked);
    out->set_bytes_checked(scrub.bytes_checked);
    out->set_damaged_found(scrub.damaged_found);
    out->set_passes_completed(scrub.passes_completed);
    out->set_last_pass_finished_unix_ms(scrub.last_pass_finished_unix_ms);
  }
  integrity->set_quarantined_total(engine_.quarantine().added_since_open());
  integrity->set_last_quarantine_seq(engine_.quarantine().last_seq());
  response->mutable_integrity()->set_hints(hints_ ? hints_->size() : 0);
  return grpc::Status::OK;
}

grpc::Status StorageServiceImpl::ListHints(grpc::ServerContext* context,
                                           const v1::ListHintsRequest* request,
                                           v1::ListHintsResponse* response) {
  if (grpc::Status denied = options_.auth.Check(*context); !denied.ok()) return denied;
  if (!hints_) return ToGrpcStatus(hints_status_);
  absl::StatusOr<HintPage> page =
      hints_->List(request->intended_node(), request->page_token(), request->page_size());
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (const Hint& hint : page->hints) {
    v1::HintInfo* info = response->add_hints();
    info->set_video_id(hint.video_id);
    info->set_name(hint.name);
    info->set_intended_node(hint.intended_node);
    info->set_size(hint.size);
    info->set_sha256(hint.sha256);
    info->set_created_unix_ms(hint.created_unix_ms);
  }
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status StorageServiceImpl::DropHint(grpc::ServerContext* context,
                                          const v1::DropHintRequest* request,
                                          v1::DropHintResponse* response) {
  if (grpc::Status denied = options_.auth.Check(*context); !denied.ok()) return denied;
  if (!hints_) return ToGrpcStatus(hints_status_);
  if (!IsValidVideoId(request->video_id())) return InvalidArgument("invalid video id");
  if (!IsValidContentName(request->name())) return InvalidArgument("invalid content name");
  if (!IsValidHintNode(request->intended_node())) {
    return InvalidArgument("intended_node is not a valid node id");
  }
  std::optional<std::string> sha256;
  if (request->delete_file()) {
    sha256 = NormalizeSha256Hex(request->sha256());
    if (!sha256) return InvalidArgument("delete_file needs the sha256 (64 hex digits) to delete");
  }
  std::optional<std::string> hint_sha256;
  if (!request->hint_sha256().empty()) {
    hint_sha256 = NormalizeSha256Hex(request->hint_sha256());
    if (!hint_sha256) return InvalidArgument("hint_sha256 is not a SHA-256 (64 hex digits)");
  }
  // Under the file's lock, so that no hinted Put of the same file can record
  // a new hint and commit between the check and the delete below.
  std::lock_guard key_lock(hints_->KeyLock(request->video_id(), request->name()));
  std::optional<Hint> hint =
      hints_->Find(request->video_id(), request->name(), request->intended_node());
  if (!hint) return grpc::Status::OK;  // dropped already (by another web server, say)
  // The caller handed back the version it listed; a rewrite since then left
  // a hint of the newer version, which its owner still lacks.
  if (hint_sha256 && hint->sha256 != *hint_sha256) {
    response->set_hint_kept(true);
    return grpc::Status::OK;
  }
  if (absl::Status s =
          hints_->Remove(request->video_id(), request->name(), request->intended_node());
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  // The copy stays while another hint still needs it, or when it is another
  // version than the caller handed back.
  if (!sha256 || hints_->HasKey(request->video_id(), request->name())) return grpc::Status::OK;
  absl::StatusOr<StoredFile> file = engine_.Stat(request->video_id(), request->name());
  if (!file.ok()) {
    return absl::IsNotFound(file.status()) ? grpc::Status::OK : ToGrpcStatus(file.status());
  }
  if (file->sha256 != *sha256) return grpc::Status::OK;
  absl::Status deleted = engine_.Delete(request->video_id(), request->name());
  if (!deleted.ok() && !absl::IsNotFound(deleted)) return ToGrpcStatus(deleted);
  response->set_file_deleted(deleted.ok());
  return grpc::Status::OK;
}

grpc::Status StorageServiceImpl::ListQuarantined(grpc::ServerContext* context,
                                                 const v1::ListQuarantinedRequest* request,
                                                 v1::ListQuarantinedResponse* response) {
  if (grpc::Status denied = options_.auth.Check(*context); !denied.ok()) return denied;
  const Quarantine::Page page =
      engine_.quarantine().List(request->after_seq(), request->page_size());
  for (const QuarantinedCopy& copy : page.copies) {
    v1::QuarantinedCopy* out = response->add_copies();
    out->set_seq(copy.seq);
    out->set_video_id(copy.video_id);
    out->set_name(copy.name);
    out->set_damage(static_cast<v1::Damage>(static_cast<int>(copy.damage)));
    out->set_expected_sha256(copy.expected_sha256);
    out->set_found_unix_ms(copy.found_unix_ms);
    out->set_found_by(copy.found_by);
  }
  response->set_more(page.more);
  response->set_oldest_kept_seq(page.oldest_kept_seq);
  return grpc::Status::OK;
}

absl::StatusOr<std::unique_ptr<StorageServer>> StorageServer::Start(StorageEngine& engine,
                                                                    StorageServerOptions options) {
  std::unique_ptr<StorageServer> server(new StorageServer);
  server->service_ = std::make_unique<StorageServiceImpl>(engine, options.service);
  if (absl::Status hints = server->service_->hints_status(); !hints.ok()) return hints;

  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address, auth::ServerCredentials(options.tls),
                           &server->port_);
  builder.RegisterService(server->service_.get());
  grpc::ResourceQuota quota("streamgrid-storage");
  quota.SetMaxThreads(options.max_threads);
  builder.SetResourceQuota(quota);
  builder.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
  // gRPC sets SO_REUSEPORT by default, which would let a second node "bind" a
  // port that is already serving and share its traffic.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             static_cast<int>(options.keepalive_time.count()));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             static_cast<int>(options.keepalive_timeout.count()));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Accept client keepalive pings (StorageClient sends one every 30 s on a
  // quiet stream) instead of counting them as abuse after the default 5 min.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
  if (options.interceptors) builder.experimental().SetInterceptorCreators(options.interceptors());
  server->server_ = builder.BuildAndStart();
  if (!server->server_ || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen_address));
  }

  server->node_id_ = options.service.node_id;
  if (server->node_id_.empty()) {
    const std::string& address = options.listen_address;
    server->node_id_ = absl::StrCat(address.substr(0, address.rfind(':')), ":", server->port_);
    server->service_->set_node_id(server->node_id_);
  }
  spdlog::info("storage node {} serving gRPC on port {} ({}, {})", server->node_id_, server->port_,
               options.tls.enabled ? "TLS" : "plaintext",
               options.service.auth.enabled() ? "cluster token required" : "no token");
  return server;
}

StorageServer::~StorageServer() { Shutdown(std::chrono::milliseconds(0)); }

void StorageServer::Shutdown(std::chrono::milliseconds grace) {
  if (shut_down_ || !server_) return;
  shut_down_ = true;
  server_->Shutdown(std::chrono::system_clock::now() + grace);
  server_->Wait();
}

}  // namespace streamgrid::storage
