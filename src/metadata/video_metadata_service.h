#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "metadata/record_change_hub.h"

namespace streamgrid {

enum class VideoStatus { kProcessing, kReady, kFailed };

// "processing", "ready" or "failed": the API's spelling.
std::string_view VideoStatusName(VideoStatus status);
// Inverse of VideoStatusName; nullopt for anything else.
std::optional<VideoStatus> ParseVideoStatus(std::string_view name);

// One rung of the bitrate ladder as it was encoded.
struct Rendition {
  std::string name;  // e.g. "720p"
  int width = 0;
  int height = 0;
  int64_t bitrate = 0;  // target video bits per second
  bool operator==(const Rendition&) const = default;
};

struct VideoRecord {
  std::string id;
  std::string title;  // the uploaded file's original name
  VideoStatus status = VideoStatus::kProcessing;
  int progress = 0;             // 0..100, transcoding progress
  double duration_seconds = 0;  // from ffprobe; 0 while unknown
  std::vector<Rendition> renditions;
  std::string error;  // why it failed; empty unless status == kFailed
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
  // While processing: HLS playlists listing the segments stored so far and the
  // master playlist are in the content service, so the video can be watched
  // from the start while the rest is encoded.
  bool playable = false;
  // Ready with seek-bar previews (storyboard.jpg and storyboard.vtt, made
  // since storyboards were; older videos have none).
  bool storyboard = false;
  bool operator==(const VideoRecord&) const = default;
};

struct ListOptions {
  int page_size = 20;                 // clamped to [1, 1000]
  std::string page_token;             // empty for the first page; else a previous next_page_token
  std::optional<VideoStatus> status;  // only videos in this state, when set
};

struct VideoPage {
  std::vector<VideoRecord> videos;  // newest first
  std::string next_page_token;      // empty when this is the last page
};

// Where video records live. Implementations are thread-safe; calls may block on
// disk or network, so callers on an event loop run them off it.
//
// Video IDs sort by creation time (see common/ids.h), which is what "newest first"
// orders by.
class VideoMetadataService {
 public:
  virtual ~VideoMetadataService() = default;

  // Stores a new record. ALREADY_EXISTS if a record with its id exists.
  virtual absl::Status Create(const VideoRecord& record) = 0;

  // The record with `id`, or NOT_FOUND.
  virtual absl::StatusOr<VideoRecord> Get(std::string_view id) = 0;

  // A page of records, newest first. INVALID_ARGUMENT for a malformed page_token.
  virtual absl::StatusOr<VideoPage> List(const ListOptions& options) = 0;

  // Atomically replaces the record with `mutate(current)`; `id`, `title` and
  // `created_at_ms` are kept whatever `mutate` does and `updated_at_ms` is set.
  // `mutate` may run more than once (optimistic concurrency) and must only change
  // the record it is given. Returns the stored record, or NOT_FOUND.
  virtual absl::StatusOr<VideoRecord> Update(std::string_view id,
                                             const std::function<void(VideoRecord&)>& mutate) = 0;

  // Removes the record. NOT_FOUND if there is none.
  virtual absl::Status Delete(std::string_view id) = 0;

  // Calls `changed` whenever the record `id` may have changed (created,
  // updated or deleted) until the returned subscription is destroyed (see
  // RecordChangeHub::Subscription). Every change that completes after this
  // returns is followed by a call; calls may also come for no change. They
  // come on the service's own threads: `changed` must be quick, must not
  // block and must not call the service. UNAVAILABLE when changes cannot be
  // followed now. What a caller does: subscribe, read the record, and read it
  // again after each call, so nothing falls between the read and the wait.
  virtual absl::StatusOr<std::unique_ptr<RecordChangeHub::Subscription>> Subscribe(
      std::string_view id, std::function<void()> changed) = 0;
};

}  // namespace streamgrid
