#pragma once

// What the two upload routes (multipart POST /upload and the resumable
// /api/uploads) share: the concurrent-upload limit and how a refused file is
// answered.

#include "absl/status/status.h"
#include "http/message.h"
#include "webserver/app_context.h"

namespace streamgrid::webserver {

// How a rejected media file is reported: not a video at all, or not in an
// accepted format (a playlist, an image, ...), is 415; one beyond a limit
// (duration, picture size, streams) 413, like a file over the size limit; a
// damaged one 422; anything else is the server's problem.
http::Response ProbeError(const absl::Status& status);

// One of the --max-concurrent-uploads places, held while an upload's body is
// received and checked.
class UploadSlot {
 public:
  explicit UploadSlot(AppContext& app);
  ~UploadSlot();
  UploadSlot(const UploadSlot&) = delete;
  UploadSlot& operator=(const UploadSlot&) = delete;
  bool held() const { return held_; }

 private:
  AppContext& app_;
  bool held_ = false;
};

// The 503 answered when no UploadSlot is free.
http::Response UploadsBusy(const AppContext& app);

}  // namespace streamgrid::webserver
