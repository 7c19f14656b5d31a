// /api/uploads: the tus 1.0 resumable-upload protocol (core, creation,
// termination, expiration) over ingest::TusStore, handing finished files to
// the same ingest as POST /upload. See docs/uploads.md.

#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/strings.h"
#include "http/offload.h"
#include "http/write_guard.h"
#include "ingest/ingest.h"
#include "ingest/tus_protocol.h"
#include "ingest/tus_store.h"
#include "webserver/routes.h"
#include "webserver/upload_common.h"

namespace streamgrid::webserver {
namespace {

using http::Response;
using http::Status;
using ingest::TusStore;
using ingest::TusUploadInfo;
using ingest::TusWrite;

// As POST /upload: network reads of up to a chunk, handed to the disk in
// batches of at least kWriteBatch (one trip to the blocking pool each).
constexpr size_t kBodyChunk = 256 * 1024;
constexpr size_t kWriteBatch = 1024 * 1024;
constexpr size_t kMaxTitleBytes = 255;
constexpr std::string_view kPatchType = "application/offset+octet-stream";

struct Tus {
  AppContext& app;
  std::shared_ptr<ingest::Ingest> ingest;
  TusStore store;
  http::WriteGuard guard;
};

// Every tus answer says the protocol version and is not to be cached.
Response WithTusHeaders(Response response) {
  response.headers.set("Tus-Resumable", std::string(ingest::kTusVersion));
  response.headers.set(http::Field::cache_control, "no-store");
  return response;
}

Response Empty(Status status) {
  Response r;
  r.status = status;
  return WithTusHeaders(std::move(r));
}

Response Error(Status status, absl::string_view message) {
  return WithTusHeaders(Response::Error(status, message));
}

// The store's and the ingest's errors as tus answers them.
Response ErrorFor(const absl::Status& status) {
  if (absl::IsNotFound(status)) return Error(Status::not_found, status.message());
  if (absl::IsFailedPrecondition(status)) return Error(Status::conflict, status.message());
  if (absl::IsAborted(status)) return Error(Status::locked, status.message());
  if (absl::IsOutOfRange(status)) return Error(Status::payload_too_large, status.message());
  if (absl::IsInvalidArgument(status)) return Error(Status::bad_request, status.message());
  return WithTusHeaders(http::ErrorFromStatus(status));
}

// 412 unless the request speaks tus 1.0.0.
std::optional<Response> CheckVersion(const http::Request& request) {
  auto it = request.headers.find("Tus-Resumable");
  std::string_view version =
      it == request.headers.end() ? std::string_view() : std::string_view(it->value());
  if (version == ingest::kTusVersion) return std::nullopt;
  Response r = Error(Status::precondition_failed,
                     version.empty() ? "missing Tus-Resumable header (this server speaks 1.0.0)"
                                     : "unsupported Tus-Resumable version (this server speaks "
                                       "1.0.0)");
  r.headers.set("Tus-Version", std::string(ingest::kTusVersion));
  return r;
}

std::string_view HeaderValue(const http::Request& request, std::string_view name) {
  auto it = request.headers.find(name);
  return it == request.headers.end() ? std::string_view() : std::string_view(it->value());
}

// The upload named by the path, or nullopt for anything not shaped like an
// id this server makes: such a string never reaches a path.
std::optional<std::string> UploadId(const http::Request& request) {
  if (request.params.empty() || !ingest::IsTusUploadId(request.params[0])) return std::nullopt;
  return request.params[0];
}

Response NoSuchUpload() { return Error(Status::not_found, "no such upload (it may have expired)"); }

int64_t MillisBetween(std::chrono::steady_clock::time_point from,
                      std::chrono::steady_clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

void SetExpires(Response& r, const TusUploadInfo& info) {
  r.headers.set("Upload-Expires", ingest::HttpDateFromUnixMillis(info.expires_at_ms));
}

// A title given in the metadata: one line, at most 255 bytes.
std::string CleanTitle(std::string_view title) {
  std::string out(title.substr(0, kMaxTitleBytes));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return out;
}

http::asio::awaitable<Response> Options(Tus& tus) {
  Response r = Empty(Status::no_content);
  r.headers.set("Tus-Version", std::string(ingest::kTusVersion));
  r.headers.set("Tus-Extension", std::string(ingest::kTusExtensions));
  r.headers.set("Tus-Max-Size", std::to_string(tus.store.options().max_length));
  co_return r;
}

http::asio::awaitable<Response> Create(Tus& tus, http::Request& request) {
  if (auto refused = CheckVersion(request)) co_return *std::move(refused);
  if (!HeaderValue(request, "Upload-Defer-Length").empty()) {
    co_return Error(Status::bad_request,
                    "Upload-Defer-Length is not supported: send Upload-Length");
  }
  std::string_view length_text = HeaderValue(request, "Upload-Length");
  if (length_text.empty()) co_return Error(Status::bad_request, "missing Upload-Length header");
  absl::StatusOr<uint64_t> length = ingest::ParseTusNumber("Upload-Length", length_text);
  if (!length.ok()) co_return ErrorFor(length.status());
  if (request.content_length.value_or(0) > 0) {
    co_return Error(Status::bad_request,
                    "creation-with-upload is not supported: send the bytes with PATCH");
  }
  absl::StatusOr<std::map<std::string, std::string>> metadata =
      ingest::ParseUploadMetadata(HeaderValue(request, "Upload-Metadata"));
  if (!metadata.ok()) co_return ErrorFor(metadata.status());
  std::string filename = (*metadata)["filename"];
  std::string title = CleanTitle((*metadata)["title"]);
  if (title.find_first_not_of(' ') == std::string::npos)
    title = ingest::TitleFromFilename(filename);

  absl::StatusOr<TusUploadInfo> created = co_await http::Offload(
      tus.app.blocking, [&] { return tus.store.Create(*length, filename, title); });
  if (!created.ok()) co_return ErrorFor(created.status());
  spdlog::info("tus: upload {} created ({} bytes, '{}')", created->id, created->length,
               created->title);
  Response r = Empty(Status::created);
  r.headers.set(http::Field::location, "/api/uploads/" + created->id);
  SetExpires(r, *created);
  co_return r;
}

http::asio::awaitable<Response> Head(Tus& tus, http::Request& request) {
  if (auto refused = CheckVersion(request)) co_return *std::move(refused);
  // A read, but one of an upload: the same origin and token rules as writes.
  if (absl::Status allowed = tus.guard.CheckWrite(request.headers); !allowed.ok()) {
    Response r = WithTusHeaders(http::ErrorFromStatus(allowed));
    if (absl::IsUnauthenticated(allowed)) {
      r.headers.set(http::Field::www_authenticate, "Bearer realm=\"StreamGrid\"");
    }
    co_return r;
  }
  std::optional<std::string> id = UploadId(request);
  if (!id) co_return NoSuchUpload();
  absl::StatusOr<TusUploadInfo> info = tus.store.Get(*id);  // memory only
  if (!info.ok()) co_return ErrorFor(info.status());
  Response r = Empty(Status::ok);
  r.headers.set("Upload-Offset", std::to_string(info->offset));
  r.headers.set("Upload-Length", std::to_string(info->length));
  std::vector<std::string> metadata;
  if (!info->filename.empty()) {
    metadata.push_back(absl::StrCat("filename ", absl::Base64Escape(info->filename)));
  }
  if (!info->title.empty()) {
    metadata.push_back(absl::StrCat("title ", absl::Base64Escape(info->title)));
  }
  if (!metadata.empty()) r.headers.set("Upload-Metadata", absl::StrJoin(metadata, ","));
  SetExpires(r, *info);
  if (!info->video_id.empty()) r.headers.set(ingest::kMediaIdHeader, info->video_id);
  co_return r;
}

http::asio::awaitable<Response> Delete(Tus& tus, http::Request& request) {
  if (auto refused = CheckVersion(request)) co_return *std::move(refused);
  std::optional<std::string> id = UploadId(request);
  if (!id) co_return NoSuchUpload();
  absl::Status deleted =
      co_await http::Offload(tus.app.blocking, [&] { return tus.store.Delete(*id); });
  if (!deleted.ok()) co_return ErrorFor(deleted);
  spdlog::info("tus: upload {} deleted by the client", *id);
  co_return Empty(Status::no_content);
}

// The complete upload goes through the ingest; the answer carries the video id.
http::asio::awaitable<Response> Finish(Tus& tus, TusWrite& write) {
  const TusUploadInfo& info = write.info();
  absl::StatusOr<VideoRecord> record =
      co_await http::Offload(tus.app.blocking, [&]() -> absl::StatusOr<VideoRecord> {
        absl::StatusOr<std::unique_ptr<ingest::Upload>> upload =
            tus.ingest->BeginFromFile(write.data_path());
        if (!upload.ok()) return upload.status();
        // Destroyed here, off the event loop.
        return (*upload)->Finish(info.title.empty() ? "untitled" : info.title);
      });
  if (!record.ok()) {
    if (ingest::IsRefusal(record.status())) {
      // The file will never be accepted: keeping it would only use the disk.
      spdlog::info("tus: refused upload {}: {}", info.id, record.status().ToString());
      co_await http::Offload(tus.app.blocking, [&] {
        write.Discard();
        return 0;
      });
      co_return WithTusHeaders(ProbeError(record.status()));
    }
    // The bytes stay: the client may send the final PATCH (empty, at the end)
    // again.
    spdlog::error("tus: upload {} could not be ingested: {}", info.id, record.status().ToString());
    co_return WithTusHeaders(http::ErrorFromStatus(record.status()));
  }
  absl::Status marked =
      co_await http::Offload(tus.app.blocking, [&] { return write.MarkAccepted(record->id); });
  if (!marked.ok()) {
    // The video exists; only a repeated final PATCH would not find it.
    spdlog::warn("tus: upload {} is video {} but that could not be recorded: {}", info.id,
                 record->id, marked.ToString());
  }
  spdlog::info("tus: upload {} ({} bytes) accepted as video {}", info.id, info.length, record->id);
  Response r = Empty(Status::no_content);
  r.headers.set("Upload-Offset", std::to_string(info.length));
  r.headers.set(ingest::kMediaIdHeader, record->id);
  SetExpires(r, write.info());
  co_return r;
}

http::asio::awaitable<Response> Patch(Tus& tus, http::Request& request) {
  if (auto refused = CheckVersion(request)) co_return *std::move(refused);
  std::string_view type = request.Header(http::Field::content_type);
  type = type.substr(0, type.find(';'));
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  if (!EqualsIgnoreCase(type, kPatchType)) {
    co_return Error(Status::unsupported_media_type,
                    absl::StrCat("PATCH needs Content-Type: ", ToAbsl(kPatchType)));
  }
  std::string_view offset_text = HeaderValue(request, "Upload-Offset");
  if (offset_text.empty()) co_return Error(Status::bad_request, "missing Upload-Offset header");
  absl::StatusOr<uint64_t> offset = ingest::ParseTusNumber("Upload-Offset", offset_text);
  if (!offset.ok()) co_return ErrorFor(offset.status());
  std::optional<std::string> id = UploadId(request);
  if (!id) co_return NoSuchUpload();

  UploadSlot slot(tus.app);
  if (!slot.held()) co_return WithTusHeaders(UploadsBusy(tus.app));
  absl::StatusOr<std::unique_ptr<TusWrite>> begun =
      co_await http::Offload(tus.app.blocking, [&] { return tus.store.BeginWrite(*id, *offset); });
  if (!begun.ok()) co_return ErrorFor(begun.status());
  TusWrite& write = **begun;
  const TusUploadInfo& info = write.info();
  if (!info.video_id.empty()) {
    // Accepted already (a repeated final PATCH whose answer was lost).
    if (request.content_length.value_or(0) > 0) {
      co_return Error(Status::conflict, "the upload is complete");
    }
    Response r = Empty(Status::no_content);
    r.headers.set("Upload-Offset", std::to_string(info.length));
    r.headers.set(ingest::kMediaIdHeader, info.video_id);
    SetExpires(r, info);
    co_return r;
  }
  if (request.content_length && *request.content_length > info.length - info.offset) {
    co_return Error(Status::payload_too_large,
                    absl::StrCat("the body goes past Upload-Length (", info.length, " bytes)"));
  }

  // Every exit below makes what was written durable (or drops it) first.
  std::string pending;
  pending.reserve(kWriteBatch + kBodyChunk);
  std::vector<char> chunk(kBodyChunk);
  const auto begun_at = std::chrono::steady_clock::now();
  absl::Status failure;
  bool overflow = false;
  for (;;) {
    absl::StatusOr<size_t> n = co_await request.body->Read(chunk);
    if (!n.ok()) {
      failure = n.status();
    } else {
      pending.append(chunk.data(), *n);
    }
    if (!pending.empty() && (pending.size() >= kWriteBatch || !n.ok() || *n == 0)) {
      absl::Status written = co_await http::Offload(tus.app.blocking, [&] {
        return write.Append(std::span(pending.data(), pending.size()));
      });
      pending.clear();
      if (!written.ok()) {
        overflow = absl::IsOutOfRange(written);
        if (failure.ok()) failure = written;
      }
    }
    if (!failure.ok() || *n == 0) break;
  }
  if (overflow) {
    // A body longer than the upload: this PATCH changes nothing.
    co_await http::Offload(tus.app.blocking, [&] { return write.Rollback(); });
    co_return ErrorFor(failure);
  }
  // A dropped connection keeps what arrived: durable now, and the offset.
  const auto received_at = std::chrono::steady_clock::now();
  absl::StatusOr<uint64_t> synced =
      co_await http::Offload(tus.app.blocking, [&] { return write.Sync(); });
  spdlog::info("tus: upload {}: {} bytes received in {} ms, synced in {} ms", info.id,
               write.written() - *offset, MillisBetween(begun_at, received_at),
               MillisBetween(received_at, std::chrono::steady_clock::now()));
  if (!failure.ok()) {
    spdlog::info("tus: upload {} interrupted at {} of {} bytes: {}", info.id,
                 synced.ok() ? *synced : info.offset, info.length, failure.ToString());
    if (http::IsBodyTooLarge(failure)) co_return ErrorFor(absl::OutOfRangeError(failure.message()));
    co_return WithTusHeaders(http::ErrorFromStatus(failure));
  }
  if (!synced.ok()) co_return WithTusHeaders(http::ErrorFromStatus(synced.status()));
  if (*synced < info.length) {
    Response r = Empty(Status::no_content);
    r.headers.set("Upload-Offset", std::to_string(*synced));
    SetExpires(r, info);
    co_return r;
  }
  co_return co_await Finish(tus, write);
}

// X-HTTP-Method-Override (tus core): clients that cannot send PATCH or DELETE
// send a POST that says which.
http::asio::awaitable<Response> Override(Tus& tus, http::Request& request) {
  std::string_view method = HeaderValue(request, "X-HTTP-Method-Override");
  if (EqualsIgnoreCase(method, "PATCH")) co_return co_await Patch(tus, request);
  if (EqualsIgnoreCase(method, "DELETE")) co_return co_await Delete(tus, request);
  if (EqualsIgnoreCase(method, "HEAD")) co_return co_await Head(tus, request);
  Response r = Error(Status::method_not_allowed,
                     "POST an upload with X-HTTP-Method-Override: PATCH, DELETE or HEAD");
  r.headers.set(http::Field::allow, "OPTIONS, HEAD, PATCH, DELETE, POST");
  co_return r;
}

}  // namespace

void AddTusRoutes(http::Router& router, AppContext& app, std::shared_ptr<ingest::Ingest> ingest) {
  auto tus =
      std::shared_ptr<Tus>(new Tus{.app = app,
                                   .ingest = std::move(ingest),
                                   .store = TusStore({.dir = app.options.spool_dir / "tus",
                                                      .max_length = app.options.max_upload_bytes,
                                                      .expiry = app.options.upload_expiry}),
                                   .guard = http::WriteGuard(app.options.write_guard)});
  if (absl::Status s = tus->store.Open(); !s.ok()) {
    // Resumable uploads then start from an empty directory; the rest serves.
    spdlog::error("tus: {}", s.ToString());
  }
  tus->store.StartSweep();
  router.Add(http::Verb::options, "/api/uploads", [tus](http::Request&) { return Options(*tus); });
  router.Add(http::Verb::options, "/api/uploads/{}",
             [tus](http::Request&) { return Options(*tus); });
  router.Add(http::Verb::post, "/api/uploads", [tus](http::Request& r) { return Create(*tus, r); });
  router.Add(http::Verb::head, "/api/uploads/{}",
             [tus](http::Request& r) { return Head(*tus, r); });
  router.Add(http::Verb::delete_, "/api/uploads/{}",
             [tus](http::Request& r) { return Delete(*tus, r); });
  http::RouteOptions body{.body_limit = app.options.max_upload_bytes};
  router.Add(
      http::Verb::patch, "/api/uploads/{}", [tus](http::Request& r) { return Patch(*tus, r); },
      body);
  router.Add(
      http::Verb::post, "/api/uploads/{}", [tus](http::Request& r) { return Override(*tus, r); },
      body);
}

}  // namespace streamgrid::webserver
