#pragma once

#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "metrics/gauges.h"
#include "metrics/grpc_server_metrics.h"
#include "storage/scrubber.h"
#include "storage/storage_engine.h"

namespace streamgrid::storage {

// A storage node's metrics, served in Prometheus's text format at
// http://ADDRESS/metrics by prometheus-cpp's own small HTTP server: its gRPC
// calls by method and status, what it stores, its disk, what its scrubber has
// checked and found, and the copies it quarantined.
class NodeMetrics {
 public:
  // Serves at `listen` (HOST:PORT; port 0 picks a free one). `engine` and
  // `scrubber` must outlive the returned object. UNAVAILABLE when it cannot
  // listen there.
  static absl::StatusOr<std::unique_ptr<NodeMetrics>> Start(const std::string& listen,
                                                            const StorageEngine& engine,
                                                            const Scrubber& scrubber);

  // The interceptor that counts the gRPC calls (see StorageServerOptions).
  metrics::GrpcServerMetrics& grpc() { return grpc_; }
  // The port it listens on.
  int port() const { return port_; }

 private:
  NodeMetrics();

  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<metrics::Gauges> gauges_;
  metrics::GrpcServerMetrics grpc_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

}  // namespace streamgrid::storage
