#pragma once

#include <grpcpp/support/status.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"

namespace streamgrid::metrics {

// gRPC's name of `code` ("OK", "DATA_LOSS"), as grpc_status_code_to_string has it.
std::string GrpcCodeName(grpc::StatusCode code);

// "/pkg.Service/Put" -> "Put".
std::string ShortMethodName(std::string_view full_method);

// The series of a pair of families counting gRPC calls by status code and
// timing them, created on first use and then found by a caller's key (the
// full method name, say), so that a call costs one hash lookup under a mutex.
// Both families must outlive this object. Thread-safe.
class GrpcCallSeries {
 public:
  using Labels = std::map<std::string, std::string>;

  GrpcCallSeries(prometheus::Family<prometheus::Counter>& calls,
                 prometheus::Family<prometheus::Histogram>& duration)
      : calls_(calls), duration_(duration) {}

  // Counts one call answered with `code` after `seconds`. `key` names the
  // labels `labels` makes (called only the first time a key is seen); the
  // counters get a "code" label besides.
  void Record(std::string_view key, const std::function<Labels()>& labels, grpc::StatusCode code,
              double seconds);

 private:
  prometheus::Family<prometheus::Counter>& calls_;
  prometheus::Family<prometheus::Histogram>& duration_;
  std::mutex mu_;
  struct Series {
    Labels labels;
    prometheus::Histogram* duration;
    absl::flat_hash_map<int, prometheus::Counter*> calls;  // by code
  };
  absl::flat_hash_map<std::string, Series> series_;  // by key; guarded by mu_
};

}  // namespace streamgrid::metrics
