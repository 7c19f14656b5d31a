#include "http/router.h"

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "http/url.h"

namespace streamgrid::http {
namespace {

// Matches `path_segments` against `route`, filling `params` with views of
// the path (strings are made only for the route that matches: most of the
// routes tried do not).
bool MatchSegments(const Route& route, const std::vector<std::string_view>& path_segments,
                   absl::InlinedVector<std::string_view, 4>& params) {
  params.clear();
  const auto& pattern = route.segments;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == "{*}") {
      if (i >= path_segments.size()) return false;
      // The segments are views of one path, so the rest is one view too.
      const std::string_view last = path_segments.back();
      params.emplace_back(path_segments[i].data(),
                          static_cast<size_t>(last.data() + last.size() - path_segments[i].data()));
      return true;
    }
    if (i >= path_segments.size()) return false;
    if (pattern[i] == "{}") {
      if (path_segments[i].empty()) return false;
      params.push_back(path_segments[i]);
    } else if (pattern[i] != path_segments[i]) {
      return false;
    }
  }
  return pattern.size() == path_segments.size();
}

std::vector<std::string> ToStrings(const absl::InlinedVector<std::string_view, 4>& views) {
  return std::vector<std::string>(views.begin(), views.end());
}

}  // namespace

void Router::Add(Verb method, std::string_view pattern, Handler handler, RouteOptions options) {
  Route route{method, std::string(pattern), {}, std::move(handler), options};
  for (std::string_view segment : SplitPath(pattern)) route.segments.emplace_back(segment);
  routes_.push_back(std::move(route));
}

Router::Match Router::Find(Verb method, std::string_view path) const {
  Match match;
  std::vector<std::string_view> segments = SplitPath(path);
  absl::InlinedVector<std::string_view, 4> params;
  std::vector<std::string> allowed;
  const Route* get_route = nullptr;
  std::vector<std::string> get_params;
  for (const Route& route : routes_) {
    if (!MatchSegments(route, segments, params)) continue;
    if (route.method == method) {
      match.route = &route;
      match.params = ToStrings(params);
      return match;
    }
    if (method == Verb::head && route.method == Verb::get && get_route == nullptr) {
      get_route = &route;
      get_params = ToStrings(params);
    }
    allowed.emplace_back(boost::beast::http::to_string(route.method));
    if (route.method == Verb::get) allowed.emplace_back("HEAD");
  }
  if (get_route != nullptr) {
    match.route = get_route;
    match.params = std::move(get_params);
    return match;
  }
  if (!allowed.empty()) {
    allowed.emplace_back("OPTIONS");
    match.allow = absl::StrJoin(allowed, ", ");
  }
  return match;
}

}  // namespace streamgrid::http
