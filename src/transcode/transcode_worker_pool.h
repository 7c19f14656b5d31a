#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "content/video_content_service.h"
#include "metadata/video_metadata_service.h"
#include "transcode/cancel_token.h"
#include "transcode/transcoder.h"

namespace streamgrid {

struct TranscodeWorkerPoolOptions {
  int workers = 1;  // jobs run at once (each ffmpeg uses every core)
  // Scratch space: each job gets a "job-..." directory here, removed afterwards.
  // Empty means <system temp dir>/streamgrid-transcode.
  std::filesystem::path work_dir;
  TranscodeOptions transcode;
  // Least time between two progress writes to the metadata service.
  std::chrono::milliseconds progress_interval{1000};
};

// Turns uploaded videos into streamable renditions in the background.
//
// A job, for a video whose record is "processing": get the source (the file
// handed to Enqueue(), else the content `<id>/original`), Transcode() it, upload
// every output into the content service (segments first, manifests last, so no
// manifest ever names a missing file), then mark the record "ready" with
// progress 100, its duration and renditions. Progress is written to the record
// while encoding. A failure marks the record "failed" with a message for the
// uploader and deletes every file of the video except `original`. A record that
// disappears meanwhile ends the job and its uploads are deleted.
//
// The pool owns all of a video's content except `original`, which the web layer
// must store before calling Enqueue().
class TranscodeWorkerPool {
 public:
  // Both services must outlive the pool.
  TranscodeWorkerPool(VideoMetadataService& metadata, VideoContentService& content,
                      TranscodeWorkerPoolOptions options);
  // Stops the pool.
  ~TranscodeWorkerPool();

  TranscodeWorkerPool(const TranscodeWorkerPool&) = delete;
  TranscodeWorkerPool& operator=(const TranscodeWorkerPool&) = delete;

  // Starts the workers, after removing job directories a previous run left in
  // work_dir. Does nothing if already started.
  void Start();

  // Kills running encodes, drops queued jobs and joins the workers. Records of
  // interrupted or dropped jobs stay "processing" for RecoverPending() to find
  // after the next Start(). Start() may be called again.
  void Stop();

  // Queues a job for `video_id` unless one for it is already queued or running.
  // The pool takes ownership of `local_source` (a file on the same machine
  // holding the same bytes as `<id>/original`, e.g. the upload's temp file):
  // it is moved into the job's directory, or deleted if the job is a duplicate
  // or never runs. Jobs queued while stopped run after Start().
  void Enqueue(std::string video_id,
               std::optional<std::filesystem::path> local_source = std::nullopt);

  // Drops the queued job for `video_id`, or kills its running encode; used when
  // the video is being deleted. The record is left alone: the running job sees
  // it vanish and removes whatever it had uploaded.
  void Cancel(const std::string& video_id);

  // Queues every video whose record is "processing" (all pages of the metadata
  // service's list); call once after Start(). Returns the listing's error.
  absl::Status RecoverPending();

  // Jobs waiting for a worker (not counting running ones).
  size_t queued() const;

  // Jobs currently running.
  size_t running() const;

 private:
  struct Job {
    std::string video_id;
    std::optional<std::filesystem::path> local_source;
  };

  void WorkerLoop();

  VideoMetadataService& metadata_;
  VideoContentService& content_;
  const TranscodeWorkerPoolOptions options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool started_ = false;
  bool stopping_ = false;
  std::deque<Job> queue_;
  std::set<std::string> active_ids_;             // queued or running
  std::map<std::string, CancelToken*> running_;  // by video id
  std::vector<std::thread> threads_;
  uint64_t next_job_number_ = 0;
};

}  // namespace streamgrid
