#include "webserver/video_json.h"

#include <ctime>

#include "absl/strings/str_format.h"

namespace streamgrid::webserver {

std::string Rfc3339(int64_t unix_millis) {
  std::time_t seconds = static_cast<std::time_t>(unix_millis / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                         static_cast<int>(unix_millis % 1000));
}

nlohmann::json VideoToJson(const VideoRecord& video) {
  nlohmann::json renditions = nlohmann::json::array();
  for (const Rendition& r : video.renditions) {
    renditions.push_back(
        {{"name", r.name}, {"width", r.width}, {"height", r.height}, {"bitrate", r.bitrate}});
  }
  nlohmann::json j = {
      {"id", video.id},
      {"title", video.title},
      {"status", std::string(VideoStatusName(video.status))},
      {"progress", video.progress},
      {"duration", video.duration_seconds},
      {"renditions", renditions},
      {"error", video.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(video.error)},
      {"created_at", Rfc3339(video.created_at_ms)},
      {"updated_at", Rfc3339(video.updated_at_ms)},
  };
  // Playable while processing: HLS only (its playlists grow as segments are
  // stored); the DASH manifest and the thumbnail come when it is ready.
  const bool ready = video.status == VideoStatus::kReady;
  const bool playable = ready || (video.status == VideoStatus::kProcessing && video.playable);
  j["playable"] = playable;
  std::string base = "/content/" + video.id + "/";
  if (playable) j["hls_url"] = base + "master.m3u8";
  if (ready) {
    j["dash_url"] = base + "manifest.mpd";
    j["thumbnail_url"] = base + "thumbnail.jpg";
    // Seek-bar previews, which videos transcoded before storyboards lack.
    if (video.storyboard) j["storyboard_url"] = base + "storyboard.vtt";
  }
  return j;
}

std::string DumpJson(const nlohmann::json& json) {
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace streamgrid::webserver
