#include "metadata/video_metadata_service.h"

namespace streamgrid {

std::string_view VideoStatusName(VideoStatus status) {
  switch (status) {
    case VideoStatus::kProcessing:
      return "processing";
    case VideoStatus::kReady:
      return "ready";
    case VideoStatus::kFailed:
      return "failed";
  }
  // Only reachable through a cast of an out-of-range integer.
  return "unknown";
}

std::optional<VideoStatus> ParseVideoStatus(std::string_view name) {
  for (VideoStatus status : {VideoStatus::kProcessing, VideoStatus::kReady, VideoStatus::kFailed}) {
    if (VideoStatusName(status) == name) return status;
  }
  return std::nullopt;
}

}  // namespace streamgrid
