#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "content/video_content_service.h"
#include "metadata/video_metadata_service.h"
#include "transcode/cancel_token.h"
#include "transcode/early_job.h"
#include "transcode/job_claims.h"
#include "transcode/probe.h"
#include "transcode/transcoder.h"

namespace streamgrid {

enum class JobOutcome;  // transcode/transcode_job.h

// How long one job took, for metrics (TranscodeWorkerPoolOptions::on_job_done).
struct TranscodeJobTiming {
  JobOutcome outcome;
  // From Enqueue() (or a head start's EnqueueEarly()) to a worker taking it.
  std::chrono::duration<double> waited{0};
  // The job itself: probe if needed, encode, stores, the record's update.
  std::chrono::duration<double> ran{0};
};

struct TranscodeWorkerPoolOptions {
  int workers = 1;  // jobs run at once (each ffmpeg uses every core)
  // Scratch space: each job gets a "job-..." directory here, removed afterwards.
  // Empty means <system temp dir>/streamgrid-transcode.
  std::filesystem::path work_dir;
  TranscodeOptions transcode;
  // Least time between two progress writes to the metadata service.
  std::chrono::milliseconds progress_interval{1000};
  // Who may run a job, shared by every server running jobs; must outlive the
  // pool. Null: claims within this pool only (the only server running jobs).
  JobClaims* claims = nullptr;
  // How often to look for "processing" records neither queued nor running
  // here: uploaded through another server, or left by one that died. Zero:
  // never (RecoverPending() at start-up finds what this server left).
  std::chrono::milliseconds rescan_interval{0};
  // A head start's ffmpeg runs at this nice value until its upload is
  // accepted (EarlyJob::Commit()), so that the upload's own writes get the
  // cores first; then at the server's. Zero, or a server that could not raise
  // it back (no CAP_SYS_NICE, RLIMIT_NICE): at the server's throughout.
  int head_start_nice = 19;
  // The stores a job makes while its ffmpeg runs (segments, live playlists)
  // run on threads at this nice value: ffmpeg, whose time is the time to
  // ready, gets the cores first; the stores have slack until it exits (those
  // after it, on the way to ready, run at the server's priority). 0: at the
  // server's.
  int publish_nice = 10;
  // Called on the worker's thread after every job a worker ran (not a head
  // start whose upload was refused); must be quick. May be empty.
  std::function<void(const TranscodeJobTiming&)> on_job_done;
};

// Turns uploaded videos into streamable renditions in the background.
//
// A job, for a video whose record is "processing": get the source (the file
// handed to Enqueue(), else the content `<id>/original`), Transcode() it, upload
// every output into the content service (segments first, each as soon as ffmpeg
// has finished it, manifests last, so no manifest ever names a missing file),
// then mark the record "ready" with
// progress 100, its duration and renditions. Progress is written to the record
// while encoding. A failure marks the record "failed" with a message for the
// uploader and deletes every file of the video except `original`. A record that
// disappears meanwhile ends the job and its uploads are deleted.
//
// The pool owns all of a video's content except `original`, which the web layer
// must store before calling Enqueue().
//
// Several servers may share the metadata and content, each with a pool. A
// worker claims a video (options.claims) right before running its job, not
// when queueing it, so an idle server takes jobs a busy one has queued; a
// video claimed elsewhere is dropped from the queue (a rescan queues it again
// if it is still processing later). The claim is released once the outcome is
// recorded. A job whose claim is lost while it runs is cancelled at once and
// leaves the record and content as they are: the video is the next holder's.
class TranscodeWorkerPool {
 public:
  // Both services must outlive the pool.
  TranscodeWorkerPool(VideoMetadataService& metadata, VideoContentService& content,
                      TranscodeWorkerPoolOptions options);
  // Stops the pool.
  ~TranscodeWorkerPool();

  TranscodeWorkerPool(const TranscodeWorkerPool&) = delete;
  TranscodeWorkerPool& operator=(const TranscodeWorkerPool&) = delete;

  // Starts the workers, and the rescan if rescan_interval is set, after
  // removing job directories a previous run left in work_dir. Does nothing if
  // already started.
  void Start();

  // Kills running encodes, drops queued jobs and joins the workers and the
  // rescan. Records of interrupted or dropped jobs stay "processing" for
  // RecoverPending() to find after the next Start(). Start() may be called
  // again.
  void Stop();

  // Queues a job for `video_id` unless one for it is already queued or running.
  // The pool takes ownership of `local_source` (a file on the same machine
  // holding the same bytes as `<id>/original`, e.g. the upload's temp file):
  // it is moved into the job's directory, or deleted if the job is a duplicate
  // or never runs. Jobs queued while stopped run after Start(). `media_info`,
  // when given, is ProbeMedia()'s description of the original (the caller
  // probed it while accepting the upload): the job does not probe it again.
  void Enqueue(std::string video_id,
               std::optional<std::filesystem::path> local_source = std::nullopt,
               std::optional<MediaInfo> media_info = std::nullopt);

  // A head start for an upload that is not accepted yet: when a worker is idle
  // (nothing queued, fewer jobs running than workers), starts encoding
  // `local_source` (hard-linked into the work dir, so the caller keeps its
  // file) right away, before the record exists and without claiming the
  // video; the job publishes nothing until the returned handle's Commit()
  // (see EarlyJob). Null when no worker is idle, the pool is not running,
  // the id is queued or running already, or the file cannot be linked (another
  // filesystem): the caller then Enqueue()s the video once it is accepted.
  std::unique_ptr<EarlyJob> StartEarly(const std::string& video_id,
                                       const std::filesystem::path& local_source,
                                       const MediaInfo& media_info);

  // Drops the queued job for `video_id`, or kills its running encode and waits
  // (at most `timeout`) until that job has stopped storing: its last store has
  // ended and it has removed what it stored (within its cleanup budget). Used
  // before deleting the video's files, so none lands after them. OK once no
  // job of this pool stores for the video; DEADLINE_EXCEEDED if the job still
  // runs at `timeout` (it stops at its next store or check, and may then leave
  // files: the caller should keep the record so that the delete can be
  // retried). The record is left alone.
  absl::Status Cancel(const std::string& video_id,
                      std::chrono::milliseconds timeout = std::chrono::seconds(20));

  // Queues every video whose record is "processing" (all pages of the metadata
  // service's list); call once after Start(). Returns the listing's error.
  absl::Status RecoverPending();

  // Jobs waiting for a worker (not counting running ones).
  size_t queued() const;

  // Jobs currently running.
  size_t running() const;

  // What became of the jobs workers took from the queue since construction.
  struct JobCounts {
    uint64_t ready = 0;
    uint64_t failed = 0;
    uint64_t interrupted = 0;  // Stop(), Cancel() or a lost claim: left processing
    uint64_t claim_lost = 0;   // of the interrupted ones, those whose claim was lost
    uint64_t skipped = 0;      // record gone or not processing when the job started
    uint64_t record_gone = 0;  // deleted while running
    uint64_t claimed_elsewhere = 0;
    uint64_t claim_errors = 0;  // claim store unreachable: left for a later scan
  };
  JobCounts counts() const;

 private:
  // Shared by an early job and its EarlyJob handle.
  struct EarlyState {
    enum class Phase { kPending, kCommitted, kAborted };
    std::mutex mu;
    std::condition_variable cv;
    Phase phase = Phase::kPending;  // guarded by mu
    // Its ffmpeg's priority, low until committed; null: not lowered.
    std::shared_ptr<ChildPriority> priority;
  };
  class EarlyHandle;

  struct Job {
    std::string video_id;
    std::optional<std::filesystem::path> local_source;
    std::optional<MediaInfo> media_info;
    std::shared_ptr<EarlyState> early;  // null: an accepted video
    std::chrono::steady_clock::time_point queued_at = std::chrono::steady_clock::now();
  };

  void WorkerLoop();
  void RescanLoop();
  // Queues `video_id` unless it is queued or running; true if it was queued.
  bool EnqueueNew(std::string video_id, std::optional<std::filesystem::path> local_source,
                  std::optional<MediaInfo> media_info = std::nullopt);
  // Queues every "processing" record not queued or running, reading at most
  // `max_pages` pages of the listing (negative: all); how many were queued.
  absl::StatusOr<size_t> EnqueueProcessing(int max_pages);
  void Count(JobOutcome outcome, bool claim_lost);
  // Waits until `early` is committed (true) or aborted, or `token` is
  // cancelled (false; marks it aborted so a late Commit() says so).
  static bool AwaitCommit(EarlyState& early, CancelToken& token);
  // A pending head start will not run: its Commit() returns false.
  static void Abort(EarlyState& early);

  VideoMetadataService& metadata_;
  VideoContentService& content_;
  const TranscodeWorkerPoolOptions options_;
  std::unique_ptr<JobClaims> own_claims_;  // when options_.claims is null
  JobClaims& claims_;

  mutable std::mutex mu_;
  std::condition_variable cv_;         // workers wait here
  std::condition_variable rescan_cv_;  // the rescan thread waits here
  bool started_ = false;
  bool stopping_ = false;
  std::deque<Job> queue_;
  std::set<std::string> active_ids_;  // queued or running
  struct RunningJob {
    CancelToken* token;
    // The job may still store (its RunTranscodeJob has not returned);
    // Cancel() waits on storing_cv_ for this to clear or the entry to go.
    bool storing = true;
  };
  std::map<std::string, RunningJob> running_;  // by video id
  std::condition_variable storing_cv_;
  std::vector<std::thread> threads_;
  uint64_t next_job_number_ = 0;
  JobCounts counts_;
  std::chrono::steady_clock::time_point last_claim_warning_{};
};

}  // namespace streamgrid
