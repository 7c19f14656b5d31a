#include "http/router.h"

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "http/url.h"

namespace streamgrid::http {
namespace {

// Matches `path_segments` against `route`, filling `params`.
bool MatchSegments(const Route& route, const std::vector<std::string_view>& path_segments,
                   std::vector<std::string>& params) {
  params.clear();
  const auto& pattern = route.segments;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == "{*}") {
      if (i >= path_segments.size()) return false;
      std::string rest;
      for (size_t j = i; j < path_segments.size(); ++j) {
        if (j > i) rest += '/';
        rest += path_segments[j];
      }
      params.push_back(std::move(rest));
      return true;
    }
    if (i >= path_segments.size()) return false;
    if (pattern[i] == "{}") {
      if (path_segments[i].empty()) return false;
      params.emplace_back(path_segments[i]);
    } else if (pattern[i] != path_segments[i]) {
      return false;
    }
  }
  return pattern.size() == path_segments.size();
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
  std::vector<std::string> params;
  std::vector<std::string> allowed;
  const Route* get_route = nullptr;
  std::vector<std::string> get_params;
  for (const Route& route : routes_) {
    if (!MatchSegments(route, segments, params)) continue;
    if (route.method == method) {
      match.route = &route;
      match.params = std::move(params);
      return match;
    }
    if (method == Verb::head && route.method == Verb::get && get_route == nullptr) {
      get_route = &route;
      get_params = params;
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
