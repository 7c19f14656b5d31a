#include "metrics/grpc_call_series.h"

#include <iterator>

namespace streamgrid::metrics {
namespace {

// From 1 ms (a Stat) to 5 min (a long Pull).
const prometheus::Histogram::BucketBoundaries& DurationBuckets() {
  static const prometheus::Histogram::BucketBoundaries buckets = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
  return buckets;
}

}  // namespace

std::string GrpcCodeName(grpc::StatusCode code) {
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

std::string ShortMethodName(std::string_view full_method) {
  const size_t slash = full_method.rfind('/');
  return std::string(slash == std::string_view::npos ? full_method : full_method.substr(slash + 1));
}

void GrpcCallSeries::Record(std::string_view key, const std::function<Labels()>& labels,
                            grpc::StatusCode code, double seconds) {
  prometheus::Histogram* duration;
  prometheus::Counter* calls;
  {
    std::lock_guard lock(mu_);
    auto it = series_.find(absl::string_view(key.data(), key.size()));
    if (it == series_.end()) {
      Labels made = labels();
      prometheus::Histogram* histogram = &duration_.Add(made, DurationBuckets());
      it = series_.emplace(std::string(key), Series{std::move(made), histogram, {}}).first;
    }
    Series& series = it->second;
    auto counter = series.calls.find(static_cast<int>(code));
    if (counter == series.calls.end()) {
      Labels with_code = series.labels;
      with_code["code"] = GrpcCodeName(code);
      counter = series.calls.emplace(static_cast<int>(code), &calls_.Add(with_code)).first;
    }
    duration = series.duration;
    calls = counter->second;
  }
  calls->Increment();
  duration->Observe(seconds);
}

}  // namespace streamgrid::metrics
