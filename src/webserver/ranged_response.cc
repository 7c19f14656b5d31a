#include "webserver/ranged_response.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "http/byte_range.h"
#include "http/offload.h"

namespace streamgrid::webserver {
namespace {

using http::Field;
using http::Response;
using http::Status;

class FdBodySource : public http::BodySource {
 public:
  FdBodySource(int fd, uint64_t offset, boost::asio::thread_pool& pool)
      : fd_(fd), offset_(offset), pool_(pool) {}
  ~FdBodySource() override { ::close(fd_); }

  http::asio::awaitable<absl::StatusOr<size_t>> Read(std::span<char> buffer) override {
    auto n = co_await http::Offload(pool_, [&]() -> absl::StatusOr<size_t> {
      ssize_t r;
      do {
        r = ::pread(fd_, buffer.data(), buffer.size(), static_cast<off_t>(offset_));
      } while (r < 0 && errno == EINTR);
      if (r < 0) return absl::InternalError(absl::StrCat("read failed: ", std::strerror(errno)));
      return static_cast<size_t>(r);
    });
    if (n.ok()) offset_ += *n;
    co_return n;
  }

 private:
  int fd_;
  uint64_t offset_;
  boost::asio::thread_pool& pool_;
};

}  // namespace

bool EtagListMatches(std::string_view header, std::string_view etag) {
  if (etag.empty()) return false;
  auto strip_weak = [](absl::string_view v) {
    v = absl::StripAsciiWhitespace(v);
    absl::ConsumePrefix(&v, "W/");
    return v;
  };
  const absl::string_view wanted = strip_weak(absl::string_view(etag.data(), etag.size()));
  for (absl::string_view candidate :
       absl::StrSplit(absl::string_view(header.data(), header.size()), ',')) {
    candidate = absl::StripAsciiWhitespace(candidate);
    if (candidate == "*" || strip_weak(candidate) == wanted) return true;
  }
  return false;
}

std::unique_ptr<http::BodySource> MakeFdBodySource(int fd, uint64_t offset,
                                                   boost::asio::thread_pool& pool) {
  return std::make_unique<FdBodySource>(fd, offset, pool);
}

namespace {

// The part of ServeRanged that needs no body: fills `response`'s status and
// headers and returns true when the answer is complete without a body (304,
// 416, HEAD, empty); otherwise sets the range to send.
bool PrepareRanged(const http::Request& request, const FileDescription& file, Response& response,
                   uint64_t& offset, uint64_t& length) {
  response.headers.set(Field::content_type, file.content_type);
  response.headers.set(Field::accept_ranges, "bytes");
  if (!file.etag.empty()) response.headers.set(Field::etag, file.etag);
  if (!file.cache_control.empty()) response.headers.set(Field::cache_control, file.cache_control);

  if (EtagListMatches(request.Header(Field::if_none_match), file.etag)) {
    response.status = Status::not_modified;
    return true;
  }

  offset = 0;
  length = file.size;
  std::string_view range_header = request.Header(Field::range);
  std::string_view if_range = request.Header(Field::if_range);
  // If-Range with another version (or a date, which we cannot compare) means: send it all.
  bool range_allowed = if_range.empty() || (!file.etag.empty() && if_range == file.etag);
  if (!range_header.empty() && range_allowed) {
    http::RangeResult range = http::ParseRange(range_header, file.size);
    if (range.kind == http::RangeKind::kUnsatisfiable) {
      response =
          Response::Error(Status::range_not_satisfiable, "requested range is outside the file");
      response.headers.set(Field::content_range, http::UnsatisfiedContentRange(file.size));
      return true;
    }
    if (range.kind == http::RangeKind::kSatisfiable) {
      offset = range.range.offset;
      length = range.range.length;
      response.status = Status::partial_content;
      response.headers.set(Field::content_range, http::ContentRange(range.range, file.size));
    }
  }

  response.stream_length = length;
  if (request.method == http::Verb::head || length == 0) {
    // HEAD reports the length without reading; an empty body needs no source.
    response.headers.set(Field::content_length, std::to_string(length));
    return true;
  }
  return false;
}

}  // namespace

http::asio::awaitable<Response> ServeRanged(const http::Request& request,
                                            const FileDescription& file, OpenRange open) {
  Response response;
  uint64_t offset = 0;
  uint64_t length = 0;
  if (PrepareRanged(request, file, response, offset, length)) co_return response;
  absl::StatusOr<std::unique_ptr<http::BodySource>> source = co_await open(offset, length);
  if (!source.ok()) co_return http::ErrorFromStatus(source.status());
  response.stream = std::move(*source);
  co_return response;
}

Response ServeRangedMemory(const http::Request& request, const FileDescription& file,
                           std::shared_ptr<const void> owner, std::string_view bytes, int fd) {
  Response response;
  uint64_t offset = 0;
  uint64_t length = 0;
  if (PrepareRanged(request, file, response, offset, length)) return response;
  response.stream_length = 0;
  response.shared_bytes = bytes.substr(static_cast<size_t>(offset), static_cast<size_t>(length));
  response.shared_owner = std::move(owner);
  response.shared_fd = fd;
  response.shared_fd_offset = offset;
  return response;
}

}  // namespace streamgrid::webserver
