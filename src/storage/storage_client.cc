#include "storage/storage_client.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/support/channel_arguments.h"
#include "storage/checksum_store.h"
#include "storage/grpc_convert.h"

namespace streamgrid::storage {
namespace {

constexpr size_t kMaxChunkBytes = size_t{1} << 20;

// How often a waiting Pull asks whether its caller is stopping.
constexpr auto kCancelPollInterval = std::chrono::milliseconds(50);

std::chrono::system_clock::time_point DeadlineAfter(std::chrono::milliseconds timeout) {
  return std::chrono::system_clock::now() + timeout;
}

// PutRequest field tags (field number << 3 | length-delimited), for the chunk
// messages we encode by hand: `bytes chunk = 2` and `bytes block_sha256 = 4`.
constexpr char kChunkTag = (2 << 3) | 2;
constexpr char kBlockSha256Tag = (4 << 3) | 2;

void AppendVarint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

// The wire form of PutRequest{chunk: data, block_sha256: digests}: the
// field headers are small slices of their own and `data` is referenced, not
// copied (protobuf would copy it into the message, and gRPC again when
// serializing it, for every replica).
grpc::ByteBuffer EncodeChunk(grpc::Slice data, std::string_view digests) {
  std::string head(1, kChunkTag);
  AppendVarint(head, data.size());
  if (digests.empty()) {
    grpc::Slice slices[] = {grpc::Slice(head), std::move(data)};
    return grpc::ByteBuffer(slices, 2);
  }
  std::string tail(1, kBlockSha256Tag);
  AppendVarint(tail, digests.size());
  tail.append(digests);
  grpc::Slice slices[] = {grpc::Slice(head), std::move(data), grpc::Slice(tail)};
  return grpc::ByteBuffer(slices, 3);
}

grpc::ByteBuffer Encode(const v1::PutRequest& request) {
  grpc::Slice slice(request.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

// The Put method, called with messages we encode ourselves (the generated
// stub would take PutRequest objects); built the way the stub builds it.
const grpc::internal::RpcMethod& PutMethod() {
  static const std::string name =
      absl::StrCat("/", v1::StorageService::service_full_name(), "/Put");
  static const grpc::internal::RpcMethod method(name.c_str(),
                                                grpc::internal::RpcMethod::CLIENT_STREAMING);
  return method;
}

}  // namespace

std::shared_ptr<grpc::Channel> StorageClient::MakeChannel(const std::string& target,
                                                          const auth::ClientSecurity& security,
                                                          size_t receive_window_bytes) {
  grpc::ChannelArguments args;
  // Notice a vanished node during a long, quiet stream (the node accepts pings
  // this often; see StorageServer).
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  if (receive_window_bytes > 0) {
    // gRPC's default window starts at 64 KiB and grows only with its
    // bandwidth-delay estimate, which stays small on a fast link: a sender of
    // large messages would wait for window updates message after message.
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES,
                static_cast<int>(std::min<size_t>(receive_window_bytes, 1 << 30)));
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  }
  return auth::CreateChannel(target, args, security);
}

StorageClient::StorageClient(const std::string& target, StorageClientOptions options)
    : StorageClient(MakeChannel(target, options.security), options) {}

StorageClient::StorageClient(std::shared_ptr<grpc::Channel> channel, StorageClientOptions options)
    : options_(options),
      channel_(std::move(channel)),
      stub_(v1::StorageService::NewStub(channel_)) {}

StorageClient::~StorageClient() = default;

void StorageClient::SetCallDeadline(grpc::ClientContext& context) const {
  context.set_deadline(DeadlineAfter(options_.call_timeout));
}

absl::StatusOr<std::unique_ptr<StorageClient::PutStream>> StorageClient::StartPut(
    std::string_view video_id, std::string_view name, const PutOptions& options) {
  const size_t chunk_bytes = std::clamp<size_t>(options_.put_chunk_bytes, 1, kMaxChunkBytes);
  std::unique_ptr<PutStream> stream(
      new PutStream(chunk_bytes, options.sha256,
                    options.sha256.empty() && !options.sha256_at_commit, options.block_algorithm));
  stream->context_.set_deadline(DeadlineAfter(options_.transfer_timeout));
  stream->writer_.reset(grpc::internal::ClientWriterFactory<grpc::ByteBuffer>::Create(
      channel_.get(), PutMethod(), &stream->context_, &stream->response_));
  v1::PutRequest request;
  v1::PutHeader* header = request.mutable_header();
  header->set_video_id(std::string(video_id));
  header->set_name(std::string(name));
  if (options.size) header->set_total_size(*options.size);
  header->set_sha256(options.sha256);
  header->set_hinted_for(options.hinted_for);
  header->set_block_sha256_follow(options.block_sha256_follow);
  if (options.block_sha256_follow && options.block_algorithm != BlockAlgorithm::kSha256) {
    header->set_block_algorithm(v1::BLOCK_CHECKSUM_XXH3_128);
  }
  if (!stream->writer_->Write(Encode(request))) {
    absl::Status status = stream->Finish();
    return status.ok() ? absl::InternalError("upload ended at its header") : status;
  }
  return stream;
}

absl::StatusOr<StoredFile> StorageClient::Put(std::string_view video_id, std::string_view name,
                                              const ChunkSource& source,
                                              const PutOptions& options) {
  auto stream = StartPut(video_id, name, options);
  if (!stream.ok()) return stream.status();
  std::vector<char> buffer(std::clamp<size_t>(options_.put_chunk_bytes, 1, kMaxChunkBytes));
  while (true) {
    absl::StatusOr<size_t> n = source(buffer);
    if (!n.ok()) return n.status();  // destroying the stream cancels the upload
    if (*n == 0) break;
    if (absl::Status s = (*stream)->Append(std::span<const char>(buffer.data(), *n)); !s.ok()) {
      return s;
    }
  }
  return (*stream)->Commit();
}

absl::StatusOr<StoredFile> StorageClient::PutBytes(std::string_view video_id, std::string_view name,
                                                   std::string_view data) {
  auto stream = StartPut(video_id, name, {.size = data.size()});
  if (!stream.ok()) return stream.status();
  if (absl::Status s = (*stream)->Append(data); !s.ok()) return s;
  return (*stream)->Commit();
}

absl::StatusOr<std::unique_ptr<StorageClient::GetStream>> StorageClient::OpenGet(
    std::string_view video_id, std::string_view name, uint64_t offset, uint64_t length, bool verify,
    bool block_digests, bool receiver_verifies_blocks) {
  std::unique_ptr<GetStream> stream(new GetStream(offset, length, verify));
  stream->want_digests_ = block_digests;
  stream->context_.set_deadline(DeadlineAfter(options_.transfer_timeout));
  v1::GetRequest request;
  request.set_video_id(std::string(video_id));
  request.set_name(std::string(name));
  request.set_offset(offset);
  request.set_length(length);
  request.set_want_block_sha256(block_digests);
  request.set_receiver_verifies_blocks(block_digests && receiver_verifies_blocks);
  stream->reader_ = stub_->Get(&stream->context_, request);
  if (absl::Status s = stream->Open(); !s.ok()) return s;
  return stream;
}

absl::StatusOr<StoredFile> StorageClient::Get(std::string_view video_id, std::string_view name,
                                              uint64_t offset, uint64_t length,
                                              const ChunkSink& sink) {
  auto stream = OpenGet(video_id, name, offset, length);
  if (!stream.ok()) return stream.status();
  while (true) {
    absl::StatusOr<std::span<const char>> chunk = (*stream)->Next();
    if (!chunk.ok()) return chunk.status();
    if (chunk->empty()) return (*stream)->file();
    if (absl::Status s = sink(*chunk); !s.ok()) return s;
  }
}

absl::StatusOr<PullResult> StorageClient::Pull(const PullSpec& spec,
                                               const std::function<bool()>& cancelled) {
  grpc::ClientContext context;
  // The node moves the whole file within the call: a transfer's deadline.
  context.set_deadline(DeadlineAfter(options_.transfer_timeout));
  v1::PullRequest request;
  request.set_video_id(spec.video_id);
  request.set_name(spec.name);
  request.set_source_address(spec.source_address);
  request.set_size(spec.size);
  request.set_sha256(spec.sha256);
  v1::PullResponse response;
  // Asynchronous, so that a caller stopping can cancel a long copy: the
  // node sees the cancellation between chunks and stores nothing.
  std::mutex mu;
  std::condition_variable done_cv;
  std::optional<grpc::Status> done;
  stub_->async()->Pull(&context, &request, &response, [&](grpc::Status status) {
    std::lock_guard lock(mu);
    done = std::move(status);
    done_cv.notify_all();
  });
  {
    std::unique_lock lock(mu);
    bool cancel_sent = false;
    while (!done_cv.wait_for(lock, kCancelPollInterval, [&] { return done.has_value(); })) {
      if (!cancel_sent && cancelled && cancelled()) {
        context.TryCancel();  // the callback still comes, with CANCELLED
        cancel_sent = true;
      }
    }
  }
  const grpc::Status status = *done;
  if (!status.ok()) return ToAbslStatus(status);
  PullResult result;
  if (response.has_source_error()) {
    result.source_error =
        absl::Status(static_cast<absl::StatusCode>(response.source_error().code()),
                     response.source_error().message());
    // A node must not answer "OK" as an error: take it as unknown.
    if (result.source_error.ok()) result.source_error = absl::UnknownError("source failed");
    return result;
  }
  if (!response.has_file()) return absl::InternalError("the node answered a Pull without a file");
  result.file = FromProto(response.file());
  return result;
}

absl::StatusOr<StoredFile> StorageClient::Stat(std::string_view video_id, std::string_view name) {
  grpc::ClientContext context;
  SetCallDeadline(context);
  v1::StatRequest request;
  request.set_video_id(std::string(video_id));
  request.set_name(std::string(name));
  v1::StatResponse response;
  grpc::Status status = stub_->Stat(&context, request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  return FromProto(response.file());
}

absl::Status StorageClient::Delete(std::string_view video_id, std::string_view name) {
  grpc::ClientContext context;
  SetCallDeadline(context);
  v1::DeleteRequest request;
  request.set_video_id(std::string(video_id));
  request.set_name(std::string(name));
  v1::DeleteResponse response;
  return ToAbslStatus(stub_->Delete(&context, request, &response));
}

absl::StatusOr<uint64_t> StorageClient::DeleteVideo(std::string_view video_id) {
  grpc::ClientContext context;
  SetCallDeadline(context);
  v1::DeleteVideoRequest request;
  request.set_video_id(std::string(video_id));
  v1::DeleteVideoResponse response;
  grpc::Status status = stub_->DeleteVideo(&context, request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  return response.files_deleted();
}

absl::StatusOr<StoredFilePage> StorageClient::List(std::string_view video_id,
                                                   std::string_view page_token,
                                                   uint32_t page_size) {
  return List(ListOptions{.video_id = std::string(video_id),
                          .page_token = std::string(page_token),
                          .page_size = page_size});
}

absl::StatusOr<StoredFilePage> StorageClient::List(const ListOptions& options) {
  grpc::ClientContext context;
  SetCallDeadline(context);
  v1::ListRequest request;
  request.set_video_id(options.video_id);
  request.set_page_token(options.page_token);
  request.set_page_size(options.page_size);
  if (!options.partitions.empty()) {
    request.mutable_partitions()->Add(options.partitions.begin(), options.partitions.end());
    // A negative count goes out as a huge one, which the node refuses as well.
    request.set_partition_bits(static_cast<uint32_t>(options.partition_bits));
  }
  v1::ListResponse response;
  grpc::Status status = stub_->List(&context, request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  StoredFilePage page;
  page.files.reserve(response.files_size());
  for (const v1::FileInfo& file : response.files()) page.files.push_back(FromProto(file));
  page.next_page_token = response.next_page_token();
  return page;
}

absl::StatusOr<NodeHealth> StorageClient::Health() {
  grpc::ClientContext context;
  SetCallDeadline(context);
  v1::HealthResponse response;
  grpc::Status status = stub_->Health(&context, v1::HealthRequest(), &response);
  if (!status.ok()) return ToAbslStatus(status);
  return NodeHealth{.node_id = response.node_id(),
                    .uptime_seconds = response.uptime_seconds(),
                    .files = response.files(),
                    .bytes_used = response.bytes_used(),
                    .free_bytes = response.free_bytes(),
                    .total_bytes = response.total_bytes(),
                    .instance_id = response.instance_id(),
                    .integrity = response.integrity()};
}

absl::StatusOr<QuarantinePage> StorageClient::ListQuarantined(uint64_t after_seq,
                                                              uint32_t page_size) {
  grpc::ClientContext context;
  SetCallDeadline(context);
  v1::ListQuarantinedRequest request;
  request.set_after_seq(after_seq);
  request.set_page_size(page_size);
  v1::ListQuarantinedResponse response;
  grpc::Status status = stub_->ListQuarantined(&context, request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  return QuarantinePage{.copies = {response.copies().begin(), response.copies().end()},
                        .more = response.more(),
                        .oldest_kept_seq = response.oldest_kept_seq()};
}

absl::StatusOr<HintPage> StorageClient::ListHints(std::string_view intended_node,
                                                  std::string_view page_token, uint32_t page_size) {
  grpc::ClientContext context;
  SetCallDeadline(context);
  v1::ListHintsRequest request;
  request.set_intended_node(std::string(intended_node));
  request.set_page_token(std::string(page_token));
  request.set_page_size(page_size);
  v1::ListHintsResponse response;
  grpc::Status status = stub_->ListHints(&context, request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  HintPage page;
  page.hints.reserve(response.hints_size());
  for (const v1::HintInfo& info : response.hints()) {
    page.hints.push_back({.video_id = info.video_id(),
                          .name = info.name(),
                          .intended_node = info.intended_node(),
                          .size = info.size(),
                          .sha256 = info.sha256(),
                          .created_unix_ms = info.created_unix_ms()});
  }
  page.next_page_token = response.next_page_token();
  return page;
}

absl::StatusOr<StorageClient::DropHintResult> StorageClient::DropHint(
    std::string_view video_id, std::string_view name, std::string_view intended_node,
    std::optional<std::string> delete_sha256, std::optional<std::string> only_if_sha256) {
  grpc::ClientContext context;
  SetCallDeadline(context);
  v1::DropHintRequest request;
  request.set_video_id(std::string(video_id));
  request.set_name(std::string(name));
  request.set_intended_node(std::string(intended_node));
  if (delete_sha256) {
    request.set_delete_file(true);
    request.set_sha256(*delete_sha256);
  }
  if (only_if_sha256) request.set_hint_sha256(*only_if_sha256);
  v1::DropHintResponse response;
  grpc::Status status = stub_->DropHint(&context, request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  return DropHintResult{.hint_kept = response.hint_kept(), .file_deleted = response.file_deleted()};
}

// ---------------------------------------------------------------------------
// PutStream

StorageClient::PutStream::PutStream(size_t chunk_bytes, std::string expected_sha256, bool hash,
                                    BlockAlgorithm block_algorithm)
    : chunk_bytes_(chunk_bytes),
      expected_sha256_(std::move(expected_sha256)),
      hash_(hash),
      digest_bytes_(DigestBytes(block_algorithm)) {}

StorageClient::PutStream::~PutStream() { Cancel(); }

absl::Status StorageClient::PutStream::Append(std::span<const char> data) {
  if (finished_) {
    return finished_->ok() ? absl::FailedPreconditionError("upload already committed") : *finished_;
  }
  if (hash_) hasher_.Update(data);
  while (!data.empty()) {
    if (!pending_) pending_ = std::make_unique_for_overwrite<char[]>(chunk_bytes_);
    const size_t take = std::min(chunk_bytes_ - pending_size_, data.size());
    std::memcpy(pending_.get() + pending_size_, data.data(), take);
    pending_size_ += take;
    data = data.subspan(take);
    if (pending_size_ == chunk_bytes_) {
      if (absl::Status s = SendChunk(); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status StorageClient::PutStream::AppendShared(const grpc::Slice& data) {
  if (finished_) {
    return finished_->ok() ? absl::FailedPreconditionError("upload already committed") : *finished_;
  }
  std::span<const char> bytes(reinterpret_cast<const char*>(data.begin()), data.size());
  size_t offset = 0;
  if (pending_size_ > 0) {
    // Top up the buffered chunk first (copied), so the bytes stay in order.
    offset = std::min(chunk_bytes_ - pending_size_, bytes.size());
    if (absl::Status s = Append(bytes.first(offset)); !s.ok()) return s;
    if (pending_size_ > 0) return absl::OkStatus();  // all of it went into the buffer
  }
  if (hash_) hasher_.Update(bytes.subspan(offset));
  while (offset < bytes.size()) {
    const size_t take = std::min(chunk_bytes_, bytes.size() - offset);
    // sub() references the same bytes (no copy).
    grpc::Slice part = offset == 0 && take == bytes.size() ? data : data.sub(offset, offset + take);
    if (absl::Status s = SendSlice(std::move(part)); !s.ok()) return s;
    offset += take;
  }
  return absl::OkStatus();
}

absl::Status StorageClient::PutStream::SendChunk() {
  // The buffer itself becomes the message's slice, freed by gRPC once sent.
  char* buffer = pending_.release();
  const size_t size = pending_size_;
  pending_size_ = 0;
  return SendSlice(grpc::Slice(buffer, size, [](void* p) { delete[] static_cast<char*>(p); }));
}

absl::Status StorageClient::PutStream::SendSlice(grpc::Slice data) {
  if (!writer_->Write(EncodeChunk(std::move(data), pending_digests_))) {
    // The node ended the call (an error) or the connection broke: its status says which.
    absl::Status status = Finish();
    return status.ok() ? absl::InternalError("node ended the upload early") : status;
  }
  pending_digests_.clear();
  return absl::OkStatus();
}

void StorageClient::PutStream::AddBlockDigests(std::span<const BlockDigest> digests) {
  for (const BlockDigest& digest : digests) {
    pending_digests_.append(reinterpret_cast<const char*>(digest.data()), digest_bytes_);
  }
}

absl::StatusOr<StoredFile> StorageClient::PutStream::Commit() { return Commit(std::string()); }

absl::StatusOr<StoredFile> StorageClient::PutStream::Commit(std::string sha256) {
  if (finished_) {
    return finished_->ok() ? absl::FailedPreconditionError("upload already committed") : *finished_;
  }
  if (pending_size_ > 0) {
    if (absl::Status s = SendChunk(); !s.ok()) return s;
  }
  v1::PutRequest finish;
  if (sha256.empty() && hash_) sha256 = hasher_.FinishHex();
  finish.mutable_finish()->set_sha256(sha256);
  finish.set_block_sha256(std::move(pending_digests_));
  pending_digests_.clear();
  // A failed write shows in the status that Finish() returns.
  writer_->Write(Encode(finish), grpc::WriteOptions().set_last_message());
  finished_ = ToAbslStatus(writer_->Finish());
  if (!finished_->ok()) return *finished_;
  return FromProto(response_.file());
}

absl::Status StorageClient::PutStream::Finish() {
  if (finished_) return *finished_;
  writer_->WritesDone();
  finished_ = ToAbslStatus(writer_->Finish());
  return *finished_;
}

void StorageClient::PutStream::Cancel() {
  if (finished_ || !writer_) return;
  // No finish message was sent, so the node stores nothing whatever happens;
  // cancelling just frees it (and us) at once.
  context_.TryCancel();
  Finish().IgnoreError();
}

void StorageClient::PutStream::Interrupt() {
  // TryCancel is thread-safe and wakes a Write or Finish blocked on the call;
  // the owner's thread then sees the call end and finishes it.
  context_.TryCancel();
}

// ---------------------------------------------------------------------------
// GetStream

StorageClient::GetStream::GetStream(uint64_t offset, uint64_t length, bool verify)
    : offset_(offset), length_(length), verify_(verify) {}

void StorageClient::GetStream::Interrupt() {
  // Thread-safe, as PutStream::Interrupt; the reading thread finishes the call.
  context_.TryCancel();
}

StorageClient::GetStream::~GetStream() {
  if (finished_ || !reader_) return;
  context_.TryCancel();
  reader_->Finish();
}

absl::Status StorageClient::GetStream::Open() {
  if (!reader_->Read(&response_)) {
    absl::Status status = Finish();
    return status.ok() ? absl::InternalError("node sent no file info") : status;
  }
  if (!response_.has_file()) return absl::InternalError("node sent data before the file info");
  file_ = FromProto(response_.file());
  if (verify_ && offset_ == 0 && (length_ == 0 || length_ >= file_.size)) hasher_.emplace();
  digests_follow_ = want_digests_ && response_.block_sha256_follow();
  if (digests_follow_) {
    switch (response_.block_algorithm()) {
      case v1::BLOCK_CHECKSUM_SHA256:
        block_algorithm_ = BlockAlgorithm::kSha256;
        break;
      case v1::BLOCK_CHECKSUM_XXH3_128:
        block_algorithm_ = BlockAlgorithm::kXxh3_128;
        break;
      default:
        return absl::DataLossError(absl::StrCat("node sent block digests of an unknown algorithm (",
                                                static_cast<int>(response_.block_algorithm()),
                                                ") for ", file_.video_id, "/", file_.name));
    }
  }
  first_unread_ = true;
  return TakeBlockDigests();
}

absl::Status StorageClient::GetStream::TakeBlockDigests() {
  if (!digests_follow_) return absl::OkStatus();
  const std::string& raw = response_.block_sha256();
  const size_t digest_bytes = DigestBytes(block_algorithm_);
  // At most one digest per block of the file: a node cannot grow this list
  // beyond what the file's size allows.
  const uint64_t blocks = (file_.size + kChecksumBlockBytes - 1) / kChecksumBlockBytes;
  if (raw.size() % digest_bytes != 0 ||
      raw.size() / digest_bytes > blocks - block_digests_.size()) {
    return absl::DataLossError(
        absl::StrCat("node sent malformed block digests for ", file_.video_id, "/", file_.name));
  }
  for (size_t at = 0; at < raw.size(); at += digest_bytes) {
    BlockDigest& digest = block_digests_.emplace_back();
    std::memcpy(digest.data(), raw.data() + at, digest_bytes);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::span<const char>> StorageClient::GetStream::Next() {
  if (!pending_.empty()) return std::exchange(pending_, {});
  while (true) {
    if (first_unread_) {
      first_unread_ = false;
    } else {
      if (finished_) {
        if (!finished_->ok()) return *finished_;
        return std::span<const char>();
      }
      if (!reader_->Read(&response_)) {
        if (absl::Status s = Finish(); !s.ok()) return s;
        return std::span<const char>();
      }
      if (absl::Status s = TakeBlockDigests(); !s.ok()) {
        context_.TryCancel();
        finished_ = s;
        reader_->Finish();
        return s;
      }
    }
    const std::string& chunk = response_.chunk();
    received_ += chunk.size();
    if (hasher_) hasher_->Update(chunk);
    if (!chunk.empty()) return std::span<const char>(chunk);
  }
}

absl::Status StorageClient::GetStream::NextInto(std::string& chunk) {
  const bool whole_message = pending_.empty();
  absl::StatusOr<std::span<const char>> next = Next();
  if (!next.ok()) return next.status();
  if (whole_message && !next->empty()) {
    // Next() handed out the whole of response_'s chunk: take it as it is.
    chunk.swap(*response_.mutable_chunk());
  } else {
    chunk.assign(next->data(), next->size());
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> StorageClient::GetStream::Read(std::span<char> buffer) {
  if (buffer.empty()) return 0;
  if (pending_.empty()) {
    absl::StatusOr<std::span<const char>> next = Next();
    if (!next.ok()) return next.status();
    pending_ = *next;
    if (pending_.empty()) return 0;
  }
  const size_t n = std::min(buffer.size(), pending_.size());
  std::copy_n(pending_.data(), n, buffer.data());
  pending_ = pending_.subspan(n);
  return n;
}

absl::Status StorageClient::GetStream::Finish() {
  if (finished_) return *finished_;
  finished_ = ToAbslStatus(reader_->Finish());
  if (!finished_->ok()) return *finished_;
  // The node's answer must be exactly the range it promised, and a whole file
  // must match its checksum: catch truncation and corruption in transit.
  const uint64_t available = file_.size > offset_ ? file_.size - offset_ : 0;
  const uint64_t expected = length_ == 0 ? available : std::min(length_, available);
  if (received_ != expected) {
    finished_ =
        absl::DataLossError(absl::StrCat("received ", received_, " bytes of ", file_.video_id, "/",
                                         file_.name, ", expected ", expected));
  } else if (hasher_ && hasher_->FinishHex() != file_.sha256) {
    finished_ = absl::DataLossError(
        absl::StrCat(file_.video_id, "/", file_.name, " does not match its sha256"));
  }
  return *finished_;
}

}  // namespace streamgrid::storage
