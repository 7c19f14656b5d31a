#include "probe/probe_protocol.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace streamgrid::probe {
namespace {

using nlohmann::json;

constexpr size_t kHeaderSize = 8;

void PutU32(unsigned char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

uint32_t GetU32(const unsigned char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

absl::Status Errno(int err, const char* what) {
  return absl::ErrnoToStatus(err, absl::StrCat(what, ": ", std::strerror(err)));
}

// Parses the header in `header`: the frame's kind and payload length.
absl::StatusOr<std::pair<FrameKind, uint32_t>> ParseHeader(const unsigned char* header) {
  const uint32_t length = GetU32(header + 4);
  if (length > kMaxPayload) {
    return absl::InvalidArgumentError(absl::StrCat("frame of ", length, " bytes is too long"));
  }
  return std::make_pair(static_cast<FrameKind>(GetU32(header)), length);
}

}  // namespace

std::string EncodeRequest(const ProbeRequest& request) {
  json j = {{"format_whitelist", request.format_whitelist},
            {"probesize", request.probesize},
            {"analyzeduration_us", request.analyzeduration_us},
            {"max_streams", request.max_streams}};
  if (request.packets_from_us >= 0) j["packets_from_us"] = request.packets_from_us;
  if (request.test_stall_ms > 0) j["test_stall_ms"] = request.test_stall_ms;
  if (request.test_crash) j["test_crash"] = true;
  return j.dump();
}

absl::StatusOr<ProbeRequest> DecodeRequest(std::string_view payload) {
  json j = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("the request is not a JSON object");
  }
  ProbeRequest request;
  auto whitelist = j.find("format_whitelist");
  if (whitelist == j.end() || !whitelist->is_string() ||
      whitelist->get_ref<const std::string&>().empty()) {
    // Never probe with every demuxer: an empty list would allow all.
    return absl::InvalidArgumentError("the request names no allowed formats");
  }
  request.format_whitelist = whitelist->get<std::string>();
  auto integer = [&j](const char* key, int64_t fallback) {
    auto it = j.find(key);
    return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
  };
  request.probesize = std::max<int64_t>(0, integer("probesize", 0));
  request.analyzeduration_us = std::max<int64_t>(0, integer("analyzeduration_us", 0));
  request.max_streams =
      static_cast<int>(std::clamp<int64_t>(integer("max_streams", 10'000), 1, 1'000'000));
  request.packets_from_us = std::max<int64_t>(-1, integer("packets_from_us", -1));
  request.test_stall_ms = std::max<int64_t>(0, integer("test_stall_ms", 0));
  auto crash = j.find("test_crash");
  request.test_crash = crash != j.end() && crash->is_boolean() && crash->get<bool>();
  return request;
}

absl::Status SendFrame(int sock, FrameKind kind, std::string_view payload, int fd) {
  if (payload.size() > kMaxPayload) return absl::InvalidArgumentError("payload too long");
  unsigned char header[kHeaderSize];
  PutU32(header, static_cast<uint32_t>(kind));
  PutU32(header + 4, static_cast<uint32_t>(payload.size()));
  struct iovec iov[2] = {{header, kHeaderSize},
                         {const_cast<char*>(payload.data()), payload.size()}};
  size_t total = kHeaderSize + payload.size();
  size_t sent = 0;
  bool attach = fd >= 0;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  while (sent < total) {
    // Rebuild the iovecs past what went already.
    struct iovec rest[2];
    int count = 0;
    size_t skip = sent;
    for (const iovec& part : iov) {
      if (skip >= part.iov_len) {
        skip -= part.iov_len;
        continue;
      }
      rest[count++] = {static_cast<char*>(part.iov_base) + skip, part.iov_len - skip};
      skip = 0;
    }
    struct msghdr msg {};
    msg.msg_iov = rest;
    msg.msg_iovlen = count;
    if (attach) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_RIGHTS;
      cmsg->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    }
    ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno(errno, "cannot send to the probe helper");
    }
    attach = false;  // the descriptor went with the first bytes
    sent += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<Frame> ReadFrame(int sock) {
  unsigned char header[kHeaderSize];
  size_t got = 0;
  int fd = -1;
  while (got < kHeaderSize) {
    struct iovec iov = {header + got, kHeaderSize - got};
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (fd >= 0) ::close(fd);
      return Errno(errno, "cannot read a request");
    }
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int received;
        std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        // One descriptor per request: keep the first, close any other.
        if (fd < 0) {
          fd = received;
        } else {
          ::close(received);
        }
      }
    }
    if (n == 0) {
      if (fd >= 0) ::close(fd);
      return got == 0 ? absl::OutOfRangeError("end of stream")
                      : absl::DataLossError("the stream ended inside a frame");
    }
    got += static_cast<size_t>(n);
  }
  absl::StatusOr<std::pair<FrameKind, uint32_t>> parsed = ParseHeader(header);
  if (!parsed.ok()) {
    if (fd >= 0) ::close(fd);
    return parsed.status();
  }
  Frame frame{.kind = parsed->first, .payload = std::string(parsed->second, '\0'), .fd = fd};
  size_t body = 0;
  while (body < frame.payload.size()) {
    ssize_t n = ::read(sock, frame.payload.data() + body, frame.payload.size() - body);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (fd >= 0) ::close(fd);
      return absl::DataLossError("the stream ended inside a frame");
    }
    body += static_cast<size_t>(n);
  }
  return frame;
}

absl::StatusOr<Frame> ReadFrameUntil(int sock, std::chrono::steady_clock::time_point deadline,
                                     const std::function<bool()>& cancelled) {
  using Clock = std::chrono::steady_clock;
  // Short waits so that a cancellation is seen within a few tens of ms.
  constexpr auto kSlice = std::chrono::milliseconds(50);
  unsigned char header[kHeaderSize];
  std::string payload;
  size_t got = 0;  // bytes of header + payload so far
  size_t want = kHeaderSize;
  while (got < want) {
    if (cancelled && cancelled()) return absl::CancelledError("the probe was cancelled");
    const auto now = Clock::now();
    if (now >= deadline) return absl::DeadlineExceededError("the probe helper did not answer");
    const auto wait = std::min<Clock::duration>(deadline - now, kSlice);
    struct pollfd pfd = {sock, POLLIN, 0};
    const int ready = ::poll(
        &pfd, 1, static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wait).count()));
    if (ready < 0 && errno != EINTR) return Errno(errno, "cannot wait for the probe helper");
    if (ready <= 0) continue;
    char* into = got < kHeaderSize ? reinterpret_cast<char*>(header) + got
                                   : payload.data() + (got - kHeaderSize);
    const size_t room = got < kHeaderSize ? kHeaderSize - got : want - got;
    ssize_t n = ::read(sock, into, room);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      if (errno == ECONNRESET) return absl::AbortedError("the probe helper stopped");
      return Errno(errno, "cannot read from the probe helper");
    }
    if (n == 0) return absl::AbortedError("the probe helper stopped");
    got += static_cast<size_t>(n);
    if (got == kHeaderSize) {
      absl::StatusOr<std::pair<FrameKind, uint32_t>> parsed = ParseHeader(header);
      if (!parsed.ok()) return parsed.status();
      payload.assign(parsed->second, '\0');
      want = kHeaderSize + parsed->second;
    }
  }
  return Frame{.kind = static_cast<FrameKind>(GetU32(header)), .payload = std::move(payload)};
}

}  // namespace streamgrid::probe
