#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <filesystem>
#include <memory>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "http/multipart_parser.h"
#include "http/offload.h"
#include "ingest/ingest.h"
#include "webserver/routes.h"
#include "webserver/upload_common.h"
#include "webserver/video_json.h"

namespace streamgrid::webserver {
namespace {

using http::Response;
using http::Status;

// Body bytes are read up to a chunk at a time and handed to the ingest in
// batches of at least kWriteBatch: one trip to the blocking pool per batch
// rather than per network read.
constexpr size_t kBodyChunk = 256 * 1024;
constexpr size_t kWriteBatch = 1024 * 1024;

http::asio::awaitable<Response> HandleUpload(AppContext& app, ingest::Ingest& ingest,
                                             http::Request& request) {
  // Before anything is read or stored: uploads hold a spool file and a
  // blocking thread each, and too many at once would starve reads.
  UploadSlot slot(app);
  if (!slot.held()) co_return UploadsBusy(app);

  absl::StatusOr<std::string> boundary =
      http::MultipartBoundary(request.Header(http::Field::content_type));
  if (!boundary.ok()) {
    co_return Response::Error(Status::unsupported_media_type,
                              absl::StrCat("expected a multipart/form-data upload with a field "
                                           "named 'file': ",
                                           boundary.status().message()));
  }

  // Refused before the body is read: a video accepted now could not be stored.
  if (absl::Status s = co_await http::Offload(app.blocking, [&] { return ingest.CheckWritable(); });
      !s.ok()) {
    co_return http::ErrorFromStatus(s);
  }

  absl::StatusOr<std::unique_ptr<ingest::Upload>> begun =
      co_await http::Offload(app.blocking, [&] { return ingest.Begin(); });
  if (!begun.ok()) co_return http::ErrorFromStatus(begun.status());
  // Destroyed off the event loop: abandoning streamed copies may block.
  std::unique_ptr<ingest::Upload> upload = *std::move(begun);
  absl::Cleanup release = [&app, &upload] {
    if (upload) {
      boost::asio::post(app.blocking,
                        [doomed = std::shared_ptr<ingest::Upload>(std::move(upload))] {});
    }
  };

  // The parser hands out file bytes as views into the current body chunk; they
  // are gathered here and handed over once a batch is full, so memory stays at
  // about a batch and a chunk whatever the upload's size.
  std::string pending;
  pending.reserve(kWriteBatch + kBodyChunk);
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
    if (pending.size() >= kWriteBatch || (*n == 0 && !pending.empty())) {
      absl::Status written = co_await http::Offload(
          app.blocking, [&] { return upload->Append(std::span(pending.data(), pending.size())); });
      if (!written.ok()) {
        if (ingest::IsRefusal(written)) {
          co_return Response::Error(Status::payload_too_large, written.message());
        }
        co_return http::ErrorFromStatus(written);
      }
      pending.clear();
    }
    if (*n == 0) break;
  }
  if (!filename) {
    co_return Response::Error(Status::bad_request, "the form has no field named 'file'");
  }

  // Everything below blocks (fsync, ffprobe, commits, metadata): one trip to the pool.
  const std::string title = ingest::TitleFromFilename(*filename);
  absl::StatusOr<VideoRecord> record =
      co_await http::Offload(app.blocking, [&] { return upload->Finish(title); });
  const std::string id = upload->id();
  const uint64_t size = upload->size();
  if (!record.ok()) {
    if (ingest::IsRefusal(record.status())) {
      spdlog::info("refused upload {}: {}", id, record.status().ToString());
      co_return ProbeError(record.status());
    }
    spdlog::error("upload {} failed: {}", id, record.status().ToString());
    co_return http::ErrorFromStatus(record.status());
  }
  spdlog::info("accepted upload {} ({} bytes) as video {}", record->title, size, id);

  if (request.WantsJson()) {
    Response response =
        Response::Json(Status::accepted,
                       DumpJson({{"id", id}, {"status", "processing"}, {"title", record->title}}));
    response.headers.set(http::Field::location, "/api/videos/" + id);
    co_return response;
  }
  co_return Response::Redirect(Status::see_other, "/videos/" + id);
}

}  // namespace

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

UploadSlot::UploadSlot(AppContext& app) : app_(app) {
  held_ = ++app_.uploads_in_progress <= app_.options.max_concurrent_uploads;
  if (!held_) --app_.uploads_in_progress;
}

UploadSlot::~UploadSlot() {
  if (held_) --app_.uploads_in_progress;
}

Response UploadsBusy(const AppContext& app) {
  Response busy = Response::Error(
      Status::service_unavailable,
      absl::StrCat("too many uploads in progress (at most ", app.options.max_concurrent_uploads,
                   " at once); try again shortly"));
  busy.headers.set(http::Field::retry_after, "5");
  return busy;
}

void AddUploadRoutes(http::Router& router, AppContext& app) {
  auto ingest = std::make_shared<ingest::Ingest>(
      app.metadata, app.content,
      // The job gets the probe's MediaInfo, so it does not probe again.
      [&app](const std::string& id, const std::filesystem::path& source, const MediaInfo& media) {
        app.transcoder.Enqueue(id, source, media);
      },
      ingest::IngestOptions{.spool_dir = app.options.spool_dir,
                            .max_file_bytes = app.options.max_upload_bytes,
                            .media_limits = app.options.media_limits});
  if (app.options.transcode_head_start) {
    ingest->SetEarlyStart(
        [&app](const std::string& id, const std::filesystem::path& source, const MediaInfo& media) {
          return app.transcoder.StartEarly(id, source, media);
        });
  }
  // Multipart framing adds a little to the file's own size.
  http::RouteOptions options{.body_limit = app.options.max_upload_bytes + 64 * 1024};
  router.Add(
      http::Verb::post, "/upload",
      [&app, ingest](http::Request& request) { return HandleUpload(app, *ingest, request); },
      options);
  AddTusRoutes(router, app, ingest);
}

}  // namespace streamgrid::webserver
