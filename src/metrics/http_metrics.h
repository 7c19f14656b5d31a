#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <mutex>
#include <string>
#include <tuple>

#include "absl/container/node_hash_map.h"
#include "http/server.h"

namespace streamgrid::metrics {

// Counts the HTTP server's answers into `registry` (which must outlive it):
//   streamgrid_http_requests_total{route,method,code}
//   streamgrid_http_request_duration_seconds{route,method} (histogram)
//   streamgrid_http_response_bytes_total{route}
// `route` is the matched route's pattern ("/content/{}/{*}"), or "none" when
// no route matched, so that the number of series stays bounded whatever
// paths clients ask for. Thread-safe.
class HttpMetrics : public http::RequestObserver {
 public:
  explicit HttpMetrics(prometheus::Registry& registry);

  void OnRequest(const http::RequestRecord& record) override;

 private:
  struct Series {
    prometheus::Counter* requests;
    prometheus::Histogram* duration;
    prometheus::Counter* bytes;
  };
  // The series of (route, method, code), made on first use. Looked up by the
  // route pattern's address (stable: see RequestRecord::route), so that the
  // hot path allocates nothing.
  const Series& SeriesFor(std::string_view route, http::Verb method, unsigned code);

  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Family<prometheus::Counter>& bytes_;
  const uint64_t serial_;  // unique per instance in the process
  std::mutex mu_;
  // Guarded by mu_; node-based, so a Series stays where it is as others are added.
  absl::node_hash_map<std::tuple<const char*, int, unsigned>, Series> series_;
};

}  // namespace streamgrid::metrics
