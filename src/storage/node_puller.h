#pragma once

// Node-to-node copies: the storage node's side of the Pull RPC (see
// proto/storage.proto). A migration or a repair asks the node that must hold
// a file to fetch it from a node that has it, so the bytes cross the network
// once instead of being relayed through the web server. The copy is stored
// exactly as a Put would store it: checked against the expected size and
// SHA-256 before it is committed, durable before the answer.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "auth/grpc_auth.h"
#include "storage/storage_client.h"
#include "storage/storage_engine.h"

namespace streamgrid::storage {

struct NodePullerOptions {
  // Token and TLS of the calls this node makes to other nodes.
  auth::ClientSecurity security;
  // Deadline of the whole read from a source node (and of its other calls:
  // call_timeout).
  std::chrono::milliseconds transfer_timeout = std::chrono::minutes(10);
  std::chrono::milliseconds call_timeout = std::chrono::seconds(10);
  // Chunks (of the source's Get, 512 KiB by default) received ahead of the
  // one being stored, per pull: the memory that lets the source's reading and
  // sending overlap this node's hashing and writing.
  size_t receive_ahead_chunks = 8;
  // The HTTP/2 receive window of the channels to sources (0: gRPC's default).
  size_t receive_window_bytes = 8 << 20;
};

// Copies files from other nodes into one engine. Thread-safe.
class NodePuller {
 public:
  // Channels to this many source addresses at most are kept for reuse.
  static constexpr size_t kMaxCachedClients = 64;

  // `engine` must outlive the puller.
  NodePuller(StorageEngine& engine, NodePullerOptions options);

  // Reads `spec`'s file from its source node and stores it here. Returns the
  // stored file, or a result whose source_error (not OK, nothing stored) says
  // why the source could not give that version: its own error (NOT_FOUND,
  // DATA_LOSS, ...), UNAVAILABLE when it does not answer, ABORTED when it
  // holds another version. An error status is this node's: INVALID_ARGUMENT
  // (bad spec), RESOURCE_EXHAUSTED, DATA_LOSS (the bytes did not match), or
  // CANCELLED once `cancelled` returns true (polled between chunks).
  absl::StatusOr<PullResult> Pull(const PullSpec& spec, const std::function<bool()>& cancelled);

 private:
  std::shared_ptr<StorageClient> ClientFor(const std::string& address);
  // After a pull's `mismatch` (DATA_LOSS) with a source that did not verify
  // what it sent: reads the first block whose `received` digest differs from
  // the `sent` one again from `source`, verified there (which quarantines a
  // damaged copy), and returns the DATA_LOSS to answer with, saying whether
  // the source's copy is damaged or the bytes were damaged on the way.
  static absl::Status ConfirmDamage(StorageClient& source, const PullSpec& spec,
                                    std::span<const BlockDigest> received,
                                    std::span<const BlockDigest> sent,
                                    const absl::Status& mismatch);

  StorageEngine& engine_;
  const NodePullerOptions options_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<StorageClient>> clients_;  // guarded by mu_
};

}  // namespace streamgrid::storage
