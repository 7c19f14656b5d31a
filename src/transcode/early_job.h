#pragma once

// An encode begun before its video is accepted: see
// TranscodeWorkerPool::StartEarly(). Kept apart so the upload path can hold
// one without knowing the pool.

namespace streamgrid {

// The caller's handle on an encode started on a local copy of an upload whose
// original is still being made durable and whose record does not exist yet.
// The job stores nothing and writes no record until Commit() returns true.
class EarlyJob {
 public:
  // Without a successful Commit(), aborts the job: its ffmpeg is killed and
  // its scratch files removed (promptly, on the pool's thread); nothing was
  // stored under the video's id.
  virtual ~EarlyJob() = default;

  // Call once the original is durable and the record exists ("processing"):
  // the job may now claim the video, store its outputs and update the record.
  // True if it will (the job then runs to an outcome like any other); false
  // if it is gone (the pool stopped meanwhile): queue the video as usual.
  virtual bool Commit() = 0;
};

}  // namespace streamgrid
