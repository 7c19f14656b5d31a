#pragma once

#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "http/message.h"

namespace streamgrid::webserver {

// What the client is told about a file it asked for.
struct FileDescription {
  uint64_t size = 0;
  std::string etag;  // quoted, e.g. "\"abc\""; may be empty
  std::string content_type;
  std::string cache_control;
};

// True when an If-None-Match list names `etag` (weak comparison, as RFC 9110
// asks); never for an empty `etag`.
bool EtagListMatches(std::string_view header, std::string_view etag);

// Opens the body for the byte range [offset, offset + length).
using OpenRange =
    std::function<http::asio::awaitable<absl::StatusOr<std::unique_ptr<http::BodySource>>>(
        uint64_t offset, uint64_t length)>;

// Answers GET/HEAD for a file: 304 when If-None-Match matches, 416 for an
// unsatisfiable Range, 206 for a satisfiable one (unless If-Range names another
// version), 200 otherwise; with Accept-Ranges, ETag, Content-Type and
// Cache-Control. HEAD never opens the body.
http::asio::awaitable<http::Response> ServeRanged(const http::Request& request,
                                                  const FileDescription& file, OpenRange open);

// ServeRanged for a file held in memory: `bytes` is the whole file (its size
// is `file.size`), kept alive by `owner`; the answer's body shares it rather
// than copying it. Does no I/O, so it runs on the event loop. `fd`, when not
// -1, is a descriptor (kept open by `owner`) whose bytes from offset 0 are the
// same file: the server may then send the body from it with sendfile.
http::Response ServeRangedMemory(const http::Request& request, const FileDescription& file,
                                 std::shared_ptr<const void> owner, std::string_view bytes,
                                 int fd = -1);

// A BodySource that reads a file descriptor it owns from `offset`, running each
// read on `pool`.
std::unique_ptr<http::BodySource> MakeFdBodySource(int fd, uint64_t offset,
                                                   boost::asio::thread_pool& pool);

}  // namespace streamgrid::webserver
