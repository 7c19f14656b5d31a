#include "webserver/content_body_source.h"

#include <algorithm>

#include "absl/status/status.h"
#include "http/offload.h"
#include "http/send_file.h"

namespace streamgrid::webserver {

http::asio::awaitable<absl::StatusOr<size_t>> ContentBodySource::Read(std::span<char> buffer) {
  co_return co_await http::Offload(pool_, [this, buffer] { return reader_->Read(buffer); });
}

http::asio::awaitable<absl::StatusOr<size_t>> ContentBodySource::SendTo(int socket, uint64_t max) {
  if (fd_ == kUnknown) fd_ = reader_->SendableFd(&position_);
  if (fd_ < 0) co_return absl::UnimplementedError("not a local file");
  const size_t want = static_cast<size_t>(std::min<uint64_t>(max, kMaxSendBytes));
  absl::StatusOr<size_t> sent = co_await http::Offload(
      pool_, [this, socket, want] { return http::SendFileOnce(socket, fd_, position_, want); });
  if (sent.ok()) {
    position_ += *sent;
    sent_any_ = sent_any_ || *sent > 0;
  } else if (absl::IsFailedPrecondition(sent.status()) && !sent_any_) {
    // A file system without sendfile support, found before a byte went: the
    // reader, untouched so far, serves the whole body through Read().
    fd_ = -1;
    co_return absl::UnimplementedError(sent.status().message());
  }
  co_return sent;
}

}  // namespace streamgrid::webserver
