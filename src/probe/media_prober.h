#pragma once

// The helper's side: describes an open file with libavformat, reading it only
// through its descriptor.

#include <string>

#include "probe/probe_protocol.h"

namespace streamgrid::probe {

struct ProbeOutcome {
  FrameKind kind = FrameKind::kFailed;  // kDescribed, kFailed or kTooLarge
  std::string text;                     // the reply's payload
};

// Describes the file open on `fd` (read with pread only: the demuxer gets no
// path, no URL and no way to open another input) as ffprobe's
// `-of json -show_format -show_streams` would, for the fields StreamGrid
// reads: format_name, start_time, duration, bit_rate; per stream
// codec_type, codec_name, width, height, sample_aspect_ratio, avg_frame_rate,
// r_frame_rate, duration, nb_frames, disposition.attached_pic, tags and the
// display matrix's rotation. Only demuxers in request.format_whitelist may
// read it. On failure the text is FFmpeg's error lines, as ffprobe would
// print them with `-v error`, the last one the reason. Not thread-safe
// (FFmpeg's log callback is process-wide): one call at a time.
ProbeOutcome DescribeFile(int fd, const ProbeRequest& request);

// Serves requests on `sock` until the other end closes it: one descriptor
// and request in, one reply out. `test_hooks` honours the requests' test
// fields. Returns the process's exit code.
int ServeProbeRequests(int sock, bool test_hooks);

}  // namespace streamgrid::probe
