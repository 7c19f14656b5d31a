#include "probe/media_prober.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libavutil/dict.h>
#include <libavutil/display.h>
#include <libavutil/error.h>
}

namespace streamgrid::probe {
namespace {

using nlohmann::json;

// FFmpeg's error lines for the current request. FFmpeg logs through one
// process-wide callback; the helper runs one request at a time.
std::string* g_log = nullptr;
constexpr size_t kMaxLog = 64 << 10;

void CaptureLog(void* avcl, int level, const char* fmt, va_list vl) {
  if (level > AV_LOG_ERROR || g_log == nullptr) return;
  static int print_prefix = 1;
  char line[1024];
  // Formats as ffprobe prints it: "[hls @ 0x55...] Format not on whitelist".
  av_log_format_line2(avcl, level, fmt, vl, line, sizeof(line), &print_prefix);
  if (g_log->size() < kMaxLog) g_log->append(line);
}

// Reads through the descriptor only, at an offset of our own (pread), so the
// helper needs no file position and the demuxer no path.
struct FdReader {
  int fd;
  int64_t size;
  int64_t position = 0;
};

int ReadPacket(void* opaque, uint8_t* buf, int buf_size) {
  auto* reader = static_cast<FdReader*>(opaque);
  for (;;) {
    ssize_t n = ::pread(reader->fd, buf, static_cast<size_t>(buf_size), reader->position);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return AVERROR(errno);
    if (n == 0) return AVERROR_EOF;
    reader->position += n;
    return static_cast<int>(n);
  }
}

int64_t Seek(void* opaque, int64_t offset, int whence) {
  auto* reader = static_cast<FdReader*>(opaque);
  int64_t target;
  switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE:
      return reader->size;
    case SEEK_SET:
      target = offset;
      break;
    case SEEK_CUR:
      target = reader->position + offset;
      break;
    case SEEK_END:
      target = reader->size + offset;
      break;
    default:
      return AVERROR(EINVAL);
  }
  if (target < 0) return AVERROR(EINVAL);
  reader->position = target;
  return target;
}

// A demuxer that wants another input (a playlist's entries, a MOV's external
// data references, a DASH manifest's segments) gets a refusal: the helper
// reads the one descriptor it was given and nothing else.
int RefuseOpen(AVFormatContext*, AVIOContext**, const char*, int, AVDictionary**) {
  return AVERROR(EPERM);
}

std::string Seconds(int64_t ts, AVRational time_base) {
  char text[64];
  std::snprintf(text, sizeof(text), "%f", static_cast<double>(ts) * av_q2d(time_base));
  return text;
}

std::string Ratio(AVRational q, char separator) {
  return absl::StrCat(q.num, std::string(1, separator), q.den);
}

json Tags(const AVDictionary* metadata) {
  json tags = json::object();
  const AVDictionaryEntry* entry = nullptr;
  while ((entry = av_dict_get(metadata, "", entry, AV_DICT_IGNORE_SUFFIX)) != nullptr) {
    tags[entry->key] = entry->value;
  }
  return tags;
}

json DescribeStream(AVFormatContext* format, AVStream* stream) {
  const AVCodecParameters* par = stream->codecpar;
  json s = json::object();
  s["index"] = stream->index;
  const AVCodecDescriptor* descriptor = avcodec_descriptor_get(par->codec_id);
  s["codec_name"] = descriptor != nullptr ? descriptor->name : "unknown";
  const char* type = av_get_media_type_string(par->codec_type);
  s["codec_type"] = type != nullptr ? type : "unknown";
  if (par->codec_type == AVMEDIA_TYPE_VIDEO) {
    s["width"] = par->width;
    s["height"] = par->height;
    AVRational sar = av_guess_sample_aspect_ratio(format, stream, nullptr);
    if (sar.num != 0) s["sample_aspect_ratio"] = Ratio(sar, ':');
  }
  s["r_frame_rate"] = Ratio(stream->r_frame_rate, '/');
  s["avg_frame_rate"] = Ratio(stream->avg_frame_rate, '/');
  if (stream->start_time != AV_NOPTS_VALUE) {
    s["start_time"] = Seconds(stream->start_time, stream->time_base);
  }
  if (stream->duration != AV_NOPTS_VALUE) {
    s["duration"] = Seconds(stream->duration, stream->time_base);
  }
  if (stream->nb_frames != 0) s["nb_frames"] = std::to_string(stream->nb_frames);
  s["disposition"] = {
      {"default", (stream->disposition & AV_DISPOSITION_DEFAULT) ? 1 : 0},
      {"attached_pic", (stream->disposition & AV_DISPOSITION_ATTACHED_PIC) ? 1 : 0}};
  json tags = Tags(stream->metadata);
  if (!tags.empty()) s["tags"] = std::move(tags);
  json side_data = json::array();
  for (int i = 0; i < stream->nb_side_data; ++i) {
    const AVPacketSideData& sd = stream->side_data[i];
    if (sd.type != AV_PKT_DATA_DISPLAYMATRIX || sd.size < 9 * 4) continue;
    // ffprobe prints the angle as an integer, counter-clockwise degrees.
    const double rotation = av_display_rotation_get(reinterpret_cast<const int32_t*>(sd.data));
    side_data.push_back(
        {{"side_data_type", "Display Matrix"}, {"rotation", static_cast<int64_t>(rotation)}});
  }
  if (!side_data.empty()) s["side_data_list"] = std::move(side_data);
  return s;
}

std::string ErrorText(int err) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(err, text, sizeof(text));
  return text;
}

// Owns what one probe allocates.
struct ProbeState {
  AVFormatContext* format = nullptr;
  AVIOContext* io = nullptr;
  AVDictionary* options = nullptr;

  ~ProbeState() {
    avformat_close_input(&format);  // custom I/O: leaves `io` to us
    if (io != nullptr) av_freep(&io->buffer);
    avio_context_free(&io);
    av_dict_free(&options);
  }
};

// As ffprobe -read_intervals START% -show_packets: seek to the start (any
// keyframe at or before it), then every packet to the end; a read error ends
// the list as the end of the file does. From 0 (reading the whole file
// through, e.g. to measure a length the container does not state) there is
// no seek: FFmpeg hands back the packets the description read first, then
// the rest, and a file without an index (a live-written WebM) need not be
// seekable.
ProbeOutcome ListPackets(AVFormatContext* format, const ProbeRequest& request,
                         const std::string& log) {
  if (request.packets_from_us > 0) {
    int err = avformat_seek_file(format, -1, -INT64_MAX, request.packets_from_us, INT64_MAX, 0);
    if (err < 0) {
      return {FrameKind::kFailed, absl::StrCat(log, "Could not seek: ", ErrorText(err), "\n")};
    }
  }
  AVPacket* packet = av_packet_alloc();
  if (packet == nullptr) return {FrameKind::kFailed, "out of memory\n"};
  int64_t packets = 0;
  double max_end = 0;
  int64_t max_byte_end = 0;
  while (av_read_frame(format, packet) >= 0) {
    ++packets;
    const AVRational tb = format->streams[packet->stream_index]->time_base;
    const int64_t at = packet->pts != AV_NOPTS_VALUE ? packet->pts : packet->dts;
    if (at != AV_NOPTS_VALUE) {
      const double duration = packet->duration > 0 ? packet->duration * av_q2d(tb) : 0;
      max_end = std::max(max_end, at * av_q2d(tb) + duration);
    }
    if (packet->pos >= 0 && packet->size >= 0) {
      max_byte_end = std::max(max_byte_end, packet->pos + packet->size);
    }
    av_packet_unref(packet);
  }
  av_packet_free(&packet);
  json reach = {{"packets", packets}, {"max_end", max_end}, {"max_byte_end", max_byte_end}};
  return {FrameKind::kPackets, reach.dump()};
}

ProbeOutcome Describe(int fd, const ProbeRequest& request, std::string& log) {
  auto failed = [&log](int err) {
    return ProbeOutcome{FrameKind::kFailed, absl::StrCat(log, ErrorText(err), "\n")};
  };
  struct stat st;
  if (::fstat(fd, &st) != 0) return failed(AVERROR(errno));
  FdReader reader{.fd = fd, .size = st.st_size};
  ProbeState state;
  constexpr int kBufferSize = 64 << 10;
  auto* buffer = static_cast<unsigned char*>(av_malloc(kBufferSize));
  if (buffer == nullptr) return failed(AVERROR(ENOMEM));
  state.io =
      avio_alloc_context(buffer, kBufferSize, /*write_flag=*/0, &reader, ReadPacket, nullptr, Seek);
  if (state.io == nullptr) {
    av_free(buffer);
    return failed(AVERROR(ENOMEM));
  }
  state.format = avformat_alloc_context();
  if (state.format == nullptr) return failed(AVERROR(ENOMEM));
  state.format->pb = state.io;
  state.format->io_open = RefuseOpen;
  // As ffprobe: every program of an MPEG-TS, and the caller's limits.
  av_dict_set(&state.options, "scan_all_pmts", "1", 0);
  av_dict_set(&state.options, "format_whitelist", request.format_whitelist.c_str(), 0);
  av_dict_set(&state.options, "protocol_whitelist", "none", 0);
  // The MOV demuxer's external references, pinned off (it ignores them
  // unless asked; other demuxers leave these options unused).
  av_dict_set(&state.options, "enable_drefs", "0", 0);
  av_dict_set(&state.options, "use_absolute_path", "0", 0);
  if (request.probesize > 0) av_dict_set_int(&state.options, "probesize", request.probesize, 0);
  if (request.analyzeduration_us > 0) {
    av_dict_set_int(&state.options, "analyzeduration", request.analyzeduration_us, 0);
  }
  // The name only labels log lines; nothing is opened by it.
  int err = avformat_open_input(&state.format, "fd:", nullptr, &state.options);
  if (err < 0) return failed(err);  // avformat_open_input freed the context
  if (state.format->nb_streams > static_cast<unsigned>(request.max_streams)) {
    return {FrameKind::kTooLarge, absl::StrCat(state.format->nb_streams, " streams")};
  }
  err = avformat_find_stream_info(state.format, nullptr);
  if (err < 0) return failed(err);
  if (state.format->nb_streams > static_cast<unsigned>(request.max_streams)) {
    return {FrameKind::kTooLarge, absl::StrCat(state.format->nb_streams, " streams")};
  }

  if (request.packets_from_us >= 0) return ListPackets(state.format, request, log);

  json streams = json::array();
  for (unsigned i = 0; i < state.format->nb_streams; ++i) {
    streams.push_back(DescribeStream(state.format, state.format->streams[i]));
  }
  json format = json::object();
  format["nb_streams"] = state.format->nb_streams;
  format["format_name"] = state.format->iformat->name;
  if (state.format->start_time != AV_NOPTS_VALUE) {
    format["start_time"] = Seconds(state.format->start_time, AV_TIME_BASE_Q);
  }
  if (state.format->duration != AV_NOPTS_VALUE) {
    format["duration"] = Seconds(state.format->duration, AV_TIME_BASE_Q);
  }
  if (state.format->bit_rate > 0) format["bit_rate"] = std::to_string(state.format->bit_rate);
  json tags = Tags(state.format->metadata);
  if (!tags.empty()) format["tags"] = std::move(tags);
  json root = {{"streams", std::move(streams)}, {"format", std::move(format)}};
  // Tags are the file's bytes: replace what is not UTF-8 rather than fail.
  std::string text = root.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > kMaxPayload) {
    return {FrameKind::kTooLarge, absl::StrCat("a description of ", text.size(), " bytes")};
  }
  return {FrameKind::kDescribed, std::move(text)};
}

}  // namespace

ProbeOutcome DescribeFile(int fd, const ProbeRequest& request) {
  std::string log;
  g_log = &log;
  av_log_set_callback(CaptureLog);
  ProbeOutcome outcome = Describe(fd, request, log);
  g_log = nullptr;
  return outcome;
}

int ServeProbeRequests(int sock, bool test_hooks) {
  av_log_set_level(AV_LOG_ERROR);
  for (;;) {
    absl::StatusOr<Frame> frame = ReadFrame(sock);
    if (!frame.ok()) return absl::IsOutOfRange(frame.status()) ? 0 : 1;
    ProbeOutcome outcome;
    absl::StatusOr<ProbeRequest> request = DecodeRequest(frame->payload);
    if (frame->kind != FrameKind::kRequest || frame->fd < 0 || !request.ok()) {
      outcome = {FrameKind::kBadRequest, frame->fd < 0 ? "no descriptor came with the request"
                                                       : std::string(request.status().message())};
    } else {
      if (test_hooks && request->test_stall_ms > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(request->test_stall_ms));
      }
      if (test_hooks && request->test_crash) std::abort();
      outcome = DescribeFile(frame->fd, *request);
    }
    if (frame->fd >= 0) ::close(frame->fd);
    if (!SendFrame(sock, outcome.kind, outcome.text).ok()) return 1;
  }
}

}  // namespace streamgrid::probe
