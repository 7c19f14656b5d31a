#include "ingest/ingest.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <future>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"

namespace streamgrid::ingest {
namespace {

namespace fs = std::filesystem;

// The payload that marks a refusal; its value is irrelevant.
constexpr char kRefusalPayload[] = "type.streamgrid.dev/ingest.Refusal";

absl::Status Refusal(absl::Status status) {
  status.SetPayload(kRefusalPayload, absl::Cord("1"));
  return status;
}

// Probe and end-check errors that describe the file rather than the server.
absl::Status AsRefusalIfAboutTheFile(absl::Status status) {
  if (absl::IsInvalidArgument(status) || absl::IsOutOfRange(status) || absl::IsDataLoss(status)) {
    return Refusal(std::move(status));
  }
  return status;
}

absl::Status SpoolError(const char* what, const fs::path& path) {
  const int err = errno;
  if (err == ENOSPC || err == EDQUOT) {
    return absl::ResourceExhaustedError("server is out of disk space");
  }
  return absl::InternalError(
      absl::StrCat(what, " ", path.string(), ": ", std::generic_category().message(err)));
}

int64_t Millis(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

bool IsRetryable(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status);
}

}  // namespace

bool IsRefusal(const absl::Status& status) {
  return !status.ok() && status.GetPayload(kRefusalPayload).has_value();
}

std::string TitleFromFilename(std::string_view filename) {
  constexpr size_t kMaxTitleBytes = 255;
  size_t slash = filename.find_last_of("/\\");
  if (slash != std::string_view::npos) filename.remove_prefix(slash + 1);
  std::string title(filename.substr(0, kMaxTitleBytes));
  for (char& c : title) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return title.empty() ? "untitled" : title;
}

Ingest::Ingest(VideoMetadataService& metadata, VideoContentService& content, EnqueueJob enqueue,
               IngestOptions options)
    : metadata_(metadata),
      content_(content),
      enqueue_(std::move(enqueue)),
      options_(std::move(options)) {}

absl::Status Ingest::CheckWritable() { return content_.CheckWritable(); }

absl::StatusOr<std::unique_ptr<Upload>> Ingest::Begin() {
  std::string id = NewVideoId();
  fs::path spool = options_.spool_dir / (id + ".upload");
  std::unique_ptr<Upload> upload(new Upload(*this, std::move(id), std::move(spool)));
  if (absl::Status s = upload->Open(); !s.ok()) return s;
  return upload;
}

absl::StatusOr<std::unique_ptr<Upload>> Ingest::BeginFromFile(const fs::path& file) {
  std::string id = NewVideoId();
  fs::path spool = options_.spool_dir / (id + ".upload");
  std::error_code ec;
  fs::create_directories(options_.spool_dir, ec);
  // A link costs nothing and leaves `file` to its owner; only across
  // filesystems is it a copy.
  fs::create_hard_link(file, spool, ec);
  if (ec) {
    ec.clear();
    fs::copy_file(file, spool, ec);
    if (ec) {
      fs::remove(spool, ec);
      errno = ec.value();
      return SpoolError("cannot link", spool);
    }
  }
  std::unique_ptr<Upload> upload(new Upload(*this, std::move(id), std::move(spool)));
  if (absl::Status s = upload->OpenComplete(); !s.ok()) return s;
  return upload;
}

Upload::Upload(Ingest& ingest, std::string id, fs::path spool_path)
    : ingest_(ingest),
      id_(std::move(id)),
      spool_path_(std::move(spool_path)),
      spool_is_the_original_(ingest.content_.StoresLocalFilesWithoutCopy()),
      // A scratch spool file never needs to reach the disk: leave its pages
      // to the page cache (the disk writes the storage nodes' copies).
      writeback_(spool_is_the_original_ ? ingest.options_.writeback_bytes : 0) {}

Upload::~Upload() {
  StopStreaming(/*drain=*/false);
  if (fd_ >= 0) ::close(fd_);
  // Destroying the writer uncommitted cancels every copy being streamed.
  stream_.reset();
  if (!finished_) {
    std::error_code ec;
    fs::remove(spool_path_, ec);
  }
}

absl::Status Upload::Open() {
  std::error_code ec;
  fs::create_directories(spool_path_.parent_path(), ec);
  fd_ = ::open(spool_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd_ < 0) return SpoolError("cannot create", spool_path_);
  VideoContentService& content = ingest_.content_;
  if (!content.StoresLocalFilesWithoutCopy()) {
    // The copies are written while the body arrives instead of after it. If
    // they cannot be started now, Finish() stores the original from the spool
    // file, with retries, like any stream that fails midway.
    absl::StatusOr<std::unique_ptr<ContentWriter>> writer = content.OpenWriter(id_, "original");
    if (writer.ok()) {
      stream_ = *std::move(writer);
      streamer_ = std::thread([this] { StreamLoop(); });
    } else {
      spdlog::info("upload {}: cannot stream the original yet ({}); storing it at the end", id_,
                   writer.status().ToString());
    }
  }
  return absl::OkStatus();
}

absl::Status Upload::OpenComplete() {
  fd_ = ::open(spool_path_.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd_ < 0) return SpoolError("cannot open", spool_path_);
  struct stat st;
  if (::fstat(fd_, &st) != 0) return SpoolError("cannot stat", spool_path_);
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ > ingest_.options_.max_file_bytes) {
    failed_ = true;
    return Refusal(absl::OutOfRangeError(absl::StrCat("upload is larger than the limit of ",
                                                      ingest_.options_.max_file_bytes, " bytes")));
  }
  // No stream_: Finish() stores the original from the spool file.
  return absl::OkStatus();
}

absl::Status Upload::WriteSpool(std::span<const char> data) {
  if (int err = WriteFully(fd_, data); err != 0) {
    errno = err;
    return SpoolError("cannot write", spool_path_);
  }
  size_ += data.size();
  writeback_.Wrote(fd_, size_);
  return absl::OkStatus();
}

absl::Status Upload::Append(std::span<const char> data) {
  if (failed_ || finished_) return absl::FailedPreconditionError("the upload is not usable");
  if (data.empty()) return absl::OkStatus();
  if (size_ + data.size() > ingest_.options_.max_file_bytes) {
    failed_ = true;
    return Refusal(absl::OutOfRangeError(absl::StrCat("upload is larger than the limit of ",
                                                      ingest_.options_.max_file_bytes, " bytes")));
  }
  if (absl::Status s = WriteSpool(data); !s.ok()) {
    failed_ = true;
    return s;
  }
  if (streamer_.joinable()) {
    std::lock_guard lock(mu_);
    spooled_ = size_;
    cv_.notify_all();
  }
  return absl::OkStatus();
}

void Upload::StreamLoop() {
  // Reads back what was just written: from the page cache, not the disk.
  constexpr size_t kChunk = 1024 * 1024;
  int fd = ::open(spool_path_.c_str(), O_RDONLY | O_CLOEXEC);
  absl::Status status = fd >= 0 ? absl::OkStatus() : SpoolError("cannot reopen", spool_path_);
  std::vector<char> buffer(status.ok() ? kChunk : 0);
  uint64_t sent = 0;
  while (status.ok()) {
    uint64_t available;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return abort_ || stop_ || spooled_ > sent; });
      if (abort_ || (stop_ && spooled_ == sent)) break;
      available = spooled_ - sent;
    }
    const size_t want = static_cast<size_t>(std::min<uint64_t>(available, kChunk));
    ssize_t n = ::pread(fd, buffer.data(), want, static_cast<off_t>(sent));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      status = n < 0 ? SpoolError("cannot read", spool_path_)
                     : absl::InternalError("the spool file shrank");
      break;
    }
    status = stream_->Append(std::span(buffer.data(), static_cast<size_t>(n)));
    if (status.ok()) {
      sent += static_cast<uint64_t>(n);
      std::lock_guard lock(mu_);
      streamed_ = sent;
      cv_.notify_all();
    }
  }
  if (fd >= 0) ::close(fd);
  if (!status.ok()) {
    // The spool file has every byte: the original is stored from it at the
    // end instead, on whichever nodes are up then.
    spdlog::warn("upload {}: streaming the original failed ({}); storing it at the end", id_,
                 status.ToString());
    std::lock_guard lock(mu_);
    stream_failed_ = true;
    cv_.notify_all();
  }
}

bool Upload::StopStreaming(bool drain) {
  if (!streamer_.joinable()) return false;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    abort_ = !drain;
    cv_.notify_all();
  }
  // A storage node that stopped reading would hold the streamer in Append()
  // until the transfer deadline; cancelling wakes it now.
  if (!drain) stream_->Cancel();
  streamer_.join();
  std::lock_guard lock(mu_);
  return !stream_failed_ && !abort_ && streamed_ == size_;
}

absl::Status Upload::StoreOriginal() {
  VideoContentService& content = ingest_.content_;
  streamed_all_ = StopStreaming(/*drain=*/true);
  drained_at_ = Clock::now();
  if (!streamed_all_) stream_.reset();
  if (stream_) {
    absl::StatusOr<ContentInfo> committed = stream_->Commit();
    stream_.reset();
    if (committed.ok()) return absl::OkStatus();
    if (!IsRetryable(committed.status())) return committed.status();
    spdlog::info("upload {}: committing the streamed original failed ({}); storing it again", id_,
                 committed.status().ToString());
  }
  // A node dying in the middle of a write fails the whole write, and the next
  // try stores the copy on a stand-in instead. Bounded: store_attempts tries.
  std::chrono::milliseconds backoff = ingest_.options_.store_backoff;
  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<ContentInfo> stored = content.StoreLocalFile(id_, "original", spool_path_);
    if (stored.ok()) return absl::OkStatus();
    if (attempt >= ingest_.options_.store_attempts || !IsRetryable(stored.status())) {
      return stored.status();
    }
    spdlog::info("upload {}: storing the original failed ({}), retrying", id_,
                 stored.status().ToString());
    std::this_thread::sleep_for(backoff);
    backoff *= 2;
  }
}

absl::StatusOr<VideoRecord> Upload::Finish(std::string_view title) {
  if (failed_ || finished_) return absl::FailedPreconditionError("the upload is not usable");
  failed_ = true;  // until it succeeds
  const auto finish_started = Clock::now();
  const bool streaming = streamer_.joinable();
  if (streaming) {
    std::lock_guard lock(mu_);
    behind_at_end_ = size_ - streamed_;
  }
  if (size_ == 0) return Refusal(absl::DataLossError("the uploaded file is empty"));
  // When the spool file becomes the stored original (--single), one fsync,
  // at the end, makes it durable; it runs while the media is checked (the
  // probe reads the page cache, the fsync waits for the disk). Otherwise the
  // spool file is scratch: the durable copies are the storage nodes'
  // (committed below, or stored from this file if the stream failed, read
  // back from the page cache), and a restarted server never reuses a spool
  // file (a resumed job downloads the original).
  std::future<int> flush;
  if (spool_is_the_original_) {
    auto sync = [fd = fd_] { return ::fsync(fd) == 0 ? 0 : errno; };
    try {
      flush = std::async(std::launch::async, sync);
    } catch (const std::system_error&) {
      // No thread to spare: flush here, before the check.
      std::promise<int> done;
      done.set_value(sync());
      flush = done.get_future();
    }
  }
  const IngestOptions& options = ingest_.options_;
  MediaInfo media;
  const absl::Status check = [&]() -> absl::Status {
    absl::StatusOr<MediaInfo> probed = ProbeMedia(spool_path_, options.probe);
    if (!probed.ok()) return AsRefusalIfAboutTheFile(probed.status());
    if (absl::Status s = CheckMediaLimits(*probed, options.media_limits); !s.ok()) {
      return AsRefusalIfAboutTheFile(s);
    }
    if (absl::Status s = VerifyMediaEnd(spool_path_, *probed, options.probe); !s.ok()) {
      return AsRefusalIfAboutTheFile(s);
    }
    media = *std::move(probed);
    return absl::OkStatus();
  }();
  const auto checked = Clock::now();
  const int flush_error = flush.valid() ? flush.get() : 0;
  const int close_error = ::close(std::exchange(fd_, -1)) == 0 ? 0 : errno;
  const auto flushed = Clock::now();
  if (!check.ok()) return check;
  errno = flush_error != 0 ? flush_error : close_error;
  if (flush_error != 0) return SpoolError("cannot flush", spool_path_);
  if (close_error != 0) return SpoolError("cannot close", spool_path_);
  VideoContentService& content = ingest_.content_;
  // The encode need not wait for the copies' fsyncs: it starts on the spool
  // file now and publishes nothing until Commit() below.
  std::unique_ptr<EarlyJob> early;
  if (ingest_.start_early_) early = ingest_.start_early_(id_, spool_path_, media);
  if (absl::Status s = StoreOriginal(); !s.ok()) {
    early.reset();  // kills the encode, which stored nothing
    content.DeleteVideo(id_).IgnoreError();
    return s;
  }
  VideoRecord record;
  record.id = id_;
  record.title = std::string(title);
  record.status = VideoStatus::kProcessing;
  record.duration_seconds = media.duration_seconds;
  record.created_at_ms = NowMillis();
  record.updated_at_ms = record.created_at_ms;
  if (absl::Status s = ingest_.metadata_.Create(record); !s.ok()) {
    early.reset();
    content.DeleteVideo(id_).IgnoreError();
    return s;
  }
  failed_ = false;
  finished_ = true;
  if (early && early->Commit()) {
    // The job has its own name for the file.
    std::error_code ec;
    fs::remove(spool_path_, ec);
  } else {
    // The job takes over the spool file (it saves a download of the original).
    ingest_.enqueue_(id_, spool_path_, media);
  }
  const auto done = Clock::now();
  std::string copies;  // where the streamed copies were when the body ended
  if (streaming && streamed_all_) {
    copies = absl::StrCat("; the copies were ", behind_at_end_ / 1024,
                          " KiB behind at the last byte, all sent ",
                          Millis(finish_started, drained_at_), " ms after it");
  } else if (streaming) {
    copies = "; streaming the copies failed, stored from the spool file";
  }
  spdlog::info(
      "upload {}: {} bytes received in {} ms; checked in {} ms (flushed {} ms later), stored and "
      "recorded in {} ms{}{}",
      id_, size_, Millis(begun_, finish_started), Millis(finish_started, checked),
      Millis(checked, flushed), Millis(flushed, done), early ? " (encoding meanwhile)" : "",
      copies);
  return record;
}

}  // namespace streamgrid::ingest
