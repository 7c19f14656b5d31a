#include "metrics/http_metrics.h"

#include <prometheus/histogram.h>

#include <atomic>
#include <chrono>
#include <tuple>

#include "absl/container/flat_hash_map.h"

namespace streamgrid::metrics {
namespace {

// From 1 ms (a cached segment) to a minute (a large upload), roughly x2.5.
const prometheus::Histogram::BucketBoundaries& DurationBuckets() {
  static const prometheus::Histogram::BucketBoundaries buckets = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  return buckets;
}

}  // namespace

HttpMetrics::HttpMetrics(prometheus::Registry& registry)
    : requests_(prometheus::BuildCounter()
                    .Name("streamgrid_http_requests_total")
                    .Help("HTTP requests answered, by route, method and status code.")
                    .Register(registry)),
      duration_(prometheus::BuildHistogram()
                    .Name("streamgrid_http_request_duration_seconds")
                    .Help("Time from a request's header to its response's last byte.")
                    .Register(registry)),
      bytes_(prometheus::BuildCounter()
                 .Name("streamgrid_http_response_bytes_total")
                 .Help("Response body bytes sent, by route.")
                 .Register(registry)),
      serial_([] {
        static std::atomic<uint64_t> next{1};
        return next.fetch_add(1);
      }()) {}

const HttpMetrics::Series& HttpMetrics::SeriesFor(std::string_view route, http::Verb method,
                                                  unsigned code) {
  std::lock_guard lock(mu_);
  const auto key =
      std::make_tuple(route.empty() ? nullptr : route.data(), static_cast<int>(method), code);
  auto it = series_.find(key);
  if (it != series_.end()) return it->second;
  const std::string route_label = route.empty() ? "none" : std::string(route);
  const boost::beast::string_view verb = boost::beast::http::to_string(method);
  const std::string method_label(verb.data(), verb.size());
  Series series{
      .requests = &requests_.Add(
          {{"route", route_label}, {"method", method_label}, {"code", std::to_string(code)}}),
      .duration =
          &duration_.Add({{"route", route_label}, {"method", method_label}}, DurationBuckets()),
      .bytes = &bytes_.Add({{"route", route_label}}),
  };
  return series_.emplace(key, series).first->second;
}

void HttpMetrics::OnRequest(const http::RequestRecord& record) {
  // Each event-loop thread remembers the series it has used, so that the
  // common request takes no lock both threads share. Keyed by this object's
  // serial number, not its address, which a later instance may reuse.
  using Key = std::tuple<uint64_t, const char*, int, unsigned>;
  thread_local absl::flat_hash_map<Key, const Series*> known;
  const Key key{serial_, record.route.empty() ? nullptr : record.route.data(),
                static_cast<int>(record.method), record.status};
  const Series*& cached = known[key];
  if (cached == nullptr) cached = &SeriesFor(record.route, record.method, record.status);
  const Series& series = *cached;
  series.requests->Increment();
  series.duration->Observe(std::chrono::duration<double>(record.elapsed).count());
  if (record.body_bytes > 0) series.bytes->Increment(static_cast<double>(record.body_bytes));
}

}  // namespace streamgrid::metrics
