#include <fcntl.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
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

struct Templates {
  std::string index;
  std::string player;
  std::string not_found;
};

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

absl::StatusOr<std::string> ReadTemplate(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in)
    return absl::FailedPreconditionError(absl::StrCat("cannot read template ", path.string()));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A video's length as a player shows it: "0:07", "12:34", "1:02:03"; "" while
// unknown. (web/static/index.js formats the cards it builds the same way.)
std::string ClockTime(double seconds) {
  if (!(seconds >= 0.5)) return "";  // also NaN
  const auto total = static_cast<int64_t>(seconds + 0.5);
  const int64_t h = total / 3600, m = total / 60 % 60, s = total % 60;
  return h > 0 ? absl::StrFormat("%d:%02d:%02d", h, m, s) : absl::StrFormat("%d:%02d", m, s);
}

std::string VideoCard(const VideoRecord& video) {
  std::string id = HtmlEscape(video.id);
  std::string status(VideoStatusName(video.status));
  std::string thumb;
  switch (video.status) {
    case VideoStatus::kReady:
      thumb =
          absl::StrCat("<img src=\"/content/", id, "/thumbnail.jpg\" alt=\"\" loading=\"lazy\">");
      break;
    case VideoStatus::kProcessing:
      thumb =
          absl::StrCat("<span class=\"thumb-placeholder\">Processing ", video.progress, "%</span>");
      break;
    case VideoStatus::kFailed:
      thumb = "<span class=\"thumb-placeholder\">Failed</span>";
      break;
  }
  // The length shows once it is known (the upload's check finds it).
  const std::string clock = ClockTime(video.duration_seconds);
  const std::string duration =
      clock.empty() ? "" : absl::StrCat("<span class=\"duration\">", clock, "</span>");
  return absl::StrCat("<li class=\"video-card\" data-id=\"", id, "\" data-status=\"", status,
                      "\"><a class=\"thumb\" href=\"/videos/", id, "\">", thumb,
                      "</a><a class=\"title\" href=\"/videos/", id, "\">", HtmlEscape(video.title),
                      "</a><span class=\"status status-", status, "\">", status, "</span>",
                      duration, "</li>");
}

http::asio::awaitable<Response> IndexPage(AppContext& app, const Templates& templates,
                                          http::Request& request) {
  ListOptions options{.page_size = 24};
  options.page_token = request.QueryParam("page_token").value_or("");
  absl::StatusOr<VideoPage> page =
      co_await http::Offload(app.blocking, [&] { return app.metadata.List(options); });
  if (absl::IsInvalidArgument(page.status())) {
    co_return Response::Error(Status::bad_request, page.status().message());
  }
  if (!page.ok()) co_return http::ErrorFromStatus(page.status());
  std::string cards;
  for (const VideoRecord& video : page->videos) cards += VideoCard(video);
  if (page->videos.empty()) cards = "<li class=\"empty\">No videos yet. Upload one above.</li>";
  std::string pagination;
  if (!page->next_page_token.empty()) {
    pagination =
        absl::StrCat("<a class=\"next\" href=\"/?page_token=", HtmlEscape(page->next_page_token),
                     "\">Older videos</a>");
  }
  Response response = Response::Html(
      Status::ok, absl::StrReplaceAll(templates.index,
                                      {{"{{VIDEO_LIST}}", cards}, {"{{PAGINATION}}", pagination}}));
  response.headers.set(http::Field::cache_control, "no-cache");
  co_return response;
}

http::asio::awaitable<Response> PlayerPage(AppContext& app, const Templates& templates,
                                           http::Request& request) {
  std::optional<std::string> id = http::PercentDecode(request.params[0]);
  absl::StatusOr<VideoRecord> video = absl::NotFoundError("no such video");
  if (id && IsValidVideoId(*id)) {
    video = co_await http::Offload(app.blocking, [&] { return app.metadata.Get(*id); });
  }
  if (absl::IsNotFound(video.status())) {
    co_return Response::Html(Status::not_found, templates.not_found);
  }
  if (!video.ok()) co_return http::ErrorFromStatus(video.status());
  Response response = Response::Html(
      Status::ok, absl::StrReplaceAll(templates.player, {{"{{VIDEO_ID}}", HtmlEscape(video->id)},
                                                         {"{{TITLE}}", HtmlEscape(video->title)}}));
  response.headers.set(http::Field::cache_control, "no-cache");
  co_return response;
}

// Files under <web_root>/static. Every segment must be a plain name, so nothing
// outside that folder can be named.
http::asio::awaitable<Response> StaticFile(AppContext& app, http::Request& request) {
  std::filesystem::path path = app.options.web_root / "static";
  for (std::string_view raw : http::SplitPath(request.params[0])) {
    std::optional<std::string> segment = http::PercentDecode(raw);
    if (!segment || !IsValidContentName(*segment)) {
      co_return Response::Error(Status::bad_request, "invalid static file name");
    }
    path /= *segment;
  }
  struct Opened {
    int fd = -1;
    struct stat st {};
  };
  Opened opened = co_await http::Offload(app.blocking, [&] {
    Opened o;
    o.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (o.fd >= 0 && (::fstat(o.fd, &o.st) != 0 || !S_ISREG(o.st.st_mode))) {
      ::close(o.fd);
      o.fd = -1;
    }
    return o;
  });
  if (opened.fd < 0) co_return Response::Error(Status::not_found, "no such file");
  int fd = opened.fd;
  FileDescription file{static_cast<uint64_t>(opened.st.st_size),
                       absl::StrFormat("\"%x-%x\"", opened.st.st_size, opened.st.st_mtim.tv_sec),
                       std::string(http::MimeTypeForName(path.filename().string())),
                       // Revalidate cheaply each time so a deploy is seen at once.
                       "public, max-age=0, must-revalidate"};
  Response response = co_await ServeRanged(
      request, file,
      [&](uint64_t offset,
          uint64_t) -> http::asio::awaitable<absl::StatusOr<std::unique_ptr<http::BodySource>>> {
        int owned = fd;
        fd = -1;
        co_return MakeFdBodySource(owned, offset, app.blocking);
      });
  if (fd >= 0) ::close(fd);
  co_return response;
}

}  // namespace

absl::Status AddAllRoutes(http::Router& router, AppContext& app) {
  auto templates = std::make_shared<Templates>();
  const std::filesystem::path dir = app.options.web_root / "templates";
  for (auto [name, target] :
       {std::pair{"index.html", &templates->index}, std::pair{"player.html", &templates->player},
        std::pair{"not_found.html", &templates->not_found}}) {
    absl::StatusOr<std::string> text = ReadTemplate(dir / name);
    if (!text.ok()) return text.status();
    *target = std::move(*text);
  }
  router.Add(http::Verb::get, "/",
             [&app, templates](http::Request& r) { return IndexPage(app, *templates, r); });
  router.Add(http::Verb::get, "/videos/{}",
             [&app, templates](http::Request& r) { return PlayerPage(app, *templates, r); });
  router.Add(http::Verb::get, "/static/{*}",
             [&app](http::Request& r) { return StaticFile(app, r); });
  AddUploadRoutes(router, app);
  AddApiRoutes(router, app);
  AddContentRoutes(router, app);
  return absl::OkStatus();
}

}  // namespace streamgrid::webserver
