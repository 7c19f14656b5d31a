#pragma once

#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "content/video_content_service.h"
#include "http/write_guard.h"
#include "metadata/video_metadata_service.h"
#include "transcode/media_policy.h"
#include "transcode/transcode_worker_pool.h"

namespace streamgrid::webserver {

struct WebOptions {
  std::filesystem::path web_root;   // holds templates/ and static/
  std::filesystem::path spool_dir;  // uploads land here before they are accepted
  uint64_t max_upload_bytes = uint64_t{8} << 30;
  MediaLimits media_limits;  // duration, picture size, streams: 413 beyond
  // Uploads received at once at most; more are refused with 503 before their
  // body is read.
  int max_concurrent_uploads = 8;
  // Encode an accepted-to-be upload while its original is stored
  // (TranscodeWorkerPool::StartEarly) when a worker is idle.
  bool transcode_head_start = true;
  // Resumable uploads left untouched this long are deleted.
  std::chrono::milliseconds upload_expiry = std::chrono::hours(24);
  // The HTTP server's write rules, for the reads that must follow them too
  // (HEAD of a resumable upload).
  http::WriteGuardOptions write_guard;
};

// What the HTTP handlers share: the service layer, the transcoding workers and
// the pool that runs blocking service calls off the event loop. Everything here
// outlives the HTTP server.
struct AppContext {
  WebOptions options;
  VideoMetadataService& metadata;
  VideoContentService& content;
  TranscodeWorkerPool& transcoder;
  boost::asio::thread_pool& blocking;
  std::atomic<int> uploads_in_progress{0};
  // GET /api/videos/<id> requests waiting for their record to change now.
  std::atomic<int> video_waits{0};
  // GET /metrics answers with this (Prometheus text format); no route when
  // null. Called on an event-loop thread: it must be quick.
  std::function<std::string()> metrics_text;
};

}  // namespace streamgrid::webserver
