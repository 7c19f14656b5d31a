#include "storage/storage_service.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <span>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "spdlog/spdlog.h"
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

}  // namespace

StorageServiceImpl::StorageServiceImpl(StorageEngine& engine, StorageServiceOptions options)
    : engine_(engine),
      options_(std::move(options)),
      started_(std::chrono::steady_clock::now()),
      node_id_(options_.node_id),
      watchdog_(options_.stream_idle_timeout) {}

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
  auto upload = engine_.StartUpload(
      header.video_id(), header.name(),
      header.has_total_size() ? std::optional<uint64_t>(header.total_size()) : std::nullopt);
  if (!upload.ok()) return ToGrpcStatus(upload.status());

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
        break;
      }
      case v1::PutRequest::kFinish: {
        auto expected = ExpectedChecksum(header.sha256(), request.finish().sha256());
        if (!expected.ok()) return ToGrpcStatus(expected.status());
        absl::StatusOr<StoredFile> file = (*upload)->Commit(*expected);
        if (!file.ok()) return ToGrpcStatus(file.status());
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
  for (bool first = true;; first = false) {
    std::string* chunk = response.mutable_chunk();
    chunk->resize(chunk_bytes);
    absl::StatusOr<size_t> n = (*reader)->Read(std::span<char>(chunk->data(), chunk->size()));
    if (!n.ok()) return ToGrpcStatus(n.status());
    chunk->resize(*n);
    // The first message goes out even for an empty range: it carries the info.
    if (*n == 0 && !first) break;
    if (!writer->Write(response)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
    watch->Touch();
    if (*n == 0) break;
    if (first) response.clear_file();
  }
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
  return ToGrpcStatus(engine_.Delete(request->video_id(), request->name()));
}

grpc::Status StorageServiceImpl::DeleteVideo(grpc::ServerContext* context,
                                             const v1::DeleteVideoRequest* request,
                                             v1::DeleteVideoResponse* response) {
  if (grpc::Status denied = options_.auth.Check(*context); !denied.ok()) return denied;
  absl::StatusOr<uint64_t> deleted = engine_.DeleteVideo(request->video_id());
  if (!deleted.ok()) return ToGrpcStatus(deleted.status());
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
  return grpc::Status::OK;
}

absl::StatusOr<std::unique_ptr<StorageServer>> StorageServer::Start(StorageEngine& engine,
                                                                    StorageServerOptions options) {
  std::unique_ptr<StorageServer> server(new StorageServer);
  server->service_ = std::make_unique<StorageServiceImpl>(engine, options.service);

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
