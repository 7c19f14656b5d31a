#include <algorithm>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <charconv>
#include <chrono>
#include <memory>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "common/public_error.h"
#include "http/offload.h"
#include "http/url.h"
#include "spdlog/spdlog.h"
#include "webserver/long_poll.h"
#include "webserver/ranged_response.h"
#include "webserver/routes.h"
#include "webserver/video_json.h"

namespace streamgrid::webserver {
namespace {

using http::Response;
using http::Status;

// The decoded id of /api/videos/<id>; nullopt means no such video can exist.
std::optional<std::string> VideoIdParam(const http::Request& request) {
  std::optional<std::string> id = http::PercentDecode(request.params[0]);
  if (!id || !IsValidVideoId(*id)) return std::nullopt;
  return id;
}

Response NoSuchVideo() { return Response::Error(Status::not_found, "no such video"); }

// The longest GET /api/videos/<id> waits for a change ("Prefer: wait=N"):
// well under the 60 s after which common proxies drop a quiet request.
constexpr std::chrono::seconds kMaxVideoWait{30};
// How often such a wait reads the record again when changes cannot be
// followed (the metadata store refused the subscription).
constexpr std::chrono::seconds kRereadWithoutSubscription{1};

http::asio::awaitable<Response> ListVideos(AppContext& app, http::Request& request) {
  ListOptions options;
  if (std::optional<std::string> limit = request.QueryParam("limit")) {
    int value = 0;
    auto [end, ec] = std::from_chars(limit->data(), limit->data() + limit->size(), value);
    if (ec != std::errc() || end != limit->data() + limit->size() || value < 1 || value > 1000) {
      co_return Response::Error(Status::bad_request, "limit must be a number from 1 to 1000");
    }
    options.page_size = value;
  }
  if (std::optional<std::string> status = request.QueryParam("status")) {
    options.status = ParseVideoStatus(*status);
    if (!options.status) {
      co_return Response::Error(Status::bad_request,
                                "status must be one of processing, ready, failed");
    }
  }
  options.page_token = request.QueryParam("page_token").value_or("");
  absl::StatusOr<VideoPage> page =
      co_await http::Offload(app.blocking, [&] { return app.metadata.List(options); });
  if (!page.ok()) co_return http::ErrorFromStatus(page.status());
  nlohmann::json videos = nlohmann::json::array();
  for (const VideoRecord& video : page->videos) videos.push_back(VideoToJson(video));
  nlohmann::json body = {{"videos", videos}};
  body["next_page_token"] = page->next_page_token.empty() ? nlohmann::json(nullptr)
                                                          : nlohmann::json(page->next_page_token);
  co_return Response::Json(Status::ok, DumpJson(body));
}

// GET /api/videos/<id>, with an ETag. If-None-Match naming the current tag
// gets 304; with "Prefer: wait=N" too, the answer waits up to N seconds for
// the record to change (a long poll: a progress bar or a player hears of each
// change at once, for one request per change rather than a poll per tick).
http::asio::awaitable<Response> GetVideo(AppContext& app, http::Request& request) {
  std::optional<std::string> id = VideoIdParam(request);
  if (!id) co_return NoSuchVideo();
  const std::string_view if_none_match = request.Header(http::Field::if_none_match);
  const std::chrono::seconds wait =
      if_none_match.empty() ? std::chrono::seconds(0)
                            : PreferredWait(request.Header(http::Field::prefer), kMaxVideoWait);
  const auto deadline = std::chrono::steady_clock::now() + wait;

  // Declared so that the subscription goes first and the timer is unhooked
  // before it is destroyed, whenever this frame ends.
  http::asio::any_io_executor loop = co_await http::asio::this_coro::executor;
  auto wake = std::make_shared<ChangeWake>(loop);
  boost::asio::steady_timer timer(loop);
  absl::Cleanup unhook = [&wake] { wake->timer = nullptr; };
  std::unique_ptr<RecordChangeHub::Subscription> subscription;
  if (wait > std::chrono::seconds(0)) {
    // Subscribed before the read below, so no change falls between the two.
    auto subscribed = co_await http::Offload(
        app.blocking, [&] { return app.metadata.Subscribe(*id, WakeOnChange(wake)); });
    if (subscribed.ok()) {
      subscription = *std::move(subscribed);
    } else {
      // The wait is kept by reading again every so often instead.
      spdlog::warn("GET /api/videos/{}: cannot follow changes, reading every {} s: {}", *id,
                   kRereadWithoutSubscription.count(), subscribed.status().ToString());
    }
  }
  while (true) {
    wake->changed = false;
    absl::StatusOr<VideoRecord> video =
        co_await http::Offload(app.blocking, [&] { return app.metadata.Get(*id); });
    if (absl::IsNotFound(video.status())) co_return NoSuchVideo();
    if (!video.ok()) co_return http::ErrorFromStatus(video.status());
    std::string body = DumpJson(VideoToJson(*video));
    std::string etag = BodyEtag(body);
    const bool unchanged = EtagListMatches(if_none_match, etag);
    const auto now = std::chrono::steady_clock::now();
    if (!unchanged || now >= deadline) {
      Response response;
      if (unchanged) {
        response.status = Status::not_modified;
      } else {
        response = Response::Json(Status::ok, std::move(body));
      }
      response.headers.set(http::Field::etag, etag);
      response.headers.set(http::Field::cache_control, "no-cache");
      co_return response;
    }
    if (!wake->changed) {
      timer.expires_at(subscription ? deadline
                                    : std::min(deadline, now + kRereadWithoutSubscription));
      wake->timer = &timer;
      ++app.video_waits;
      // Counted down however the wait ends, the frame's destruction included.
      absl::Cleanup counted = [&app] { --app.video_waits; };
      boost::system::error_code ignored;  // cancelled by a change, or the deadline
      co_await timer.async_wait(boost::asio::redirect_error(http::asio::use_awaitable, ignored));
      wake->timer = nullptr;
    }
  }
}

http::asio::awaitable<Response> DeleteVideo(AppContext& app, http::Request& request) {
  std::optional<std::string> id = VideoIdParam(request);
  if (!id) co_return NoSuchVideo();
  // Files go first: if that fails the record still exists and DELETE can be
  // retried, where the other order could strand files no record points at.
  absl::Status deleted = co_await http::Offload(app.blocking, [&]() -> absl::Status {
    absl::StatusOr<VideoRecord> video = app.metadata.Get(*id);
    if (!video.ok()) return video.status();
    // A job of this server still storing would leave whatever it stores after
    // the files go with no record pointing at it. Past the wait the record
    // stays, so that a retried DELETE finds the video and removes it all.
    if (absl::Status s = app.transcoder.Cancel(*id); !s.ok()) {
      return WithPublicMessage(absl::UnavailableError(s.message()),
                               "the video's conversion is still stopping; try again");
    }
    // DeleteVideo answers OK when there are no files: any error here is real.
    if (absl::Status s = app.content.DeleteVideo(*id); !s.ok()) return s;
    return app.metadata.Delete(*id);
  });
  if (absl::IsNotFound(deleted)) co_return NoSuchVideo();
  if (!deleted.ok()) co_return http::ErrorFromStatus(deleted);
  Response response;
  response.status = Status::no_content;
  co_return response;
}

http::asio::awaitable<Response> Health(AppContext& app, http::Request&) {
  // Listing one record proves the metadata store answers.
  absl::StatusOr<VideoPage> page = co_await http::Offload(
      app.blocking, [&] { return app.metadata.List(ListOptions{.page_size = 1}); });
  if (!page.ok()) {
    // The detail (members, keys, paths) goes to the log, not to the prober.
    co_return http::ErrorFromStatus(WithPublicMessage(
        absl::UnavailableError(absl::StrCat("metadata store: ", page.status().message())),
        "metadata store unavailable"));
  }
  co_return Response::Json(Status::ok, R"({"status":"ok"})");
}

}  // namespace

void AddApiRoutes(http::Router& router, AppContext& app) {
  router.Add(http::Verb::get, "/api/videos",
             [&app](http::Request& r) { return ListVideos(app, r); });
  router.Add(http::Verb::get, "/api/videos/{}",
             [&app](http::Request& r) { return GetVideo(app, r); });
  router.Add(http::Verb::delete_, "/api/videos/{}",
             [&app](http::Request& r) { return DeleteVideo(app, r); });
  router.Add(http::Verb::get, "/healthz", [&app](http::Request& r) { return Health(app, r); });
  if (app.metrics_text) {
    // Prometheus's scrape: read-only counters and gauges, like /healthz.
    router.Add(http::Verb::get, "/metrics",
               [&app](http::Request&) -> http::asio::awaitable<Response> {
                 Response response = Response::Text(Status::ok, app.metrics_text());
                 response.headers.set(http::Field::content_type,
                                      "text/plain; version=0.0.4; charset=utf-8");
                 response.headers.set(http::Field::cache_control, "no-store");
                 co_return response;
               });
  }
}

}  // namespace streamgrid::webserver
