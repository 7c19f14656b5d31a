#pragma once

// The conversation between the web server and a streamgrid-probe helper over
// one end of a Unix stream socketpair. Each frame is an 8-byte header (kind,
// payload length, both little-endian uint32) and its payload. A request frame
// carries the file to describe as a descriptor (SCM_RIGHTS) attached to its
// first byte, never a path; its payload is a small JSON object
// (ProbeRequest). The helper answers each request with one reply frame.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace streamgrid::probe {

// What the helper is asked to do with the descriptor it is sent.
struct ProbeRequest {
  // Demuxers the helper may use (FFmpeg's format_whitelist).
  std::string format_whitelist;
  // FFmpeg's probesize (bytes) and analyzeduration (microseconds); 0 keeps
  // FFmpeg's defaults (5 MB, 5 s), as ffprobe does.
  int64_t probesize = 0;
  int64_t analyzeduration_us = 0;
  // More streams than this is refused as absurd (kTooLarge).
  int max_streams = 10'000;
  // When >= 0: instead of describing the file, list its packets from this
  // time (microseconds; as ffprobe -read_intervals START% -show_packets,
  // which only demuxes) and answer kPackets. 0 lists every packet of the
  // file from its first, without seeking.
  int64_t packets_from_us = -1;
  // Only honoured by a helper started with --test-hooks: sleep this long
  // before probing, or crash (abort) instead of answering.
  int64_t test_stall_ms = 0;
  bool test_crash = false;
};

// Frame kinds.
enum class FrameKind : uint32_t {
  kRequest = 1,     // payload: ProbeRequest as JSON; carries the descriptor
  kDescribed = 2,   // payload: ffprobe-shaped JSON (-show_format -show_streams)
  kFailed = 3,      // payload: FFmpeg's error log lines, the last the reason
  kTooLarge = 4,    // payload: why (too many streams, description too long)
  kBadRequest = 5,  // payload: why (no descriptor, unreadable request)
  kPackets = 6,     // payload: JSON {"packets", "max_end", "max_byte_end"}: how
                    // many packets, how far they reach (latest pts, else dts,
                    // + duration, seconds) and the furthest pos + size
};

// The largest payload either side accepts: a description is a few kilobytes,
// ffprobe's output is capped at 4 MiB today.
inline constexpr uint32_t kMaxPayload = 4u << 20;

std::string EncodeRequest(const ProbeRequest& request);
// INVALID_ARGUMENT when `payload` is not a request.
absl::StatusOr<ProbeRequest> DecodeRequest(std::string_view payload);

// Writes one frame to `sock`, with `fd` attached when it is >= 0. The socket
// must have room (requests and replies go one at a time); fails with the
// errno's status (e.g. EPIPE when the peer is gone).
absl::Status SendFrame(int sock, FrameKind kind, std::string_view payload, int fd = -1);

struct Frame {
  FrameKind kind;
  std::string payload;
  int fd = -1;  // received descriptor, owned by the caller; -1 when none came
};

// Reads one frame from a blocking `sock`. OUT_OF_RANGE at a clean end of the
// stream (the peer closed it between frames), DATA_LOSS when it ends inside a
// frame, INVALID_ARGUMENT for a payload over kMaxPayload.
absl::StatusOr<Frame> ReadFrame(int sock);

// Reads one frame (no descriptor) from `sock` without blocking past
// `deadline`, waking every few tens of milliseconds to ask `cancelled` (may
// be empty). DEADLINE_EXCEEDED or CANCELLED then; ABORTED when the stream
// ends before a whole frame (the helper died).
absl::StatusOr<Frame> ReadFrameUntil(int sock, std::chrono::steady_clock::time_point deadline,
                                     const std::function<bool()>& cancelled);

}  // namespace streamgrid::probe
