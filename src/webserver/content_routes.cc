#include <boost/asio/post.hpp>
#include <memory>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "content/caching_video_content_service.h"
#include "http/mime.h"
#include "http/offload.h"
#include "http/url.h"
#include "webserver/content_body_source.h"
#include "webserver/ranged_response.h"
#include "webserver/routes.h"

namespace streamgrid::webserver {
namespace {

using http::Response;
using http::Status;

// Segments and the storyboard never change once written, so caches may keep
// them for good (IsImmutableContentName); manifests and thumbnails get a
// short lifetime. HLS playlists grow while a video is encoded (EVENT
// playlists, see docs/transcode-pipeline.md): a player reloads them every
// target duration (2 s), so a browser may keep one only for half of that.
std::string CacheControlFor(const std::string& name) {
  if (IsImmutableContentName(name)) return "public, max-age=31536000, immutable";
  if (absl::EndsWith(name, ".m3u8")) return "public, max-age=1";
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

// Says what the client is told about `name` besides its bytes.
FileDescription DescribeFile(const std::string& name, const ContentInfo& info,
                             std::optional<std::string_view> media_type) {
  return FileDescription{info.size, info.etag,
                         std::string(media_type.value_or("application/octet-stream")),
                         CacheControlFor(name)};
}

// Only media, playlist and image types: a stored file of any other kind
// (which a storage node or a bug might have put there, e.g. x.html or
// x.svg) is handed out as an opaque download that no browser renders, and
// `original` is such a download by design.
void MarkDownload(std::optional<std::string_view> media_type, Response& response) {
  if (media_type) return;
  response.headers.set(http::Field::content_disposition, "attachment");
  // Should a browser show it anyway: no scripts, no origin.
  response.headers.set("Content-Security-Policy", "sandbox; default-src 'none'");
}

Response ServeCached(http::Request& request, const std::string& name,
                     std::shared_ptr<const CachedFile> file) {
  std::optional<std::string_view> media_type = http::MediaMimeTypeForName(name);
  const std::string_view bytes = file->data;
  const int fd = file->fd();
  Response response =
      ServeRangedMemory(request, DescribeFile(name, file->info, media_type), file, bytes, fd);
  MarkDownload(media_type, response);
  return response;
}

// With the cache, a hit is answered here, on the event loop, without a
// thread hop or any I/O (and, being no coroutine, without a frame to
// allocate); nullopt on a miss.
std::optional<Response> ServeFromCache(AppContext& app, CachingVideoContentService& cache,
                                       http::Request& request, const std::string& id,
                                       const std::string& name) {
  CachingVideoContentService::Hit hit = cache.LookupOrStale(id, name);
  if (!hit.file) return std::nullopt;
  if (hit.refresh) {
    // Revalidated in the background: the viewer gets the cached copy now
    // rather than waiting for a storage node's answer.
    boost::asio::post(app.blocking, [&cache, id, name] { cache.Fetch(id, name).IgnoreError(); });
  }
  return ServeCached(request, name, std::move(hit.file));
}

// A cache miss costs one read of the content service (which fills the
// cache, or, for a file it does not keep, is the body itself).
http::asio::awaitable<Response> ServeCacheMiss(AppContext& app, CachingVideoContentService& cache,
                                               http::Request& request, const std::string& id,
                                               const std::string& name) {
  absl::StatusOr<CachingVideoContentService::Fetched> fetched =
      co_await http::Offload(app.blocking, [&] { return cache.Fetch(id, name); });
  if (!fetched.ok()) {
    if (absl::IsNotFound(fetched.status()))
      co_return Response::Error(Status::not_found, "no such file");
    co_return http::ErrorFromStatus(fetched.status());
  }
  if (fetched->file) co_return ServeCached(request, name, std::move(fetched->file));
  std::optional<std::string_view> media_type = http::MediaMimeTypeForName(name);
  const ContentInfo info = fetched->info;
  std::unique_ptr<ContentReader> whole = std::move(fetched->reader);
  Response response = co_await ServeRanged(
      request, DescribeFile(name, info, media_type),
      [&](uint64_t offset, uint64_t length)
          -> http::asio::awaitable<absl::StatusOr<std::unique_ptr<http::BodySource>>> {
        // The reader Fetch opened covers the whole file; a range needs its own.
        if (offset == 0 && length == info.size && whole) {
          co_return std::make_unique<ContentBodySource>(std::move(whole), app.blocking);
        }
        auto reader = co_await http::Offload(
            app.blocking, [&] { return app.content.OpenReader(id, name, offset, length); });
        if (!reader.ok()) co_return reader.status();
        co_return std::make_unique<ContentBodySource>(std::move(*reader), app.blocking);
      });
  if (whole) {
    // Not used (HEAD, 304, a range): dropped on the blocking pool, since
    // closing a remote read may wait on the network.
    std::shared_ptr<ContentReader> unused(std::move(whole));
    co_await http::Offload(app.blocking, [unused]() mutable {
      unused.reset();
      return true;
    });
  }
  MarkDownload(media_type, response);
  co_return response;
}

http::asio::awaitable<Response> ServeContent(AppContext& app, CachingVideoContentService* cache,
                                             http::Request& request) {
  std::optional<std::string> id = DecodeSegment(request.params[0], /*is_id=*/true);
  std::optional<std::string> name = DecodeSegment(request.params[1], /*is_id=*/false);
  if (!id || !name) co_return Response::Error(Status::bad_request, "invalid video id or file name");
  // HEAD of an uncached file needs no body: a Stat is cheaper than a read.
  if (cache && (request.method != http::Verb::head || cache->Lookup(*id, *name))) {
    if (std::optional<Response> hit = ServeFromCache(app, *cache, request, *id, *name)) {
      co_return std::move(*hit);
    }
    co_return co_await ServeCacheMiss(app, *cache, request, *id, *name);
  }

  absl::StatusOr<ContentInfo> info =
      co_await http::Offload(app.blocking, [&] { return app.content.Stat(*id, *name); });
  if (!info.ok()) {
    if (absl::IsNotFound(info.status()))
      co_return Response::Error(Status::not_found, "no such file");
    co_return http::ErrorFromStatus(info.status());
  }
  std::optional<std::string_view> media_type = http::MediaMimeTypeForName(*name);
  Response response = co_await ServeRanged(
      request, DescribeFile(*name, *info, media_type),
      [&](uint64_t offset, uint64_t length)
          -> http::asio::awaitable<absl::StatusOr<std::unique_ptr<http::BodySource>>> {
        auto reader = co_await http::Offload(
            app.blocking, [&] { return app.content.OpenReader(*id, *name, offset, length); });
        if (!reader.ok()) co_return reader.status();
        co_return std::make_unique<ContentBodySource>(std::move(*reader), app.blocking);
      });
  MarkDownload(media_type, response);
  co_return response;
}

}  // namespace

void AddContentRoutes(http::Router& router, AppContext& app) {
  // The cache, when main wrapped the content service in one.
  CachingVideoContentService* cache = dynamic_cast<CachingVideoContentService*>(&app.content);
  router.Add(http::Verb::get, "/content/{}/{}",
             [&app, cache](http::Request& request) { return ServeContent(app, cache, request); });
  // Anything deeper than <id>/<file> cannot name a stored file; say so as the
  // traversal error it usually is rather than as a missing page.
  router.Add(http::Verb::get, "/content/{*}",
             [](http::Request&) -> http::asio::awaitable<Response> {
               co_return Response::Error(Status::bad_request,
                                         "content paths are /content/<video id>/<file>");
             });
}

}  // namespace streamgrid::webserver
