#include "metrics/grpc_server_metrics.h"

#include <chrono>

namespace streamgrid::metrics {
namespace {

// Times one call and records it when the status goes out.
class CallInterceptor : public grpc::experimental::Interceptor {
 public:
  CallInterceptor(GrpcServerMetrics& metrics, std::string_view method)
      : metrics_(metrics), method_(method), started_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
      metrics_.Record(method_, methods->GetSendStatus().error_code(), seconds);
    }
    methods->Proceed();
  }

 private:
  GrpcServerMetrics& metrics_;
  std::string_view method_;  // gRPC's own string, alive for the call
  std::chrono::steady_clock::time_point started_;
};

}  // namespace

class GrpcServerMetrics::Factory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(GrpcServerMetrics& metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new CallInterceptor(metrics_, info->method() != nullptr ? info->method() : "");
  }

 private:
  GrpcServerMetrics& metrics_;
};

GrpcServerMetrics::GrpcServerMetrics(prometheus::Registry& registry)
    : calls_(prometheus::BuildCounter()
                 .Name("streamgrid_grpc_server_calls_total")
                 .Help("gRPC calls answered, by method and status code.")
                 .Register(registry)),
      duration_(prometheus::BuildHistogram()
                    .Name("streamgrid_grpc_server_call_duration_seconds")
                    .Help("Time from a call's start to its status, by method.")
                    .Register(registry)),
      series_(calls_, duration_) {}

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
GrpcServerMetrics::Interceptors() {
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> out;
  out.push_back(std::make_unique<Factory>(*this));
  return out;
}

void GrpcServerMetrics::Record(std::string_view full_method, grpc::StatusCode code,
                               double seconds) {
  series_.Record(
      full_method,
      [full_method] {
        return GrpcCallSeries::Labels{{"method", ShortMethodName(full_method)}};
      },
      code, seconds);
}

}  // namespace streamgrid::metrics
