#pragma once

#include <nlohmann/json.hpp>

#include "metadata/video_metadata_service.h"

namespace streamgrid::webserver {

// The API's view of a video: id, title, status, progress, duration, renditions,
// error (null unless failed), created_at/updated_at (RFC 3339, UTC) and, once
// ready, the URLs of its manifests, thumbnail and storyboard (a WebVTT track
// of seek-bar previews, absent, 404, for videos transcoded before them).
nlohmann::json VideoToJson(const VideoRecord& video);

// Serializes for a response; invalid UTF-8 in titles is replaced, never fatal.
std::string DumpJson(const nlohmann::json& json);

// Milliseconds since the epoch as "2026-11-23T15:08:10.123Z".
std::string Rfc3339(int64_t unix_millis);

}  // namespace streamgrid::webserver
