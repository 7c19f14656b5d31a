#pragma once

#include <grpcpp/support/server_interceptor.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <vector>

#include "metrics/grpc_call_series.h"

namespace streamgrid::metrics {

// Counts a gRPC server's calls into `registry` (which must outlive it):
//   streamgrid_grpc_server_calls_total{method,code}
//   streamgrid_grpc_server_call_duration_seconds{method} (histogram)
// `method` is the short name ("Put"), `code` the status code's name
// ("OK", "DATA_LOSS"). A call is counted when its status is sent. Install it
// with Interceptors(); thread-safe.
class GrpcServerMetrics {
 public:
  explicit GrpcServerMetrics(prometheus::Registry& registry);

  // A factory list for ServerBuilder::experimental().SetInterceptorCreators;
  // the factories refer to this object, which must outlive the server.
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
  Interceptors();

  // Records one call (what the interceptor does; public for tests).
  void Record(std::string_view full_method, grpc::StatusCode code, double seconds);

 private:
  class Factory;
  prometheus::Family<prometheus::Counter>& calls_;
  prometheus::Family<prometheus::Histogram>& duration_;
  GrpcCallSeries series_;  // keyed by the full method name
};

}  // namespace streamgrid::metrics
