#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.h"

namespace streamgrid::http {

using Handler = std::function<asio::awaitable<Response>(Request&)>;

struct RouteOptions {
  // Largest request body the route accepts; larger declared bodies get 413 before
  // the handler runs, larger streamed ones fail the handler's BodyReader.
  uint64_t body_limit = 64 * 1024;
};

struct Route {
  Verb method;
  std::string pattern;  // as given to Add(), e.g. "/content/{}/{*}"

  std::vector<std::string> segments;  // literal segments, "{}" or a final "{*}"
  Handler handler;
  RouteOptions options;
};

// Maps (method, path) to handlers. Patterns are '/'-separated: a literal segment
// matches itself, "{}" matches any one non-empty segment, a final "{*}" matches
// one or more remaining segments. HEAD is served by the GET route when no HEAD
// route exists. Not thread-safe to modify; lookups are const and concurrent.
class Router {
 public:
  void Add(Verb method, std::string_view pattern, Handler handler, RouteOptions options = {});

  struct Match {
    const Route* route = nullptr;     // null when nothing matched
    std::vector<std::string> params;  // see Request::params
    std::string allow;                // when only the method was wrong: the allowed methods
  };
  // The route for `path` (percent-encoded, without the query), first added wins.
  Match Find(Verb method, std::string_view path) const;

 private:
  std::vector<Route> routes_;
};

}  // namespace streamgrid::http
