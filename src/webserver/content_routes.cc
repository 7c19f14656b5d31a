#include <memory>

#include "absl/strings/match.h"
#include "common/names.h"
#include "http/mime.h"
#include "http/offload.h"
#include "http/url.h"
#include "webserver/ranged_response.h"
#include "webserver/routes.h"

namespace streamgrid::webserver {
namespace {

using http::Response;
using http::Status;

// Streams a ContentReader, one blocking read per chunk on the blocking pool.
class ContentBodySource : public http::BodySource {
 public:
  ContentBodySource(std::unique_ptr<ContentReader> reader, boost::asio::thread_pool& pool)
      : reader_(std::move(reader)), pool_(pool) {}

  http::asio::awaitable<absl::StatusOr<size_t>> Read(std::span<char> buffer) override {
    co_return co_await http::Offload(pool_, [this, buffer] { return reader_->Read(buffer); });
  }

 private:
  std::unique_ptr<ContentReader> reader_;
  boost::asio::thread_pool& pool_;
};

// Segments never change once written (a new encode gets new names), so caches may
// keep them for good; manifests and thumbnails get a short lifetime.
std::string CacheControlFor(const std::string& name) {
  if (absl::EndsWith(name, ".m4s")) return "public, max-age=31536000, immutable";
  return "public, max-age=60";
}

// Decodes one path segment and checks it names something storable; traversal
// attempts ("..", "%2e%2e", "%2f", backslashes, NUL) fail here, before any I/O.
std::optional<std::string> DecodeSegment(std::string_view raw, bool is_id) {
  std::optional<std::string> decoded = http::PercentDecode(raw);
  if (!decoded) return std::nullopt;
  if (is_id ? !IsValidVideoId(*decoded) : !IsValidContentName(*decoded)) return std::nullopt;
  return decoded;
}

http::asio::awaitable<Response> ServeContent(AppContext& app, http::Request& request) {
  std::optional<std::string> id = DecodeSegment(request.params[0], /*is_id=*/true);
  std::optional<std::string> name = DecodeSegment(request.params[1], /*is_id=*/false);
  if (!id || !name) co_return Response::Error(Status::bad_request, "invalid video id or file name");

  absl::StatusOr<ContentInfo> info =
      co_await http::Offload(app.blocking, [&] { return app.content.Stat(*id, *name); });
  if (!info.ok()) {
    if (absl::IsNotFound(info.status()))
      co_return Response::Error(Status::not_found, "no such file");
    co_return http::ErrorFromStatus(info.status());
  }
  // Only media, playlist and image types: a stored file of any other kind
  // (which a storage node or a bug might have put there, e.g. x.html or
  // x.svg) is handed out as an opaque download that no browser renders, and
  // `original` is such a download by design.
  std::optional<std::string_view> media_type = http::MediaMimeTypeForName(*name);
  FileDescription file{info->size, info->etag,
                       std::string(media_type.value_or("application/octet-stream")),
                       CacheControlFor(*name)};
  Response response = co_await ServeRanged(
      request, file,
      [&](uint64_t offset, uint64_t length)
          -> http::asio::awaitable<absl::StatusOr<std::unique_ptr<http::BodySource>>> {
        auto reader = co_await http::Offload(
            app.blocking, [&] { return app.content.OpenReader(*id, *name, offset, length); });
        if (!reader.ok()) co_return reader.status();
        co_return std::make_unique<ContentBodySource>(std::move(*reader), app.blocking);
      });
  if (!media_type) {
    response.headers.set(http::Field::content_disposition, "attachment");
    // Should a browser show it anyway: no scripts, no origin.
    response.headers.set("Content-Security-Policy", "sandbox; default-src 'none'");
  }
  co_return response;
}

}  // namespace

void AddContentRoutes(http::Router& router, AppContext& app) {
  router.Add(http::Verb::get, "/content/{}/{}",
             [&app](http::Request& request) { return ServeContent(app, request); });
  // Anything deeper than <id>/<file> cannot name a stored file; say so as the
  // traversal error it usually is rather than as a missing page.
  router.Add(http::Verb::get, "/content/{*}",
             [](http::Request&) -> http::asio::awaitable<Response> {
               co_return Response::Error(Status::bad_request,
                                         "content paths are /content/<video id>/<file>");
             });
}

}  // namespace streamgrid::webserver
