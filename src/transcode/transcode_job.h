#pragma once

// One job of the TranscodeWorkerPool: the steps between "processing" and
// "ready"/"failed" for a single video. Internal to src/transcode.

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "content/video_content_service.h"
#include "metadata/video_metadata_service.h"
#include "transcode/cancel_token.h"
#include "transcode/probe.h"
#include "transcode/transcoder.h"

namespace streamgrid {

enum class JobOutcome {
  kReady,        // record marked ready
  kFailed,       // record marked failed (or it could not even be marked)
  kSkipped,      // record missing, not processing, or unreadable: nothing done
  kInterrupted,  // `cancel` fired: record left processing for a later run
  kRecordGone,   // record deleted meanwhile: our uploads removed
};

std::string_view JobOutcomeName(JobOutcome outcome);

struct TranscodeJobParams {
  std::string video_id;
  // A local copy of the original, moved into `job_dir`; else it is downloaded.
  std::optional<std::filesystem::path> local_source;
  // Scratch directory for this job (created; the caller removes it).
  std::filesystem::path job_dir;
  std::chrono::milliseconds progress_interval{1000};
  // Called once the record is found processing, before any work: the job is
  // under way (not kSkipped).
  std::function<void()> on_started;
  // ProbeMedia()'s description of the original, when the caller has it: the job
  // then does not probe it again.
  std::optional<MediaInfo> media_info;
  // How often to look for segments ffmpeg has finished, to store them while it
  // encodes the rest.
  std::chrono::milliseconds publish_interval{100};
  // The nice value the stores made while ffmpeg runs drop to (see
  // OutputPublisher::SetBackgroundNice()); 0: the server's.
  int publish_nice = 0;
  // Makes the video playable while it is encoded (EVENT HLS playlists of the
  // stored segments, then the master; the record's `playable` set): see
  // OutputPublisher::EnableLivePlaylists().
  bool live_playlists = true;
  // True when the job was cancelled because another server may now run it (may
  // be empty: never). Such a job leaves what it stored, which may already be the
  // other server's; any other interrupted job removes it.
  std::function<bool()> claim_lost;
  // Set for a head start (TranscodeWorkerPool::StartEarly()): the record does
  // not exist yet. The job starts ffmpeg at once and calls this on a thread of
  // its own; it blocks until the upload is accepted and the video claimed
  // (true: the job then stores outputs, reports progress and runs to an outcome
  // like any job) or never will be (false: ffmpeg is killed, nothing was stored
  // and the job ends kSkipped).
  std::function<bool()> early_gate;
};

// Runs the job described in TranscodeWorkerPool's comment. Cancelling `cancel`
// interrupts it promptly (ffmpeg is killed, transfers stop between chunks).
// Segments are stored as ffmpeg finishes them (OutputPublisher), the rest after
// it exits, manifests and playlists last.
JobOutcome RunTranscodeJob(VideoMetadataService& metadata, VideoContentService& content,
                           const TranscodeOptions& transcode, const TranscodeJobParams& params,
                           CancelToken& cancel);

// `files` in upload order: segments, thumbnail and anything else first, then the
// HLS media playlists, the DASH manifest and finally the HLS master playlist, so
// that every file a playlist or manifest names is stored before it.
std::vector<std::string> UploadOrder(std::vector<std::string> files);

}  // namespace streamgrid
