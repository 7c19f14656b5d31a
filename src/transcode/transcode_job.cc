#include "transcode/transcode_job.h"

#include <algorithm>
#include <atomic>
#include <fstream>
#include <memory>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"
#include "transcode/ffmpeg_args.h"
#include "transcode/live_playlists.h"
#include "transcode/output_publisher.h"
#include "transcode/storyboard.h"

namespace streamgrid {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr size_t kChunkBytes = 1 << 20;
constexpr std::string_view kOriginalName = "original";
// An interrupted job (e.g. the server stopping) spends at most this long
// removing the segments it stored: Stop() must be prompt, and the next run
// replaces whatever is left.
constexpr auto kInterruptedCleanupBudget = std::chrono::seconds(2);

absl::Status Cancelled() { return absl::CancelledError("job cancelled"); }

// Copies `video_id/name` from content into `path`, a chunk at a time.
absl::Status Download(VideoContentService& content, std::string_view video_id,
                      std::string_view name, const fs::path& path, CancelToken& cancel) {
  absl::StatusOr<std::unique_ptr<ContentReader>> reader = content.OpenReader(video_id, name);
  if (!reader.ok()) return reader.status();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::InternalError(absl::StrCat("cannot create ", path.string()));
  std::vector<char> buffer(kChunkBytes);
  while (true) {
    if (cancel.cancelled()) return Cancelled();
    absl::StatusOr<size_t> n = (*reader)->Read(buffer);
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    if (!out.write(buffer.data(), static_cast<std::streamsize>(*n))) {
      return absl::InternalError(absl::StrCat("cannot write ", path.string()));
    }
  }
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path.string()));
  return absl::OkStatus();
}

// Stores the file at `path` as `video_id/name`, a chunk at a time.
absl::Status Upload(VideoContentService& content, std::string_view video_id, std::string_view name,
                    const fs::path& path, CancelToken& cancel) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InternalError(absl::StrCat("cannot open ", path.string()));
  absl::StatusOr<std::unique_ptr<ContentWriter>> writer = content.OpenWriter(video_id, name);
  if (!writer.ok()) return writer.status();
  // An Append() blocked on a node that stopped reading would hold up a cancel
  // (the pool's Cancel() waits for the job's stores to end): abandon it.
  CancelToken::Registration abandon = cancel.OnCancel([raw = writer->get()] { raw->Cancel(); });
  std::vector<char> buffer(kChunkBytes);
  while (in) {
    if (cancel.cancelled()) return Cancelled();
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    std::streamsize n = in.gcount();
    if (n <= 0) break;
    absl::Status appended = (*writer)->Append(std::span<const char>(buffer.data(), n));
    if (!appended.ok()) return appended;
  }
  if (in.bad()) return absl::InternalError(absl::StrCat("cannot read ", path.string()));
  // Not the Commit(): abandoned midway, its file could land after the job has
  // removed what it stored. It is bounded by the writer's own deadline.
  abandon = CancelToken::Registration();
  if (cancel.cancelled()) return Cancelled();  // the writer may be abandoned
  return (*writer)->Commit().status();
}

// Moves `from` to `to`, copying when they are on different filesystems.
absl::Status MoveFile(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (!ec) return absl::OkStatus();
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("cannot copy ", from.string(), ": ", ec.message()));
  fs::remove(from, ec);
  return absl::OkStatus();
}

int UploadRank(std::string_view name) {
  // The manifest right after the media playlists: OutputPublisher::Finish()
  // stores the two together (each names only segments), the master after.
  if (name == kHlsMasterName) return 3;
  if (name == kDashManifestName) return 2;
  if (name.ends_with(".m3u8")) return 1;
  return 0;
}

class Job {
 public:
  Job(VideoMetadataService& metadata, VideoContentService& content,
      const TranscodeOptions& transcode, const TranscodeJobParams& params, CancelToken& cancel)
      : metadata_(metadata),
        content_(content),
        transcode_(transcode),
        params_(params),
        id_(params.video_id),
        cancel_(cancel) {}

  JobOutcome Run();

 private:
  absl::Status FetchSource(const fs::path& source);
  void ReportProgress(int percent);
  // Records that the live playlists and the master are stored (on the
  // publishing thread).
  void MarkPlayable();
  // How many segments the stored copy of media playlist `name` lists (0 if
  // none): an earlier run's live playlist is not replaced by a shorter one.
  size_t StoredSegments(const std::string& name);
  absl::Status UploadWithRetries(const std::string& name, const fs::path& path);
  // Runs `step` until it succeeds, fails with an error other than UNAVAILABLE
  // or DEADLINE_EXCEEDED, or 6 tries are spent (about 15 s of back-off), cut
  // short by cancel: a storage node that just restarted or an etcd leader
  // election must not fail a whole transcode, nor leave a job unrun.
  template <typename Step>
  auto Retrying(std::string_view what, Step step) -> decltype(step());
  // Outcome for an error from a step: interruption, a vanished record, or failure.
  JobOutcome Failed(const absl::Status& status, const std::string& user_message);
  // Deletes what this job stored (or began to), giving up at `until`.
  void DeleteUploads(Clock::time_point until = Clock::time_point::max());

  VideoMetadataService& metadata_;
  VideoContentService& content_;
  const TranscodeOptions& transcode_;
  const TranscodeJobParams& params_;
  const std::string& id_;
  CancelToken& cancel_;

  // Outputs may be stored and the record written: always, but for a head
  // start only once its upload is accepted.
  std::atomic<bool> accepted_ = false;
  std::atomic<bool> record_gone_ = false;
  const Clock::time_point started_ = Clock::now();
  std::vector<std::string> uploaded_;
  int last_percent_ = 0;
  Clock::time_point last_report_{};
};

const absl::Status& StatusOf(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& result) {
  return result.status();
}

template <typename Step>
auto Job::Retrying(std::string_view what, Step step) -> decltype(step()) {
  constexpr int kAttempts = 6;
  auto backoff = std::chrono::milliseconds(500);
  for (int attempt = 1;; ++attempt) {
    auto result = step();
    const absl::Status& status = StatusOf(result);
    if (status.ok() || cancel_.cancelled() || attempt == kAttempts ||
        (!absl::IsUnavailable(status) && !absl::IsDeadlineExceeded(status))) {
      return result;
    }
    spdlog::info("transcode {}: {} failed ({}), retrying in {} ms", id_, what, status.ToString(),
                 backoff.count());
    const auto until = std::chrono::steady_clock::now() + backoff;
    while (std::chrono::steady_clock::now() < until && !cancel_.cancelled()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    backoff = std::min(backoff * 2, std::chrono::milliseconds(4000));
  }
}

JobOutcome Job::Run() {
  if (!params_.early_gate) {
    absl::StatusOr<VideoRecord> record =
        Retrying("reading its record", [&] { return metadata_.Get(id_); });
    if (absl::IsNotFound(record.status())) return JobOutcome::kSkipped;
    if (!record.ok()) {
      // The record stays processing; RecoverPending() picks it up on a restart.
      spdlog::error("transcode {}: cannot read its record: {}", id_, record.status().ToString());
      return JobOutcome::kSkipped;
    }
    if (record->status != VideoStatus::kProcessing) return JobOutcome::kSkipped;
    last_percent_ = record->progress;
    if (record->playable) {
      // Left by an interrupted run, whose playlists may be gone: this run
      // publishes its own and says so again.
      absl::StatusOr<VideoRecord> reset =
          metadata_.Update(id_, [](VideoRecord& r) { r.playable = false; });
      if (!reset.ok()) {
        spdlog::warn("transcode {}: cannot clear playable: {}", id_, reset.status().ToString());
      }
    }
    accepted_ = true;
  }
  if (params_.on_started) params_.on_started();

  std::error_code ec;
  fs::create_directories(params_.job_dir, ec);
  if (ec && params_.early_gate) {
    // No record to mark: the upload is queued as usual once accepted.
    spdlog::warn("transcode {}: no head start: cannot create {}: {}", id_, params_.job_dir.string(),
                 ec.message());
    return JobOutcome::kSkipped;
  }
  if (ec) {
    return Failed(absl::InternalError(
                      absl::StrCat("cannot create ", params_.job_dir.string(), ": ", ec.message())),
                  "The server could not process the video (no scratch space).");
  }
  fs::path source = params_.job_dir / "source";
  absl::Status fetched =
      params_.early_gate ? MoveFile(*params_.local_source, source) : FetchSource(source);
  if (!fetched.ok() && params_.early_gate) {
    spdlog::warn("transcode {}: no head start: {}", id_, fetched.ToString());
    return JobOutcome::kSkipped;
  }
  if (!fetched.ok()) {
    return Failed(fetched, absl::IsNotFound(fetched)
                               ? "The uploaded file is missing; please upload the video again."
                               : "The server could not read the uploaded file.");
  }

  // Segments go to the content service while ffmpeg encodes the next ones. A
  // store that fails for good stops the encode through `encode_cancel`, which
  // also follows the job's own token.
  const fs::path out_dir = params_.job_dir / "out";
  CancelToken encode_cancel;
  CancelToken::Registration follow = cancel_.OnCancel([&encode_cancel] { encode_cancel.Cancel(); });
  std::atomic<bool> store_failed = false;
  OutputPublisher publisher(
      out_dir,
      [this](const std::string& name, const fs::path& path) {
        return UploadWithRetries(name, path);
      },
      params_.publish_interval,
      [&](const absl::Status&) {
        store_failed = true;
        encode_cancel.Cancel();
      });
  publisher.SetBackgroundNice(params_.publish_nice);
  if (params_.live_playlists) {
    publisher.EnableLivePlaylists(
        params_.job_dir / "live", [this] { MarkPlayable(); },
        [this](const std::string& name) { return StoredSegments(name); });
  }
  const Clock::time_point encode_start = Clock::now();
  // A head start encodes while its upload is being accepted, but stores
  // nothing until it is: no output may exist under an id that might never be
  // acknowledged (and then, with no record, nobody would remove it).
  std::thread gate;
  if (params_.early_gate) {
    spdlog::info("transcode {}: head start: encoding while the upload is stored", id_);
    gate = std::thread([&] {
      if (params_.early_gate()) {
        accepted_ = true;
        spdlog::info("transcode {}: upload accepted {:.1f} s into the encode", id_,
                     std::chrono::duration<double>(Clock::now() - encode_start).count());
        publisher.Start();
      } else {
        encode_cancel.Cancel();
      }
    });
  } else {
    publisher.Start();
  }
  const MediaInfo* probed = params_.media_info ? &*params_.media_info : nullptr;
  absl::StatusOr<TranscodeResult> result = Transcode(
      source, out_dir, transcode_, [this](int percent) { ReportProgress(percent); }, &encode_cancel,
      probed);
  // An encode that ends before its upload is accepted waits for the verdict
  // (bounded by the upload's own deadlines, or Stop()).
  if (gate.joinable()) gate.join();
  absl::Status published = publisher.Stop();
  uploaded_ = publisher.attempted();
  if (!accepted_) return JobOutcome::kSkipped;  // nothing was stored
  if (!result.ok()) {
    if (store_failed && !cancel_.cancelled()) {
      return Failed(published, "The server could not store the converted video.");
    }
    return Failed(result.status(), std::string(result.status().message()));
  }

  const Clock::time_point encode_end = Clock::now();
  const size_t early = uploaded_.size();
  absl::Status stored = publisher.Finish(UploadOrder(result->files));
  uploaded_ = publisher.attempted();
  if (!stored.ok()) return Failed(stored, "The server could not store the converted video.");
  // Where the time went, for anyone comparing with a plain ffmpeg run.
  auto seconds = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
  spdlog::info(
      "transcode {}: encoded in {:.1f} s ({} of {} files stored meanwhile), the rest "
      "stored in {:.1f} s",
      id_, seconds(encode_end - encode_start), early, result->files.size(),
      seconds(Clock::now() - encode_end));

  // The outputs are stored: losing them to a metadata store that is briefly
  // away would be the worst outcome, so this write is retried too.
  absl::StatusOr<VideoRecord> updated = Retrying("recording the result", [&] {
    return metadata_.Update(id_, [&](VideoRecord& r) {
      r.status = VideoStatus::kReady;
      r.progress = 100;
      r.duration_seconds = result->source.duration_seconds;
      r.renditions = result->renditions;
      r.error.clear();
      r.playable = false;  // ready says it all
      r.storyboard = std::find(result->files.begin(), result->files.end(), kStoryboardTrackName) !=
                     result->files.end();
    });
  });
  if (absl::IsNotFound(updated.status())) {
    record_gone_ = true;
    DeleteUploads();
    return JobOutcome::kRecordGone;
  }
  if (!updated.ok()) {
    return Failed(updated.status(), "The server could not record the converted video.");
  }
  // The job's own overhead around the encode, for comparing with a plain run.
  // (Neither "ready" nor "started": tests count the outcome and start lines.)
  spdlog::info(
      "transcode {}: result recorded {:.2f} s after ffmpeg exited; ffmpeg launched {:.2f} "
      "s into the job{}",
      id_, seconds(Clock::now() - encode_end), seconds(encode_start - started_),
      params_.early_gate ? " (head start)" : "");
  return JobOutcome::kReady;
}

absl::Status Job::FetchSource(const fs::path& source) {
  std::error_code ec;
  if (params_.local_source && fs::is_regular_file(*params_.local_source, ec)) {
    absl::Status moved = MoveFile(*params_.local_source, source);
    if (moved.ok()) return moved;
    spdlog::warn("transcode {}: {}; reading the stored original instead", id_, moved.ToString());
  }
  return Download(content_, id_, kOriginalName, source, cancel_);
}

size_t Job::StoredSegments(const std::string& name) {
  // A playlist is a few KB; a larger file is not one of ours: treat as none.
  constexpr size_t kMaxPlaylistBytes = 1 << 20;
  absl::StatusOr<std::unique_ptr<ContentReader>> reader = content_.OpenReader(id_, name);
  if (!reader.ok()) return 0;  // none stored (or unreadable: nothing to protect)
  std::string text;
  std::vector<char> buffer(64 * 1024);
  while (text.size() <= kMaxPlaylistBytes) {
    absl::StatusOr<size_t> n = (*reader)->Read(buffer);
    if (!n.ok()) return 0;
    if (*n == 0) return PlaylistSegments(text).size();
    text.append(buffer.data(), *n);
  }
  return 0;
}

void Job::MarkPlayable() {
  const auto since_start = std::chrono::duration<double>(Clock::now() - started_).count();
  absl::StatusOr<VideoRecord> updated = metadata_.Update(id_, [](VideoRecord& r) {
    if (r.status == VideoStatus::kProcessing) r.playable = true;
  });
  if (absl::IsNotFound(updated.status())) {
    record_gone_ = true;
    cancel_.Cancel();
  } else if (!updated.ok()) {
    // Players still get the video once it is ready; nothing is lost.
    spdlog::warn("transcode {}: cannot mark it playable: {}", id_, updated.status().ToString());
  } else {
    spdlog::info("transcode {}: playable {:.1f} s after the job started", id_, since_start);
  }
}

void Job::ReportProgress(int percent) {
  if (!accepted_) return;  // no record yet: reported once there is
  Clock::time_point now = Clock::now();
  // Metadata writes may hit a database or the network; once a second is
  // plenty for a progress bar.
  if (percent == last_percent_ || now - last_report_ < params_.progress_interval) return;
  last_percent_ = percent;
  last_report_ = now;
  absl::StatusOr<VideoRecord> updated = metadata_.Update(id_, [percent](VideoRecord& r) {
    if (r.status == VideoStatus::kProcessing) r.progress = percent;
  });
  if (absl::IsNotFound(updated.status())) {
    // Deleted while encoding: stop wasting the CPU on it.
    record_gone_ = true;
    cancel_.Cancel();
  } else if (!updated.ok()) {
    spdlog::warn("transcode {}: progress update failed: {}", id_, updated.status().ToString());
  }
}

absl::Status Job::UploadWithRetries(const std::string& name, const fs::path& path) {
  // The file is local, so sending it again is safe.
  return Retrying(absl::StrCat("storing ", name),
                  [&] { return Upload(content_, id_, name, path, cancel_); });
}

void Job::DeleteUploads(Clock::time_point until) {
  for (size_t i = 0; i < uploaded_.size(); ++i) {
    if (Clock::now() >= until) {
      spdlog::warn("transcode {}: left {} stored file(s) for the next run to replace", id_,
                   uploaded_.size() - i);
      return;
    }
    const std::string& name = uploaded_[i];
    absl::Status status = content_.Delete(id_, name);
    if (!status.ok() && !absl::IsNotFound(status)) {
      spdlog::warn("transcode {}: cannot delete {}: {}", id_, name, status.ToString());
    }
  }
}

JobOutcome Job::Failed(const absl::Status& status, const std::string& user_message) {
  if (record_gone_) {
    DeleteUploads();
    return JobOutcome::kRecordGone;
  }
  if (cancel_.cancelled()) {
    // Stopped mid-way: the segments stored so far are no use to anyone until a
    // later run, which rewrites them all. Not when the claim was lost: the
    // files may already be the new holder's.
    if (!params_.claim_lost || !params_.claim_lost()) {
      DeleteUploads(Clock::now() + kInterruptedCleanupBudget);
    }
    return JobOutcome::kInterrupted;
  }
  spdlog::warn("transcode {}: failed: {}", id_, status.ToString());

  // Everything but the original goes, including leftovers of an interrupted
  // earlier attempt, so a failed video has no half set of renditions.
  absl::StatusOr<std::vector<ContentInfo>> files = content_.List(id_);
  if (files.ok()) {
    for (const ContentInfo& file : *files) {
      if (file.name == kOriginalName) continue;
      absl::Status deleted = content_.Delete(id_, file.name);
      if (!deleted.ok() && !absl::IsNotFound(deleted)) {
        spdlog::warn("transcode {}: cannot delete {}: {}", id_, file.name, deleted.ToString());
      }
    }
  } else {
    DeleteUploads();
  }

  const std::string& message = user_message;
  absl::StatusOr<VideoRecord> updated = metadata_.Update(id_, [&message](VideoRecord& r) {
    r.status = VideoStatus::kFailed;
    r.error = message;
    r.playable = false;
  });
  if (absl::IsNotFound(updated.status())) return JobOutcome::kRecordGone;
  if (!updated.ok()) {
    spdlog::error("transcode {}: cannot mark it failed: {}", id_, updated.status().ToString());
  }
  return JobOutcome::kFailed;
}

}  // namespace

std::string_view JobOutcomeName(JobOutcome outcome) {
  switch (outcome) {
    case JobOutcome::kReady:
      return "ready";
    case JobOutcome::kFailed:
      return "failed";
    case JobOutcome::kSkipped:
      return "skipped";
    case JobOutcome::kInterrupted:
      return "interrupted";
    case JobOutcome::kRecordGone:
      return "record deleted";
  }
  return "unknown";
}

JobOutcome RunTranscodeJob(VideoMetadataService& metadata, VideoContentService& content,
                           const TranscodeOptions& transcode, const TranscodeJobParams& params,
                           CancelToken& cancel) {
  return Job(metadata, content, transcode, params, cancel).Run();
}

std::vector<std::string> UploadOrder(std::vector<std::string> files) {
  std::stable_sort(files.begin(), files.end(), [](const std::string& a, const std::string& b) {
    return UploadRank(a) < UploadRank(b);
  });
  return files;
}

}  // namespace streamgrid
