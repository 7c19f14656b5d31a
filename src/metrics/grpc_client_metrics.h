#pragma once

#include <grpcpp/support/client_interceptor.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <string_view>

#include "metrics/grpc_call_series.h"

namespace streamgrid::metrics {

// Counts the calls a client makes to each of several servers (the web
// server's calls to the storage nodes) into `registry`, which must outlive it:
//   streamgrid_storage_node_calls_total{node,method,code}
//   streamgrid_storage_node_call_duration_seconds{node,method} (histogram)
// `node` is the server's name given to InterceptorFor(), `method` the short
// name ("Put"), `code` the status code's name; a call other than "OK" is a
// failure. A call is counted when its status arrives, a stream once for the
// whole stream. Thread-safe.
class GrpcClientMetrics {
 public:
  explicit GrpcClientMetrics(prometheus::Registry& registry);

  // A factory for the interceptors of one channel, to the server `node`; it
  // refers to this object, which must outlive the channel.
  std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface> InterceptorFor(
      std::string node);

  // Records one call (what the interceptor does; public for tests).
  void Record(std::string_view node, std::string_view full_method, grpc::StatusCode code,
              double seconds);

 private:
  class Factory;
  prometheus::Family<prometheus::Counter>& calls_;
  prometheus::Family<prometheus::Histogram>& duration_;
  GrpcCallSeries series_;  // keyed by node and full method name
};

}  // namespace streamgrid::metrics
