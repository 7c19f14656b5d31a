#pragma once

#include <memory>

#include "http/router.h"
#include "ingest/ingest.h"
#include "webserver/app_context.h"

namespace streamgrid::webserver {

// GET/HEAD /content/<id>/<file>: a video's files with ranges, ETags and caching.
void AddContentRoutes(http::Router& router, AppContext& app);

// POST /upload: streamed multipart upload, validated by ffprobe, then queued.
void AddUploadRoutes(http::Router& router, AppContext& app);

// /api/uploads: resumable uploads (tus 1.0 core, creation, termination,
// expiration) whose finished files go through `ingest` like POST /upload's.
// Partial uploads live in options.spool_dir/tus and expire after
// options.upload_expiry.
void AddTusRoutes(http::Router& router, AppContext& app, std::shared_ptr<ingest::Ingest> ingest);

// /api/videos (list, get, delete), /healthz and, with app.metrics_text, /metrics.
void AddApiRoutes(http::Router& router, AppContext& app);

// Registers every route the web server has. FAILED_PRECONDITION when the page
// templates cannot be loaded from options.web_root.
absl::Status AddAllRoutes(http::Router& router, AppContext& app);

}  // namespace streamgrid::webserver
