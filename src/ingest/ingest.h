#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/file_writes.h"
#include "content/video_content_service.h"
#include "metadata/video_metadata_service.h"
#include "transcode/early_job.h"
#include "transcode/media_policy.h"
#include "transcode/probe.h"

namespace streamgrid::ingest {

using Clock = std::chrono::steady_clock;

// Hands an accepted video to transcoding: TranscodeWorkerPool::Enqueue in the
// server, a recorder in tests. It takes ownership of `local_source`, a file on
// this machine holding the same bytes as `<video_id>/original`; `media` is
// what the ingest's probe found, so the job need not probe again.
using EnqueueJob =
    std::function<void(const std::string& video_id, const std::filesystem::path& local_source,
                       const MediaInfo& media)>;

// Starts encoding an upload before it is accepted:
// TranscodeWorkerPool::StartEarly in the server, a recorder in tests. Gets
// the spool file (to read, not to take) and the probe's description; returns
// null when it cannot (e.g. no idle worker).
using StartEarlyJob = std::function<std::unique_ptr<EarlyJob>(
    const std::string& video_id, const std::filesystem::path& local_source,
    const MediaInfo& media)>;

struct IngestOptions {
  // Uploads are spooled here while they arrive; best on the content root's
  // filesystem (then --single stores the original without a copy).
  std::filesystem::path spool_dir;
  uint64_t max_file_bytes = uint64_t{8} << 30;
  MediaLimits media_limits;
  ProbeOptions probe;
  // Storing the original again from the spool file after a storage node
  // failed: tries in all, and the first pause (doubling after each try).
  int store_attempts = 3;
  std::chrono::milliseconds store_backoff{500};
  // The spool file's pages are handed to the disk every this many bytes while
  // the upload arrives, so the fsync at the end finds little left to write.
  // Only when the spool file becomes the stored original (--single); a
  // scratch spool file (cluster) is neither written back early nor fsynced.
  uint64_t writeback_bytes = uint64_t{8} << 20;
};

// True when `status` refuses the upload's content (not a video, over a limit,
// damaged, empty) rather than reporting a failure of the server; its code
// then says which: INVALID_ARGUMENT (not a video or a refused format),
// OUT_OF_RANGE (beyond a limit or the size limit), DATA_LOSS (damaged,
// incomplete or empty).
bool IsRefusal(const absl::Status& status);

// A video title from an uploaded file's name: the last path component (some
// browsers send a whole client path), control characters blanked, at most
// 255 bytes; "untitled" when nothing is left.
std::string TitleFromFilename(std::string_view filename);

class Ingest;

// One upload in progress. Not thread-safe: one caller feeds it. Every call
// blocks (disk, network, ffprobe), so event loops run them off the loop.
// Destroyed before Finish() succeeded, it leaves nothing behind: the spool
// file is removed and copies streamed to storage are abandoned uncommitted.
class Upload {
 public:
  ~Upload();
  Upload(const Upload&) = delete;
  Upload& operator=(const Upload&) = delete;

  // The id the video will have.
  const std::string& id() const { return id_; }
  // Bytes received so far.
  uint64_t size() const { return size_; }

  // Appends the next bytes of the file: to the spool file and, when the
  // content service is remote, to the copies of the original being streamed.
  // A refusal (OUT_OF_RANGE) past max_file_bytes; other errors are the
  // server's. After an error the upload is unusable.
  absl::Status Append(std::span<const char> data);

  // Completes the upload: flushes the spool file (--single), checks the media (probe,
  // limits, a cheap check of the file's end), commits the original (or
  // stores it from the spool file), creates the record ("processing", titled
  // `title`) and queues the transcode. Refusals satisfy IsRefusal(); on any
  // error nothing is stored. Call at most once.
  absl::StatusOr<VideoRecord> Finish(std::string_view title);

 private:
  friend class Ingest;
  Upload(Ingest& ingest, std::string id, std::filesystem::path spool_path);
  absl::Status Open();
  // Opens a spool file that already holds the whole upload.
  absl::Status OpenComplete();
  absl::Status StoreOriginal();
  absl::Status WriteSpool(std::span<const char> data);

  Ingest& ingest_;
  const std::string id_;
  const std::filesystem::path spool_path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  // The spool file is linked as the stored original (so must be durable)
  // rather than a scratch file whose bytes the storage nodes make durable.
  const bool spool_is_the_original_;
  Writeback writeback_;  // of the spool file
  // Streams the spool file to stream_ as it grows, so neither the network
  // read nor the spool write waits for the storage nodes.
  void StreamLoop();
  // Stops the streamer: once it has sent everything spooled (`drain`), or at
  // once. Returns whether stream_ holds every byte and can be committed.
  bool StopStreaming(bool drain);

  // The original streamed while the body arrives (remote content only); null
  // when the original is stored from the spool file at the end instead.
  std::unique_ptr<ContentWriter> stream_;
  std::thread streamer_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t spooled_ = 0;        // guarded by mu_: bytes the streamer may send
  uint64_t streamed_ = 0;       // guarded by mu_: bytes it has sent
  bool stream_failed_ = false;  // guarded by mu_
  bool stop_ = false;           // guarded by mu_: no more bytes are coming
  bool abort_ = false;          // guarded by mu_: stop without sending the rest
  bool failed_ = false;
  bool finished_ = false;
  const Clock::time_point begun_ = Clock::now();
  // For the log line: how far behind the streamer was when the last byte
  // arrived, when StoreOriginal() had it stopped, and whether it had sent
  // every byte by then.
  uint64_t behind_at_end_ = 0;
  Clock::time_point drained_at_{};
  bool streamed_all_ = false;
};

// The upload path, apart from HTTP: spool -> validate -> store the original
// -> create the record -> queue the transcode. The multipart route calls it
// today, a resumable-upload route can tomorrow. Thread-safe; the services and
// `enqueue` must outlive it and every Upload it began.
//
// How the original is stored depends on the content service: one that
// StoresLocalFilesWithoutCopy() (--single) gets the spool file after
// validation (a hard link, no copy); any other (the cluster) gets the bytes
// streamed to its storage nodes as they arrive, committed only once the
// upload is validated. If that stream fails midway (a node died), the
// original is stored again from the spool file at the end, with bounded
// retries.
class Ingest {
 public:
  Ingest(VideoMetadataService& metadata, VideoContentService& content, EnqueueJob enqueue,
         IngestOptions options);

  // OK if an upload can be accepted now; the content service's answer why
  // not otherwise. Cheap: call before reading a body.
  absl::Status CheckWritable();

  // Starts an upload with a new video id: creates its spool file and, for
  // remote content, the streamed write of its original.
  absl::StatusOr<std::unique_ptr<Upload>> Begin();

  // Starts an upload with a new video id whose bytes are all in `file`
  // already (a finished resumable upload): the spool file is a hard link to
  // it (a copy on another filesystem), so `file` itself is left as it is
  // whatever happens. The original is stored from the spool file in Finish().
  // OUT_OF_RANGE refusal when `file` is over max_file_bytes.
  absl::StatusOr<std::unique_ptr<Upload>> BeginFromFile(const std::filesystem::path& file);

  const IngestOptions& options() const { return options_; }

  // Gives uploads a head start: once an upload's body is complete and its
  // media checked, `start` begins encoding it while the original is made
  // durable; the job is committed once the record exists (the upload is still
  // answered only then) and aborted if storing the original or creating the
  // record fails, so it stores nothing under an id never acknowledged. When
  // `start` returns null the video is enqueued as before. Call before Begin().
  void SetEarlyStart(StartEarlyJob start) { start_early_ = std::move(start); }

 private:
  friend class Upload;
  VideoMetadataService& metadata_;
  VideoContentService& content_;
  EnqueueJob enqueue_;
  StartEarlyJob start_early_;
  const IngestOptions options_;
};

}  // namespace streamgrid::ingest
