#include "metrics/grpc_client_metrics.h"

#include <chrono>
#include <string>
#include <utility>

namespace streamgrid::metrics {
namespace {

// Times one call from its creation and records it when its status arrives.
class CallInterceptor : public grpc::experimental::Interceptor {
 public:
  CallInterceptor(GrpcClientMetrics& metrics, std::string_view node, std::string_view method)
      : metrics_(metrics),
        node_(node),
        method_(method),
        started_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::POST_RECV_STATUS)) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
      metrics_.Record(node_, method_, methods->GetRecvStatus()->error_code(), seconds);
    }
    methods->Proceed();
  }

 private:
  GrpcClientMetrics& metrics_;
  std::string_view node_;    // the factory's, which outlives its channel's calls
  std::string_view method_;  // gRPC's own string, alive for the call
  std::chrono::steady_clock::time_point started_;
};

}  // namespace

class GrpcClientMetrics::Factory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  Factory(GrpcClientMetrics& metrics, std::string node)
      : metrics_(metrics), node_(std::move(node)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* info) override {
    return new CallInterceptor(metrics_, node_, info->method() != nullptr ? info->method() : "");
  }

 private:
  GrpcClientMetrics& metrics_;
  const std::string node_;
};

GrpcClientMetrics::GrpcClientMetrics(prometheus::Registry& registry)
    : calls_(prometheus::BuildCounter()
                 .Name("streamgrid_storage_node_calls_total")
                 .Help("Calls to each storage node, by method and status code (not OK: failed).")
                 .Register(registry)),
      duration_(prometheus::BuildHistogram()
                    .Name("streamgrid_storage_node_call_duration_seconds")
                    .Help("Time from a call to a storage node to its status, by method.")
                    .Register(registry)),
      series_(calls_, duration_) {}

std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>
GrpcClientMetrics::InterceptorFor(std::string node) {
  return std::make_unique<Factory>(*this, std::move(node));
}

void GrpcClientMetrics::Record(std::string_view node, std::string_view full_method,
                               grpc::StatusCode code, double seconds) {
  std::string key(node);
  key.push_back('\0');  // in no node id or method name
  key.append(full_method);
  series_.Record(
      key,
      [&] {
        return GrpcCallSeries::Labels{{"node", std::string(node)},
                                      {"method", ShortMethodName(full_method)}};
      },
      code, seconds);
}

}  // namespace streamgrid::metrics
