#pragma once

// The pieces of a long poll on a video record (GET /api/videos/<id> with
// If-None-Match and "Prefer: wait=N"): which wait the client asked for, the
// tag that tells versions apart, and the wake-up a metadata subscription
// sends to the waiting request.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace streamgrid::webserver {

// The seconds of RFC 7240's "wait" preference in a Prefer header's value
// ("wait=10", "respond-async, wait=10"; the name in any case), at most `max`;
// zero when there is none, or none this can read (a preference the server
// cannot honour is ignored, as the RFC asks).
std::chrono::seconds PreferredWait(std::string_view prefer, std::chrono::seconds max);

// A strong ETag (quoted) for a response body: equal bodies give equal tags on
// every web server, so a client may ask any of them whether its copy is
// current.
std::string BodyEtag(std::string_view body);

// Wakes a request that waits for its record to change. Subscription
// callbacks come on the metadata service's threads, while the wait (a timer)
// belongs to the connection's event loop: the wake is posted there, and only
// that thread touches `changed` and `timer`.
struct ChangeWake {
  explicit ChangeWake(boost::asio::any_io_executor loop) : executor(std::move(loop)) {}

  boost::asio::any_io_executor executor;
  bool changed = false;                        // a call came since the handler cleared it
  boost::asio::steady_timer* timer = nullptr;  // set while the handler waits on it
};

// The callback to subscribe with: marks `wake` changed and cancels its timer.
std::function<void()> WakeOnChange(std::shared_ptr<ChangeWake> wake);

}  // namespace streamgrid::webserver
