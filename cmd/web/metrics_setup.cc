#include "metrics_setup.h"

#include "metrics/exposition.h"

namespace streamgrid::web {
namespace {

// A job's run from seconds (a short clip) to an hour (a long 4K source).
const prometheus::Histogram::BucketBoundaries& JobBuckets() {
  static const prometheus::Histogram::BucketBoundaries buckets = {1,  2.5, 5,   10,  20,   30,
                                                                  60, 120, 300, 600, 1200, 3600};
  return buckets;
}

// The wait for a worker: none when one is idle, jobs' length behind others.
const prometheus::Histogram::BucketBoundaries& WaitBuckets() {
  static const prometheus::Histogram::BucketBoundaries buckets = {0.01, 0.1, 0.5, 1,   5,   10,
                                                                  30,   60,  300, 900, 3600};
  return buckets;
}

}  // namespace

WebMetrics::WebMetrics()
    : http_(registry_),
      node_calls_(registry_),
      transcode_waited_(prometheus::BuildHistogram()
                            .Name("streamgrid_transcode_queue_wait_seconds")
                            .Help("Time transcode jobs waited for a worker of this server.")
                            .Register(registry_)),
      transcode_ran_(prometheus::BuildHistogram()
                         .Name("streamgrid_transcode_job_duration_seconds")
                         .Help("Time transcode jobs of this server took, by outcome.")
                         .Register(registry_)),
      transcode_waited_all_(&transcode_waited_.Add({}, WaitBuckets())) {
  // The outcomes as streamgrid_transcode_jobs_total names them.
  for (auto [outcome, name] :
       {std::pair{JobOutcome::kReady, "ready"}, std::pair{JobOutcome::kFailed, "failed"},
        std::pair{JobOutcome::kSkipped, "skipped"},
        std::pair{JobOutcome::kInterrupted, "interrupted"},
        std::pair{JobOutcome::kRecordGone, "record_deleted"}}) {
    transcode_ran_by_outcome_[outcome] = &transcode_ran_.Add({{"outcome", name}}, JobBuckets());
  }
}

std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface> WebMetrics::NodeInterceptor(
    const std::string& node_id) {
  return node_calls_.InterceptorFor(node_id);
}

void WebMetrics::OnTranscodeJob(const TranscodeJobTiming& timing) {
  transcode_waited_all_->Observe(timing.waited.count());
  auto it = transcode_ran_by_outcome_.find(timing.outcome);
  if (it != transcode_ran_by_outcome_.end()) it->second->Observe(timing.ran.count());
}

std::vector<http::RequestObserver*> WebMetrics::Observers(bool access_log) {
  std::vector<http::RequestObserver*> observers = {&http_};
  if (access_log) observers.push_back(&access_log_);
  return observers;
}

void WebMetrics::WatchServer(const http::HttpServer& server) {
  gauges_.Add("streamgrid_http_connections", "Open HTTP connections.", {},
              [&server] { return server.connections(); });
  gauges_.AddCounter("streamgrid_http_connections_evicted_total",
                     "Idle connections closed to admit new ones at the connection limit.", {},
                     [&server] { return static_cast<double>(server.evicted()); });
}

void WebMetrics::WatchUploads(const std::atomic<int>& in_progress) {
  gauges_.Add("streamgrid_uploads_in_progress", "Uploads being received now.", {},
              [&in_progress] { return in_progress.load(); });
}

void WebMetrics::WatchVideoWaits(const std::atomic<int>& waiting) {
  gauges_.Add("streamgrid_video_waits",
              "GET /api/videos/<id> long polls waiting for their record to change now.", {},
              [&waiting] { return waiting.load(); });
}

void WebMetrics::WatchTranscoder(const TranscodeWorkerPool& pool) {
  gauges_.Add("streamgrid_transcode_jobs_queued", "Transcode jobs waiting for a worker.", {},
              [&pool] { return static_cast<double>(pool.queued()); });
  gauges_.Add("streamgrid_transcode_jobs_running", "Transcode jobs running now.", {},
              [&pool] { return static_cast<double>(pool.running()); });
  const std::string help = "Transcode jobs this server's workers finished, by outcome.";
  using Counts = TranscodeWorkerPool::JobCounts;
  for (auto [outcome, field] :
       {std::pair{"ready", &Counts::ready}, std::pair{"failed", &Counts::failed},
        std::pair{"interrupted", &Counts::interrupted}, std::pair{"skipped", &Counts::skipped}}) {
    gauges_.AddCounter("streamgrid_transcode_jobs_total", help, {{"outcome", outcome}},
                       [&pool, field] { return static_cast<double>(pool.counts().*field); });
  }
}

void WebMetrics::WatchCache(const CachingVideoContentService& cache) {
  gauges_.Add("streamgrid_content_cache_bytes", "Bytes of files held in the content cache.", {},
              [&cache] { return static_cast<double>(cache.stats().bytes); });
  gauges_.Add("streamgrid_content_cache_files", "Files held in the content cache.", {},
              [&cache] { return static_cast<double>(cache.stats().entries); });
  using Stats = ContentCacheStats;
  const std::string help = "Content cache lookups and changes, by kind.";
  for (auto [kind, field] :
       {std::pair{"hit", &Stats::hits}, std::pair{"miss", &Stats::misses},
        std::pair{"fill", &Stats::fills}, std::pair{"eviction", &Stats::evictions},
        std::pair{"invalidation", &Stats::invalidations}}) {
    gauges_.AddCounter("streamgrid_content_cache_events_total", help, {{"kind", kind}},
                       [&cache, field] { return static_cast<double>(cache.stats().*field); });
  }
}

void WebMetrics::WatchRepair(const repair::RepairStats& stats) {
  const auto add = [this](const char* name, const char* help, const std::atomic<uint64_t>& value) {
    gauges_.AddCounter(name, help, {}, [&value] { return static_cast<double>(value.load()); });
  };
  add("streamgrid_repair_files_repaired_total", "Copies made again by self-repair.",
      stats.files_repaired);
  add("streamgrid_repair_bytes_repaired_total", "Bytes copied by self-repair.",
      stats.bytes_repaired);
  add("streamgrid_repair_damaged_reported_total", "Damaged copies reported by storage nodes.",
      stats.damaged_reported);
  add("streamgrid_repair_files_unrecoverable_total", "Files with no intact copy left.",
      stats.files_unrecoverable);
  add("streamgrid_repair_hints_handed_back_total", "Stand-in copies handed back to their owners.",
      stats.hints_handed_back);
  gauges_.Add("streamgrid_repair_hints_pending", "Stand-in copies waiting to be handed back.", {},
              [&stats] { return static_cast<double>(stats.hints_pending.load()); });
}

void WebMetrics::WatchMigration(const Migrator& migrator) {
  // The migration in progress, or the last one (zeros if there never was one).
  const auto reading = [&migrator](auto field) {
    return [&migrator, field] {
      const std::optional<MigrationProgress> progress = migrator.Progress();
      return progress ? static_cast<double>(field(*progress)) : 0.0;
    };
  };
  gauges_.Add("streamgrid_migration_running", "1 while a membership change's migration copies.", {},
              reading([](const MigrationProgress& p) {
                return p.record.finished_unix_ms == 0 && p.record.started_unix_ms != 0;
              }));
  gauges_.Add("streamgrid_migration_partitions_total",
              "Partitions the current (or last) migration moves.", {},
              reading([](const MigrationProgress& p) { return p.record.partitions_total; }));
  gauges_.Add("streamgrid_migration_partitions_done",
              "Partitions the current (or last) migration has moved.", {},
              reading([](const MigrationProgress& p) { return p.partitions_done; }));
  gauges_.Add("streamgrid_migration_bytes_copied",
              "Bytes the current (or last) migration has copied.", {},
              reading([](const MigrationProgress& p) { return p.record.bytes_copied; }));
}

std::string WebMetrics::Text() const { return metrics::MetricsText({&registry_, &gauges_}); }

}  // namespace streamgrid::web
