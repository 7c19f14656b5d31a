#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "auth/grpc_auth.h"
#include "auth/tls.h"
#include "grpcpp/server.h"
#include "grpcpp/support/server_interceptor.h"
#include "proto/storage.grpc.pb.h"
#include "storage/call_watchdog.h"
#include "storage/hint_store.h"
#include "storage/node_puller.h"
#include "storage/scrubber.h"
#include "storage/storage_engine.h"

namespace streamgrid::storage {

// The largest data chunk a Put message may carry.
inline constexpr size_t kMaxPutChunkBytes = size_t{1} << 20;

struct StorageServiceOptions {
  // Reported by Health.
  std::string node_id;
  // A Put or Get stream that moves no message for this long is cancelled.
  std::chrono::milliseconds stream_idle_timeout = std::chrono::seconds(60);
  // Data per Get message (at most 1 MiB).
  size_t get_chunk_bytes = 512 * 1024;
  // Chunks a Get read for a copy (one asking for the block digests: a Pull
  // or a relayed copy) reads and verifies ahead of the one being sent, so
  // that this disk's reads overlap the receiver's writes. Other Gets (small
  // files, ranges) read as they send.
  size_t copy_read_ahead_chunks = 4;
  // Files a List call examines at most (see StorageEngine::List), which bounds
  // its time when a partition filter matches few files.
  size_t list_scan_limit = StorageEngine::kDefaultListScanLimit;
  // Reported in Health.integrity.scrub when set (must outlive the service).
  const Scrubber* scrubber = nullptr;
  // The cluster token every call must carry (none by default); each handler
  // checks it before anything else.
  auth::TokenCheck auth;
  // Serves Pull (copies from other nodes) when set (must outlive the
  // service); Pull is UNIMPLEMENTED otherwise.
  NodePuller* puller = nullptr;
};

// streamgrid.storage.v1.StorageService over a StorageEngine (see
// proto/storage.proto for the protocol and its errors). It uses gRPC's
// synchronous API: each call runs on a thread of its own from the server's
// pool and blocks on disk and on its stream (the pool keeps other threads
// polling meanwhile), so a stream holds at most one message in memory and the
// client is paced by flow control. Idle streams are cancelled by a
// CallWatchdog; thread-safe.
class StorageServiceImpl final : public v1::StorageService::Service {
 public:
  // `engine` must outlive the service.
  StorageServiceImpl(StorageEngine& engine, StorageServiceOptions options);
  ~StorageServiceImpl() override;

  // Sets the id that Health reports (for ids only known once listening).
  void set_node_id(std::string node_id);

  // How many streams were cancelled for idling.
  uint64_t idle_cancellations() const { return watchdog_.cancelled(); }
  // Get streams being served now.
  int open_get_streams() const { return open_get_streams_.load(); }

  grpc::Status Put(grpc::ServerContext* context, grpc::ServerReader<v1::PutRequest>* reader,
                   v1::PutResponse* response) override;
  grpc::Status Get(grpc::ServerContext* context, const v1::GetRequest* request,
                   grpc::ServerWriter<v1::GetResponse>* writer) override;
  grpc::Status Stat(grpc::ServerContext* context, const v1::StatRequest* request,
                    v1::StatResponse* response) override;
  grpc::Status Delete(grpc::ServerContext* context, const v1::DeleteRequest* request,
                      v1::DeleteResponse* response) override;
  grpc::Status DeleteVideo(grpc::ServerContext* context, const v1::DeleteVideoRequest* request,
                           v1::DeleteVideoResponse* response) override;
  grpc::Status List(grpc::ServerContext* context, const v1::ListRequest* request,
                    v1::ListResponse* response) override;
  grpc::Status Health(grpc::ServerContext* context, const v1::HealthRequest* request,
                      v1::HealthResponse* response) override;
  grpc::Status ListHints(grpc::ServerContext* context, const v1::ListHintsRequest* request,
                         v1::ListHintsResponse* response) override;
  grpc::Status DropHint(grpc::ServerContext* context, const v1::DropHintRequest* request,
                        v1::DropHintResponse* response) override;

  // Whether the hint store (DATA/hints, opened by the constructor) is usable;
  // hinted Puts and the hint calls fail with this error otherwise.
  absl::Status hints_status() const { return hints_status_; }
  // The hint store, or null when it could not be opened.
  HintStore* hints() { return hints_.get(); }
  grpc::Status ListQuarantined(grpc::ServerContext* context,
                               const v1::ListQuarantinedRequest* request,
                               v1::ListQuarantinedResponse* response) override;
  grpc::Status Pull(grpc::ServerContext* context, const v1::PullRequest* request,
                    v1::PullResponse* response) override;

  // Random, new for each service (each process start); reported by Health.
  const std::string& instance_id() const { return instance_id_; }

 private:
  StorageEngine& engine_;
  const StorageServiceOptions options_;
  const std::chrono::steady_clock::time_point started_;
  const std::string instance_id_;
  std::mutex node_id_mu_;
  std::string node_id_;  // guarded by node_id_mu_
  CallWatchdog watchdog_;
  std::atomic<int> open_get_streams_{0};
  std::unique_ptr<HintStore> hints_;
  absl::Status hints_status_;
};

struct StorageServerOptions {
  // HOST:PORT; port 0 picks a free port (see StorageServer::port()).
  std::string listen_address = "127.0.0.1:0";
  // An empty node_id defaults to the bound address, HOST:PORT.
  StorageServiceOptions service;
  // Calls served at once at most; more are refused with RESOURCE_EXHAUSTED.
  int max_threads = 256;
  // The node pings a connection idle this long and drops it if no answer comes
  // within the timeout, which cancels its calls (a vanished client).
  std::chrono::milliseconds keepalive_time = std::chrono::seconds(30);
  std::chrono::milliseconds keepalive_timeout = std::chrono::seconds(10);
  // TLS of the listener (plaintext unless enabled).
  auth::ServerTls tls;
  // When set, called once: interceptors for every call (metrics).
  std::function<
      std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>()>
      interceptors;
};

// A gRPC server serving one StorageServiceImpl.
class StorageServer {
 public:
  // Listens and serves until Shutdown(). `engine` must outlive the server.
  static absl::StatusOr<std::unique_ptr<StorageServer>> Start(StorageEngine& engine,
                                                              StorageServerOptions options);
  // Shuts down at once if Shutdown() was not called.
  ~StorageServer();

  StorageServer(const StorageServer&) = delete;
  StorageServer& operator=(const StorageServer&) = delete;

  // The bound port.
  int port() const { return port_; }
  const std::string& node_id() const { return node_id_; }
  StorageServiceImpl& service() { return *service_; }

  // Stops accepting calls, lets running ones finish for up to `grace`, then
  // cancels the rest and waits for their handlers to return. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  StorageServer() = default;

  std::unique_ptr<StorageServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string node_id_;
  bool shut_down_ = false;
};

}  // namespace streamgrid::storage
