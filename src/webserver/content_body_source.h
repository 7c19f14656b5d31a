#pragma once

#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <memory>
#include <span>

#include "absl/status/statusor.h"
#include "content/video_content_service.h"
#include "http/message.h"

namespace streamgrid::webserver {

// A response body streamed from a ContentReader: Read() reads one chunk per
// call on the blocking pool `pool`; SendTo() sends a local file's bytes with
// sendfile, on the same pool (a page-cache miss blocks on the disk, which an
// event loop must not). A reader without a descriptor, or whose descriptor
// sendfile cannot read (found before any byte went), answers SendTo() with
// UNIMPLEMENTED, so the server reads it instead.
class ContentBodySource : public http::BodySource {
 public:
  ContentBodySource(std::unique_ptr<ContentReader> reader, boost::asio::thread_pool& pool)
      : reader_(std::move(reader)), pool_(pool) {}

  http::asio::awaitable<absl::StatusOr<size_t>> Read(std::span<char> buffer) override;
  http::asio::awaitable<absl::StatusOr<size_t>> SendTo(int socket, uint64_t max) override;

 private:
  static constexpr int kUnknown = -2;
  // Bytes one SendTo() sends at most, so that it holds a pool thread for a
  // bounded time.
  static constexpr uint64_t kMaxSendBytes = 8 << 20;

  std::unique_ptr<ContentReader> reader_;
  boost::asio::thread_pool& pool_;
  int fd_ = kUnknown;  // the reader's descriptor once asked; -1: it has none
  uint64_t position_ = 0;
  bool sent_any_ = false;  // whether SendTo() has sent a byte
};

}  // namespace streamgrid::webserver
