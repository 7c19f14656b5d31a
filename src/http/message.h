#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/verb.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace streamgrid::http {

namespace asio = boost::asio;
using Fields = boost::beast::http::fields;
using Field = boost::beast::http::field;
using Status = boost::beast::http::status;
using Verb = boost::beast::http::verb;

// A request body, streamed from the client. Reading it is the handler's choice:
// whatever it leaves unread makes the server close the connection after replying.
class BodyReader {
 public:
  virtual ~BodyReader() = default;
  // Reads the next bytes into `buffer`; 0 at the end of the body. Errors:
  // RESOURCE_EXHAUSTED past the route's body limit, DEADLINE_EXCEEDED when the
  // client stalls, INVALID_ARGUMENT on bad framing, UNAVAILABLE on disconnect.
  virtual asio::awaitable<absl::StatusOr<size_t>> Read(std::span<char> buffer) = 0;
};

struct Request {
  Verb method = Verb::get;
  std::string target;  // as sent: path and query, still percent-encoded
  std::string path;    // the target up to '?', still percent-encoded
  std::string query;   // after '?', without it
  Fields headers;
  // The path segments the route's "{}" placeholders matched, still percent-encoded;
  // a trailing "{*}" yields the rest of the path as one string.
  std::vector<std::string> params;
  std::optional<uint64_t> content_length;  // when the client declared one
  BodyReader* body = nullptr;              // never null while a handler runs
  // Names this request in logs and in the response's X-Request-Id: the
  // client's X-Request-Id when it is a safe token (see IsSafeRequestId), else
  // one the server made, unique within the process.
  std::string id;

  // The header's value, or empty when absent.
  std::string_view Header(Field name) const;
  // The decoded value of a query parameter, or nullopt.
  std::optional<std::string> QueryParam(std::string_view name) const;
  // True when the client asked for JSON (Accept mentions application/json).
  bool WantsJson() const;
};

// A response body produced chunk by chunk (a file, a remote stream).
class BodySource {
 public:
  virtual ~BodySource() = default;
  // Fills up to `buffer.size()` bytes; 0 at the end. An error after the headers
  // are sent can only abort the connection, so sources report problems they can
  // foresee (missing file, bad range) before being handed to a Response.
  virtual asio::awaitable<absl::StatusOr<size_t>> Read(std::span<char> buffer) = 0;
  // Optional: sends up to `max` of the next bytes of the body straight to
  // the non-blocking socket `socket` (e.g. with sendfile from a file), and
  // returns how many went; 0 means the socket is full (wait until it is
  // writable, then call again). UNIMPLEMENTED (the default) when this source
  // cannot; the server then uses Read(). A source is used one way or the
  // other, never both.
  virtual asio::awaitable<absl::StatusOr<size_t>> SendTo(int socket, uint64_t max);
};

struct Response {
  Status status = Status::ok;
  Fields headers;
  std::string body;  // used when `stream` is null
  // When set, the body is exactly `stream_length` bytes read from `stream`.
  std::unique_ptr<BodySource> stream;
  uint64_t stream_length = 0;
  // When `shared_owner` is set (and `stream` is null), the body is
  // `shared_bytes`, which the owner keeps alive (e.g. a cached file shared
  // with other responses): written in one go, without a copy.
  std::shared_ptr<const void> shared_owner;
  std::string_view shared_bytes;
  // Optional, with `shared_owner`: the same bytes are also at
  // [shared_fd_offset, shared_fd_offset + shared_bytes.size()) of the file
  // descriptor `shared_fd`, which the owner keeps open. The server then sends
  // them with sendfile(2) (the kernel passes the pages to the socket without
  // copying them) and falls back to `shared_bytes` if that fails. -1: none.
  int shared_fd = -1;
  uint64_t shared_fd_offset = 0;

  static Response Text(Status status, std::string body,
                       std::string_view content_type = "text/plain; charset=utf-8");
  static Response Html(Status status, std::string body);
  static Response Json(Status status, std::string json);
  // {"error": message} with `status`. (absl::string_view, which Debian's Abseil
  // keeps distinct from std::string_view, so Status::message() fits directly.)
  static Response Error(Status status, absl::string_view message);
  static Response Redirect(Status status, std::string_view location);
};

// RESOURCE_EXHAUSTED marked as "the request body is over its limit" (HTTP
// 413); the BodyReader's error past a route's limit is one.
absl::Status BodyTooLargeError(absl::string_view message);
bool IsBodyTooLarge(const absl::Status& status);

// DEADLINE_EXCEEDED marked as "the client stopped sending" (HTTP 408, not the
// 504 of a dependency that did not answer); a BodyReader's stalled read is one.
absl::Status ClientTimeoutError(absl::string_view message);
bool IsClientTimeout(const absl::Status& status);

// The HTTP status for a component's error, e.g. NOT_FOUND → 404,
// INVALID_ARGUMENT → 400, UNAVAILABLE → 503, RESOURCE_EXHAUSTED → 507 (out of
// disk space; storage nodes and etcd say so this way) unless marked
// BodyTooLargeError → 413, DEADLINE_EXCEEDED → 504 unless marked
// ClientTimeoutError → 408.
Status HttpStatusFor(const absl::Status& status);

// An error response for a component's error: its HTTP status and message. For
// 4xx the message is the component's (it is about the client's own input);
// for 5xx it is the status's public summary (common/public_error.h) or a
// generic text, plus an error id, and the full detail, which may name internal
// addresses and paths, goes to the log under that id.
Response ErrorFromStatus(const absl::Status& status);

}  // namespace streamgrid::http
