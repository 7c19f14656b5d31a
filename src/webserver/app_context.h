#pragma once

#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <filesystem>
#include <string>

#include "content/video_content_service.h"
#include "metadata/video_metadata_service.h"
#include "transcode/media_policy.h"
#include "transcode/transcode_worker_pool.h"

namespace streamgrid::webserver {

struct WebOptions {
  std::filesystem::path web_root;   // holds templates/ and static/
  std::filesystem::path spool_dir;  // uploads land here before they are accepted
  uint64_t max_upload_bytes = uint64_t{8} << 30;
  MediaLimits media_limits;  // duration, picture size, streams: 413 beyond
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
};

}  // namespace streamgrid::webserver
