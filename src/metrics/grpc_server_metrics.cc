#include "metrics/grpc_server_metrics.h"

#include <chrono>

namespace streamgrid::metrics {
namespace {

// gRPC's names for its status codes, as grpc_status_code_to_string has them.
std::string CodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i < static_cast<int>(std::size(kNames)) ? kNames[i] : std::to_string(i);
}

// "/pkg.Service/Put" -> "Put".
std::string ShortName(std::string_view full_method) {
  const size_t slash = full_method.rfind('/');
  return std::string(slash == std::string_view::npos ? full_method : full_method.substr(slash + 1));
}

// From 1 ms (a Stat) to 5 min (a long Pull).
const prometheus::Histogram::BucketBoundaries& DurationBuckets() {
  static const prometheus::Histogram::BucketBoundaries buckets = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
  return buckets;
}

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
                    .Register(registry)) {}

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
GrpcServerMetrics::Interceptors() {
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> out;
  out.push_back(std::make_unique<Factory>(*this));
  return out;
}

void GrpcServerMetrics::Record(std::string_view full_method, grpc::StatusCode code,
                               double seconds) {
  prometheus::Histogram* duration;
  prometheus::Counter* calls;
  {
    std::lock_guard lock(mu_);
    auto it = methods_.find(absl::string_view(full_method.data(), full_method.size()));
    if (it == methods_.end()) {
      it = methods_
               .emplace(
                   std::string(full_method),
                   Method{&duration_.Add({{"method", ShortName(full_method)}}, DurationBuckets()),
                          {}})
               .first;
    }
    Method& method = it->second;
    auto counter = method.calls.find(static_cast<int>(code));
    if (counter == method.calls.end()) {
      counter =
          method.calls
              .emplace(static_cast<int>(code),
                       &calls_.Add({{"method", ShortName(full_method)}, {"code", CodeName(code)}}))
              .first;
    }
    duration = method.duration;
    calls = counter->second;
  }
  calls->Increment();
  duration->Observe(seconds);
}

}  // namespace streamgrid::metrics
