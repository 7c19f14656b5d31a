#pragma once

#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "content/caching_video_content_service.h"
#include "http/access_log.h"
#include "http/server.h"
#include "metrics/gauges.h"
#include "metrics/grpc_client_metrics.h"
#include "metrics/http_metrics.h"
#include "migration/migrator.h"
#include "repair/repair_stats.h"
#include "transcode/transcode_job.h"
#include "transcode/transcode_worker_pool.h"

namespace streamgrid::web {

// The web server's metrics, served at GET /metrics: the HTTP server's
// requests (HttpMetrics), and values read from the components at each scrape.
// Each Watch*() registers readings of a component that must outlive this
// object (or at least every scrape).
class WebMetrics {
 public:
  WebMetrics();

  // What the HTTP server tells of each request: the metrics, and with
  // `access_log` one log line per request too.
  std::vector<http::RequestObserver*> Observers(bool access_log);

  void WatchServer(const http::HttpServer& server);
  void WatchUploads(const std::atomic<int>& in_progress);
  // AppContext::video_waits.
  void WatchVideoWaits(const std::atomic<int>& waiting);
  void WatchTranscoder(const TranscodeWorkerPool& pool);
  void WatchCache(const CachingVideoContentService& cache);
  void WatchRepair(const repair::RepairStats& stats);
  void WatchMigration(const Migrator& migrator);

  // For ClusterOptions::node_interceptor: counts and times each node's calls.
  std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface> NodeInterceptor(
      const std::string& node_id);
  // For TranscodeWorkerPoolOptions::on_job_done: how long jobs wait and run.
  void OnTranscodeJob(const TranscodeJobTiming& timing);

  // Everything now, in Prometheus's text format.
  std::string Text() const;

 private:
  prometheus::Registry registry_;
  metrics::HttpMetrics http_;
  metrics::GrpcClientMetrics node_calls_;
  prometheus::Family<prometheus::Histogram>& transcode_waited_;
  prometheus::Family<prometheus::Histogram>& transcode_ran_;
  prometheus::Histogram* transcode_waited_all_;
  // By JobOutcome; made in the constructor, then only read.
  std::map<JobOutcome, prometheus::Histogram*> transcode_ran_by_outcome_;
  metrics::Gauges gauges_;
  http::AccessLog access_log_;
};

}  // namespace streamgrid::web
