#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "http/multipart_parser.h"
#include "http/offload.h"
#include "transcode/media_policy.h"
#include "transcode/probe.h"
#include "webserver/routes.h"
#include "webserver/video_json.h"

namespace streamgrid::webserver {
namespace {

using http::Response;
using http::Status;

constexpr size_t kBodyChunk = 256 * 1024;
constexpr size_t kCopyChunk = 1024 * 1024;
constexpr size_t kMaxTitleBytes = 255;

// The spool file an upload streams into. It is removed unless Release()d, so no
// failed or abandoned upload leaves anything behind.
class SpoolFile {
 public:
  explicit SpoolFile(std::filesystem::path path) : path_(std::move(path)) {}
  ~SpoolFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!released_) {
      std::error_code ec;
      std::filesystem::remove(path_, ec);
    }
  }

  absl::Status Open() {
    std::error_code ec;
    std::filesystem::create_directories(path_.parent_path(), ec);
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd_ < 0) return Errno("cannot create upload file");
    return absl::OkStatus();
  }

  absl::Status Write(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Errno("cannot write upload file");
      data.remove_prefix(static_cast<size_t>(n));
      size_ += static_cast<uint64_t>(n);
    }
    return absl::OkStatus();
  }

  // Flushes to disk and closes; the upload is "safely on disk" after this.
  absl::Status Sync() {
    if (::fsync(fd_) != 0) return Errno("cannot flush upload file");
    ::close(fd_);
    fd_ = -1;
    return absl::OkStatus();
  }

  void Release() { released_ = true; }
  const std::filesystem::path& path() const { return path_; }
  uint64_t size() const { return size_; }

 private:
  absl::Status Errno(const char* what) {
    if (errno == ENOSPC) return absl::ResourceExhaustedError("server is out of disk space");
    return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
  }

  std::filesystem::path path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  bool released_ = false;
};

// The title is the uploaded file's own name: browsers send just the name, but
// some send a whole client path, which is no one's business here.
std::string TitleFromFilename(std::string_view filename) {
  size_t slash = filename.find_last_of("/\\");
  if (slash != std::string_view::npos) filename.remove_prefix(slash + 1);
  std::string title(filename.substr(0, kMaxTitleBytes));
  for (char& c : title) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return title.empty() ? "untitled" : title;
}

// Copies the spool file into the content store as <id>/original, in chunks.
absl::Status StoreOriginal(VideoContentService& content, const std::string& id,
                           const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot reopen upload: ", strerror(errno)));
  absl::Cleanup close_fd = [fd] { ::close(fd); };
  absl::StatusOr<std::unique_ptr<ContentWriter>> writer = content.OpenWriter(id, "original");
  if (!writer.ok()) return writer.status();
  std::vector<char> buffer(kCopyChunk);
  for (;;) {
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::InternalError(absl::StrCat("cannot read upload: ", strerror(errno)));
    if (n == 0) break;
    if (absl::Status s = (*writer)->Append(std::span(buffer.data(), static_cast<size_t>(n)));
        !s.ok()) {
      return s;
    }
  }
  return (*writer)->Commit().status();
}

// StoreOriginal, tried again (from the spool file, which is still there) when
// it fails for a storage node that went away or timed out: a node dying in
// the middle of the write fails the whole write, and the next try stores the
// copy on a stand-in instead. Bounded: 3 tries, 0.5 s and 1 s apart.
absl::Status StoreOriginalWithRetries(VideoContentService& content, const std::string& id,
                                      const std::filesystem::path& path) {
  constexpr int kAttempts = 3;
  auto backoff = std::chrono::milliseconds(500);
  for (int attempt = 1;; ++attempt) {
    absl::Status s = StoreOriginal(content, id, path);
    if (s.ok() || attempt == kAttempts ||
        (!absl::IsUnavailable(s) && !absl::IsDeadlineExceeded(s))) {
      return s;
    }
    spdlog::info("upload {}: storing the original failed ({}), retrying", id, s.ToString());
    std::this_thread::sleep_for(backoff);
    backoff *= 2;
  }
}

// How a rejected media file is reported: not a video at all, or not in an
// accepted format (a playlist, an image, ...), is 415; one beyond a limit
// (duration, picture size, streams) 413, like a file over the size limit; a
// damaged one 422; anything else is the server's problem.
Response ProbeError(const absl::Status& status) {
  if (absl::IsInvalidArgument(status)) {
    return Response::Error(Status::unsupported_media_type, status.message());
  }
  if (absl::IsOutOfRange(status)) {
    return Response::Error(Status::payload_too_large, status.message());
  }
  if (absl::IsDataLoss(status))
    return Response::Error(Status::unprocessable_entity, status.message());
  return http::ErrorFromStatus(status);
}

// One of the --max-concurrent-uploads places, held for an upload's lifetime.
class UploadSlot {
 public:
  explicit UploadSlot(AppContext& app) : app_(app) {
    held_ = ++app_.uploads_in_progress <= app_.options.max_concurrent_uploads;
    if (!held_) --app_.uploads_in_progress;
  }
  ~UploadSlot() {
    if (held_) --app_.uploads_in_progress;
  }
  UploadSlot(const UploadSlot&) = delete;
  UploadSlot& operator=(const UploadSlot&) = delete;
  bool held() const { return held_; }

 private:
  AppContext& app_;
  bool held_ = false;
};

http::asio::awaitable<Response> HandleUpload(AppContext& app, http::Request& request) {
  // Before anything is read or stored: uploads hold a spool file and a
  // blocking thread each, and too many at once would starve reads.
  UploadSlot slot(app);
  if (!slot.held()) {
    Response busy = Response::Error(
        Status::service_unavailable,
        absl::StrCat("too many uploads in progress (at most ", app.options.max_concurrent_uploads,
                     " at once); try again shortly"));
    busy.headers.set(http::Field::retry_after, "5");
    co_return busy;
  }

  absl::StatusOr<std::string> boundary =
      http::MultipartBoundary(request.Header(http::Field::content_type));
  if (!boundary.ok()) {
    co_return Response::Error(Status::unsupported_media_type,
                              absl::StrCat("expected a multipart/form-data upload with a field "
                                           "named 'file': ",
                                           boundary.status().message()));
  }

  // Refused before the body is read: a video accepted now could not be stored.
  if (absl::Status s =
          co_await http::Offload(app.blocking, [&] { return app.content.CheckWritable(); });
      !s.ok()) {
    co_return http::ErrorFromStatus(s);
  }

  const std::string id = NewVideoId();
  SpoolFile spool(app.options.spool_dir / (id + ".upload"));
  if (absl::Status s = co_await http::Offload(app.blocking, [&] { return spool.Open(); });
      !s.ok()) {
    co_return http::ErrorFromStatus(s);
  }

  // The parser hands out file bytes as views into the current body chunk; they
  // are gathered here and written once per chunk, so memory stays at about two
  // chunks whatever the upload's size.
  std::string pending;
  std::optional<std::string> filename;
  bool in_file = false;
  http::MultipartParser parser(
      *boundary, {.on_part_begin = [&](const http::MultipartPartHeaders& part) -> absl::Status {
                    if (part.name != "file") return absl::OkStatus();
                    if (filename) return absl::InvalidArgumentError("more than one 'file' field");
                    filename = part.filename.value_or("");
                    in_file = true;
                    return absl::OkStatus();
                  },
                  .on_part_data = [&](std::string_view data) -> absl::Status {
                    if (in_file) pending.append(data);
                    return absl::OkStatus();
                  },
                  .on_part_end = [&]() -> absl::Status {
                    in_file = false;
                    return absl::OkStatus();
                  }});

  std::vector<char> chunk(kBodyChunk);
  for (;;) {
    absl::StatusOr<size_t> n = co_await request.body->Read(chunk);
    if (!n.ok()) {
      if (absl::IsResourceExhausted(n.status())) {
        co_return Response::Error(Status::payload_too_large,
                                  absl::StrCat("upload is larger than the limit of ",
                                               app.options.max_upload_bytes, " bytes"));
      }
      co_return http::ErrorFromStatus(n.status());
    }
    absl::Status parsed =
        *n == 0 ? parser.Finish() : parser.Feed(std::string_view(chunk.data(), *n));
    if (!parsed.ok()) co_return Response::Error(Status::bad_request, parsed.message());
    if (!pending.empty()) {
      absl::Status written =
          co_await http::Offload(app.blocking, [&] { return spool.Write(pending); });
      if (!written.ok()) co_return http::ErrorFromStatus(written);
      pending.clear();
    }
    if (*n == 0) break;
  }
  if (!filename) {
    co_return Response::Error(Status::bad_request, "the form has no field named 'file'");
  }
  if (spool.size() == 0) {
    co_return Response::Error(Status::unprocessable_entity, "the uploaded file is empty");
  }

  // Everything below blocks (fsync, ffprobe, copies, metadata): one trip to the pool.
  VideoRecord record;
  record.id = id;
  record.title = TitleFromFilename(*filename);
  record.status = VideoStatus::kProcessing;
  record.created_at_ms = NowMillis();
  record.updated_at_ms = record.created_at_ms;
  Response rejection;
  absl::Status accepted = co_await http::Offload(app.blocking, [&]() -> absl::Status {
    if (absl::Status s = spool.Sync(); !s.ok()) return s;
    absl::StatusOr<MediaInfo> media = ProbeMedia(spool.path());
    if (!media.ok()) {
      rejection = ProbeError(media.status());
      return media.status();
    }
    if (absl::Status within = CheckMediaLimits(*media, app.options.media_limits); !within.ok()) {
      rejection = ProbeError(within);
      return within;
    }
    if (absl::Status end = VerifyMediaEnd(spool.path(), *media); !end.ok()) {
      rejection = ProbeError(end);
      return end;
    }
    record.duration_seconds = media->duration_seconds;
    if (absl::Status s = StoreOriginalWithRetries(app.content, id, spool.path()); !s.ok()) {
      app.content.DeleteVideo(id).IgnoreError();
      return s;
    }
    if (absl::Status s = app.metadata.Create(record); !s.ok()) {
      app.content.DeleteVideo(id).IgnoreError();
      return s;
    }
    return absl::OkStatus();
  });
  if (!accepted.ok()) {
    if (rejection.status != Status::ok) {
      spdlog::info("refused upload {}: {}", id, accepted.ToString());
      co_return rejection;
    }
    spdlog::error("upload {} failed: {}", id, accepted.ToString());
    co_return http::ErrorFromStatus(accepted);
  }

  // The worker takes over the spool file (saving a copy back from the store).
  spool.Release();
  app.transcoder.Enqueue(id, spool.path());
  spdlog::info("accepted upload {} ({} bytes) as video {}", record.title, spool.size(), id);

  if (request.WantsJson()) {
    Response response =
        Response::Json(Status::accepted,
                       DumpJson({{"id", id}, {"status", "processing"}, {"title", record.title}}));
    response.headers.set(http::Field::location, "/api/videos/" + id);
    co_return response;
  }
  co_return Response::Redirect(Status::see_other, "/videos/" + id);
}

}  // namespace

void AddUploadRoutes(http::Router& router, AppContext& app) {
  // Multipart framing adds a little to the file's own size.
  http::RouteOptions options{.body_limit = app.options.max_upload_bytes + 64 * 1024};
  router.Add(
      http::Verb::post, "/upload",
      [&app](http::Request& request) { return HandleUpload(app, request); }, options);
}

}  // namespace streamgrid::webserver
