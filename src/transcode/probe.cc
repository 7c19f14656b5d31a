#include "transcode/probe.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string_view>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/strings.h"
#include "nlohmann/json.hpp"
#include "probe/probe_helper_pool.h"
#include "spdlog/spdlog.h"
#include "transcode/cancel_token.h"
#include "transcode/ffmpeg_progress.h"
#include "transcode/media_policy.h"
#include "transcode/subprocess.h"

namespace streamgrid {
namespace {

using nlohmann::json;

constexpr size_t kMaxProbeOutput = 4 << 20;

constexpr char kNotMedia[] =
    "The file is not a video in a format we can read. Upload a video file such as MP4, "
    "MOV, MKV or WebM.";

// ffprobe writes most numbers as strings ("3.000000"), some as numbers.
std::optional<double> NumberField(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end()) return std::nullopt;
  if (it->is_number()) return it->get<double>();
  if (it->is_string()) return ParseDouble(StripWhitespace(it->get_ref<const std::string&>()));
  return std::nullopt;
}

std::string StringField(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// "30000/1001" → 29.97; nullopt for "0/0", junk, or nonsense rates.
std::optional<double> ParseRatio(std::string_view text, char separator) {
  size_t split = text.find(separator);
  if (split == std::string_view::npos) return std::nullopt;
  std::optional<double> num = ParseDouble(text.substr(0, split));
  std::optional<double> den = ParseDouble(text.substr(split + 1));
  if (!num || !den || *num <= 0 || *den <= 0) return std::nullopt;
  return *num / *den;
}

// Codecs whose single frame is a picture rather than a video.
bool IsImageCodec(std::string_view codec) {
  static constexpr std::array<std::string_view, 22> kImageCodecs = {
      "mjpeg", "png",   "bmp", "gif", "webp", "tiff", "jpeg2000", "jpegls", "ppm", "pgm", "pbm",
      "pam",   "targa", "sgi", "qoi", "exr",  "dpx",  "pcx",      "xbm",    "xwd", "psd", "jpegxl"};
  return std::find(kImageCodecs.begin(), kImageCodecs.end(), codec) != kImageCodecs.end();
}

int NormalizeRotation(double degrees) {
  int rounded = static_cast<int>(std::lround(degrees / 90.0)) * 90;
  return ((rounded % 360) + 360) % 360;
}

int StreamRotation(const json& stream) {
  auto side_data = stream.find("side_data_list");
  if (side_data != stream.end() && side_data->is_array()) {
    for (const json& entry : *side_data) {
      if (auto rotation = NumberField(entry, "rotation")) {
        // The display matrix's rotation is counter-clockwise; the legacy tag is
        // clockwise. Only the quarter turn matters for the display size, but keep
        // the convention of the tag.
        return NormalizeRotation(-*rotation);
      }
    }
  }
  auto tags = stream.find("tags");
  if (tags != stream.end() && tags->is_object()) {
    if (auto rotate = NumberField(*tags, "rotate")) return NormalizeRotation(*rotate);
  }
  return 0;
}

// True when the file starts like an ISO BMFF (MP4/MOV) file: ffprobe says "moov
// atom not found" both for a truncated MP4 and for any junk named .mp4.
bool LooksLikeIsoBmff(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  char header[8] = {};
  if (!in.read(header, sizeof(header))) return false;
  std::string_view type(header + 4, 4);
  for (std::string_view box : {"ftyp", "moov", "mdat", "free", "skip", "wide", "pnot"}) {
    if (type == box) return true;
  }
  return false;
}

// The last non-empty stderr line, without ffprobe's "path: " prefix noise.
std::string LastLine(std::string_view text) {
  std::vector<std::string_view> lines = NonEmptyLines(text);
  if (lines.empty()) return "unknown error";
  return std::string(lines.back());
}

// The demuxer named in ffmpeg's "[hls @ 0x55...] Format not on whitelist" line,
// or nullopt when `stderr_text` has no such line.
std::optional<std::string> RefusedDemuxer(std::string_view stderr_text) {
  for (std::string_view line : NonEmptyLines(stderr_text)) {
    if (line.find("Format not on whitelist") == std::string_view::npos) continue;
    size_t at = line.find(" @ ");
    if (!line.starts_with("[") || at == std::string_view::npos) return std::string();
    return std::string(line.substr(1, at - 1));
  }
  return std::nullopt;
}

absl::Status ProbeFailure(const std::filesystem::path& file, std::string_view stderr_text) {
  if (std::optional<std::string> demuxer = RefusedDemuxer(stderr_text)) {
    return absl::InvalidArgumentError(RefusedFormatMessage(*demuxer));
  }
  bool no_moov = stderr_text.find("moov atom not found") != std::string_view::npos;
  if (no_moov && LooksLikeIsoBmff(file)) {
    return absl::DataLossError(
        "The video file is incomplete or damaged: its index (the MP4 'moov' box) is missing, "
        "which usually means the upload or recording was cut short.");
  }
  if (no_moov ||
      stderr_text.find("Invalid data found when processing input") != std::string_view::npos) {
    return absl::InvalidArgumentError(kNotMedia);
  }
  std::string reason = LastLine(stderr_text);
  // Drop the "<path>: " prefix: the path is ours, not the uploader's.
  std::string prefix = absl::StrCat("file:", file.string(), ": ");
  if (reason.starts_with(prefix)) reason.erase(0, prefix.size());
  return absl::DataLossError(absl::StrCat("The video file could not be read: ", reason));
}

constexpr char kCutShort[] =
    "The file is damaged or incomplete: its last part is missing. If the upload was "
    "interrupted, upload it again.";

// Reads big-endian integers at `offset`; false when the file ends first.
bool ReadAt(std::ifstream& in, uint64_t offset, unsigned char* out, size_t n) {
  in.clear();
  in.seekg(static_cast<std::streamoff>(offset));
  return static_cast<bool>(in.read(reinterpret_cast<char*>(out), static_cast<std::streamsize>(n)));
}

uint64_t BigEndian(const unsigned char* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

// An ISO BMFF (MP4, MOV, 3GP) file is a sequence of top-level boxes, each
// declaring its size: one that runs past the end of the file was cut.
// Conclusive (true) when the boxes are one index (moov) and its media data
// (mdat) and end exactly at the end of the file: then every byte the index
// can point at is there. Checks a bounded number of boxes (fragmented files
// have many) and stops quietly at anything it does not understand, leaving
// that to the packet check.
absl::StatusOr<bool> CheckIsoBmffBoxes(std::ifstream& in, uint64_t file_size) {
  constexpr int kMaxBoxes = 100'000;
  uint64_t offset = 0;
  bool moov = false, mdat = false, fragments = false;
  for (int i = 0; i < kMaxBoxes && offset < file_size; ++i) {
    unsigned char header[16];
    if (file_size - offset < 8 || !ReadAt(in, offset, header, 8)) {
      return absl::DataLossError(kCutShort);
    }
    uint64_t size = BigEndian(header, 4);
    const std::string_view type(reinterpret_cast<const char*>(header + 4), 4);
    uint64_t header_size = 8;
    if (size == 1) {
      if (file_size - offset < 16 || !ReadAt(in, offset + 8, header + 8, 8)) {
        return absl::DataLossError(kCutShort);
      }
      size = BigEndian(header + 8, 8);
      header_size = 16;
    } else if (size == 0) {
      return false;  // the last box, running to the end of the file
    }
    if (size < header_size) return false;  // not boxes after all
    if (size > file_size - offset) return absl::DataLossError(kCutShort);
    moov = moov || type == "moov";
    mdat = mdat || type == "mdat";
    fragments = fragments || type == "moof";
    offset += size;
  }
  return offset == file_size && moov && mdat && !fragments;
}

// An EBML variable-length integer at `p` (at most 8 bytes available): its
// length, and its value with the length marker removed. Length 0 if invalid.
std::pair<int, uint64_t> EbmlVint(const unsigned char* p, bool keep_marker) {
  int length = 1;
  while (length <= 8 && !(p[0] & (0x80 >> (length - 1)))) ++length;
  if (length > 8) return {0, 0};
  uint64_t value = keep_marker ? p[0] : (p[0] & (0xff >> length));
  for (int i = 1; i < length; ++i) value = (value << 8) | p[i];
  return {length, value};
}

// A Matroska/WebM file is an EBML header followed by one Segment element
// that declares its size (unless it was written live, as browsers record):
// a segment running past the end of the file was cut. Conclusive (true) when
// the segment ends exactly at the end of the file.
absl::StatusOr<bool> CheckMatroskaSegment(std::ifstream& in, uint64_t file_size) {
  uint64_t offset = 0;
  for (int element = 0; element < 2; ++element) {
    unsigned char buf[16] = {};
    const size_t want = static_cast<size_t>(std::min<uint64_t>(16, file_size - offset));
    if (want < 2 || !ReadAt(in, offset, buf, want)) return absl::DataLossError(kCutShort);
    auto [id_length, id] = EbmlVint(buf, /*keep_marker=*/true);
    if (id_length == 0 || static_cast<size_t>(id_length) >= want) return false;
    auto [size_length, size] = EbmlVint(buf + id_length, /*keep_marker=*/false);
    if (size_length == 0) return false;
    const uint64_t unknown = (uint64_t{1} << (7 * size_length)) - 1;
    const uint64_t data = offset + static_cast<uint64_t>(id_length + size_length);
    const bool is_header = element == 0 && id == 0x1A45DFA3;
    const bool is_segment = element == 1 && id == 0x18538067;
    if (!is_header && !is_segment) return false;
    if (size == unknown) return false;  // live recording: no size to check
    if (data > file_size || size > file_size - data) return absl::DataLossError(kCutShort);
    offset = data + size;
  }
  return offset == file_size;
}

// The container's own framing: DATA_LOSS when it shows a cut, true when it
// shows every byte is there, false when it cannot tell (other containers).
absl::StatusOr<bool> CheckContainerFraming(const std::filesystem::path& file, uint64_t file_size,
                                           std::string_view format_name) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return absl::InternalError(absl::StrCat("cannot open ", file.string()));
  if (format_name.starts_with("mov,") && LooksLikeIsoBmff(file)) {
    return CheckIsoBmffBoxes(in, file_size);
  }
  if (format_name.starts_with("matroska")) return CheckMatroskaSegment(in, file_size);
  return false;
}

// The packets ffprobe lists (`-of compact=p=0`): how far they reach in time
// and in bytes.
struct PacketTail {
  int packets = 0;
  double max_end = 0;         // latest timestamp + duration, seconds
  uint64_t max_byte_end = 0;  // furthest pos + size

  void OnLine(std::string_view line) {
    std::optional<double> pts, dts, duration, size, pos;
    while (!line.empty()) {
      const size_t bar = line.find('|');
      const std::string_view field = line.substr(0, bar);
      line = bar == std::string_view::npos ? std::string_view() : line.substr(bar + 1);
      size_t eq = field.find('=');
      if (eq == std::string_view::npos) continue;
      std::string_view key = field.substr(0, eq);
      std::optional<double> value = ParseDouble(field.substr(eq + 1));
      if (key == "pts_time") pts = value;
      if (key == "dts_time") dts = value;
      if (key == "duration_time") duration = value;
      if (key == "size") size = value;
      if (key == "pos") pos = value;
    }
    ++packets;
    if (std::optional<double> at = pts ? pts : dts) {
      max_end = std::max(max_end, *at + duration.value_or(0));
    }
    if (pos && size && *pos >= 0 && *size >= 0) {
      max_byte_end = std::max(max_byte_end, static_cast<uint64_t>(*pos + *size));
    }
  }
};

// The packet listing a probe helper answered (kPackets), as a PacketTail;
// INTERNAL for any other answer or a malformed one.
absl::StatusOr<PacketTail> PacketsReplyTail(const probe::ProbeReply& reply) {
  if (reply.kind != probe::FrameKind::kPackets) {
    return absl::InternalError("the probe helper did not list the packets");
  }
  json reach = json::parse(reply.text, nullptr, /*allow_exceptions=*/false);
  if (!reach.is_object()) return absl::InternalError("the probe helper's packet list is not JSON");
  PacketTail tail;
  tail.packets = reach.value("packets", 0);
  tail.max_end = reach.value("max_end", 0.0);
  tail.max_byte_end = reach.value("max_byte_end", uint64_t{0});
  return tail;
}

}  // namespace

absl::StatusOr<MediaInfo> ParseProbeJson(std::string_view text) {
  json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) {
    return absl::InternalError("ffprobe produced output that is not JSON");
  }
  MediaInfo info;
  json format = root.value("format", json::object());
  info.format_name = StringField(format, "format_name");
  // ffprobe was told the same list; this catches an ffprobe that ignored it.
  if (!IsAllowedInputFormat(info.format_name)) {
    return absl::InvalidArgumentError(RefusedFormatMessage(info.format_name));
  }
  info.bit_rate = static_cast<int64_t>(NumberField(format, "bit_rate").value_or(0));
  info.start_time = NumberField(format, "start_time").value_or(0);

  const json* video = nullptr;
  json streams = root.value("streams", json::array());
  info.stream_count = streams.is_array() ? static_cast<int>(streams.size()) : 0;
  for (const json& stream : streams) {
    std::string type = StringField(stream, "codec_type");
    if (type == "audio") info.has_audio = true;
    if (type != "video" || video != nullptr) continue;
    // Cover art in audio files is a "video" stream of one picture.
    auto disposition = stream.find("disposition");
    if (disposition != stream.end() && disposition->is_object() &&
        disposition->value("attached_pic", 0) == 1) {
      continue;
    }
    video = &stream;
  }
  if (video == nullptr) {
    if (info.has_audio) {
      return absl::InvalidArgumentError("The file has sound but no picture: upload a video file.");
    }
    return absl::InvalidArgumentError(kNotMedia);
  }
  info.has_video = true;
  info.video_codec = StringField(*video, "codec_name");

  std::optional<double> duration = NumberField(format, "duration");
  if (!duration || *duration <= 0) duration = NumberField(*video, "duration");
  double frames = NumberField(*video, "nb_frames").value_or(0);

  bool image_container = info.format_name == "image2" || info.format_name.ends_with("_pipe");
  if (IsImageCodec(info.video_codec) &&
      (image_container || frames == 1 || !duration || *duration <= 0.1)) {
    return absl::InvalidArgumentError("The file is a still image, not a video.");
  }
  // No duration (a live-written file): ProbeMedia() measures it.
  info.duration_seconds = duration && *duration > 0 ? *duration : 0;

  int coded_width = static_cast<int>(NumberField(*video, "width").value_or(0));
  int coded_height = static_cast<int>(NumberField(*video, "height").value_or(0));
  if (coded_width <= 0 || coded_height <= 0) {
    return absl::DataLossError(
        "The video's picture size cannot be determined; the file is "
        "probably damaged.");
  }
  // Non-square pixels (anamorphic DVD/HDV material) are shown stretched.
  if (auto sar = ParseRatio(StringField(*video, "sample_aspect_ratio"), ':');
      sar && std::abs(*sar - 1.0) > 1e-3) {
    coded_width = std::max(2, static_cast<int>(std::lround(coded_width * *sar)));
  }
  info.rotation = StreamRotation(*video);
  if (info.rotation == 90 || info.rotation == 270) std::swap(coded_width, coded_height);
  info.width = coded_width;
  info.height = coded_height;

  // avg_frame_rate is the honest figure for variable-rate sources; r_frame_rate
  // can be a timebase guess like 1000/1 there.
  std::optional<double> rate = ParseRatio(StringField(*video, "avg_frame_rate"), '/');
  if (!rate || *rate > 1000) rate = ParseRatio(StringField(*video, "r_frame_rate"), '/');
  if (rate && *rate <= 1000) info.frame_rate = *rate;
  return info;
}

absl::StatusOr<double> DurationFromPackets(int64_t packets, double max_end, double start_time) {
  const double duration = max_end - start_time;
  if (packets <= 0 || !std::isfinite(duration) || duration <= 0) {
    return absl::DataLossError(
        "The video's length cannot be determined: the file does not state it, and reading it "
        "through found no timed picture or sound; it is probably incomplete or damaged.");
  }
  return duration;
}

namespace {

// The size of `file`: NOT_FOUND when it is missing, INTERNAL when unreadable.
absl::StatusOr<uint64_t> FileSize(const std::filesystem::path& file) {
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(file, ec);
  if (!ec) return size;
  if (ec == std::errc::no_such_file_or_directory) {
    return absl::NotFoundError(absl::StrCat("no such file: ", file.string()));
  }
  return absl::InternalError(absl::StrCat("cannot read ", file.string(), ": ", ec.message()));
}

// Waits for `proc`, killing it if `cancel` (may be null) is cancelled meanwhile.
absl::StatusOr<ExitStatus> WaitCancellable(Subprocess& proc, CancelToken* cancel) {
  CancelToken::Registration registration;
  if (cancel != nullptr) {
    Subprocess* raw = &proc;
    registration = cancel->OnCancel([raw] { raw->Kill(); });
  }
  return proc.Wait();
}

absl::Status ProbeTookTooLong(const ProbeOptions& options) {
  return absl::DeadlineExceededError(absl::StrCat("Analysing the video took longer than ",
                                                  options.timeout.count() / 1000,
                                                  " s; the file may be damaged."));
}

constexpr char kAbsurdDescription[] =
    "The file describes itself at absurd length (thousands of streams or tags); it is "
    "refused.";

std::atomic<probe::ProbeHelperPool*> g_default_helper{nullptr};

// Has `helper` answer `request` about `file`, handed over as an open
// descriptor, within the options' timeout and cancellation. Besides the
// pool's errors, NOT_FOUND or INTERNAL when the file cannot be opened (it
// was there a moment before: the callers then fall back to ffprobe, which
// reports it).
absl::StatusOr<probe::ProbeReply> AskHelper(probe::ProbeHelperPool& helper,
                                            const std::filesystem::path& file,
                                            const probe::ProbeRequest& request,
                                            const ProbeOptions& options) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no such file: ", file.string()));
    return absl::InternalError(
        absl::StrCat("cannot open ", file.string(), ": ", std::strerror(errno)));
  }
  CancelToken* cancel = options.cancel;
  absl::StatusOr<probe::ProbeReply> reply =
      helper.Probe(fd, request, std::chrono::steady_clock::now() + options.timeout,
                   [cancel] { return cancel != nullptr && cancel->cancelled(); });
  ::close(fd);
  return reply;
}

// Describes `file` with a streamgrid-probe helper, which gets an open
// descriptor (never the path) and answers as ffprobe would: its reply goes
// through the same parsing and error mapping. nullopt when no helper can be
// had (the caller then runs ffprobe).
std::optional<absl::StatusOr<MediaInfo>> ProbeWithHelper(probe::ProbeHelperPool& helper,
                                                         const std::filesystem::path& file,
                                                         const ProbeOptions& options) {
  probe::ProbeRequest request{.format_whitelist = std::string(kAllowedInputFormats)};
  absl::StatusOr<probe::ProbeReply> reply = AskHelper(helper, file, request, options);
  if (!reply.ok()) {
    const absl::Status& s = reply.status();
    if (absl::IsDeadlineExceeded(s)) return ProbeTookTooLong(options);
    if (absl::IsCancelled(s)) return absl::CancelledError("the probe was cancelled");
    if (absl::IsAborted(s)) {
      // FFmpeg's libraries died on this file: the same ones ffprobe uses.
      spdlog::warn("probe of {}: {}", file.string(), s.ToString());
      return absl::DataLossError(
          "The video file could not be read: analysing it failed, which usually means it is "
          "damaged.");
    }
    spdlog::warn("probe helper unavailable, running ffprobe: {}", s.ToString());
    return std::nullopt;
  }
  switch (reply->kind) {
    case probe::FrameKind::kDescribed:
      return ParseProbeJson(reply->text);
    case probe::FrameKind::kTooLarge:
      return absl::OutOfRangeError(kAbsurdDescription);
    default:
      return ProbeFailure(file, reply->text);
  }
}

// The helper pool `options` name, else the default one; null when none.
probe::ProbeHelperPool* HelperFor(const ProbeOptions& options) {
  return options.helper != nullptr ? options.helper : g_default_helper.load();
}

// ProbeMedia() up to the description: without measuring a duration the
// container does not state.
absl::StatusOr<MediaInfo> DescribeMedia(const std::filesystem::path& file,
                                        const ProbeOptions& options) {
  if (probe::ProbeHelperPool* helper = HelperFor(options)) {
    if (auto result = ProbeWithHelper(*helper, file, options)) return *std::move(result);
  }

  std::string json;
  bool truncated = false;
  SubprocessOptions run;
  run.deadline = options.timeout;
  run.kill_grace = std::chrono::milliseconds(1000);
  run.on_stdout_line = [&json, &truncated](std::string_view line) {
    // ffprobe's JSON for even a file with many streams is a few kilobytes.
    if (json.size() + line.size() < kMaxProbeOutput) {
      json.append(line);
      json.push_back('\n');
    } else {
      truncated = true;
    }
  };
  // "file:" keeps a name with a colon from being taken as a protocol. The
  // probe's own work is bounded by ffprobe's default probesize (5 MB) and
  // analyzeduration (5 s of media), and by the timeout.
  std::vector<std::string> argv = {options.ffprobe, "-v",           "error",        "-of",
                                   "json",          "-show_format", "-show_streams"};
  for (std::string& option : InputSafetyOptions()) argv.push_back(std::move(option));
  argv.insert(argv.end(), {"-i", "file:" + file.string()});
  absl::StatusOr<std::unique_ptr<Subprocess>> proc = Subprocess::Start(argv, std::move(run));
  if (!proc.ok()) return proc.status();
  absl::StatusOr<ExitStatus> exit = WaitCancellable(**proc, options.cancel);
  if (absl::IsDeadlineExceeded(exit.status())) return ProbeTookTooLong(options);
  if (!exit.ok()) return exit.status();
  if (!exit->success()) return ProbeFailure(file, (*proc)->stderr_tail());
  if (truncated) return absl::OutOfRangeError(kAbsurdDescription);
  return ParseProbeJson(json);
}

absl::Status MeasuringTookTooLong(const ProbeOptions& options) {
  return absl::DeadlineExceededError(
      absl::StrCat("Measuring the video's length (the file does not state it) took longer than ",
                   options.timeout.count() / 1000, " s."));
}

// Lists every packet of `file` with a probe helper, from the start, as
// ListPacketsWithFfprobe() does. nullopt when no helper can be had.
std::optional<absl::StatusOr<PacketTail>> ListPacketsWithHelper(probe::ProbeHelperPool& helper,
                                                                const std::filesystem::path& file,
                                                                const ProbeOptions& options) {
  probe::ProbeRequest request{.format_whitelist = std::string(kAllowedInputFormats),
                              .max_streams = 1'000'000,  // the probe has judged them
                              .packets_from_us = 0};
  absl::StatusOr<probe::ProbeReply> reply = AskHelper(helper, file, request, options);
  if (!reply.ok()) {
    const absl::Status& s = reply.status();
    if (absl::IsDeadlineExceeded(s)) return MeasuringTookTooLong(options);
    if (absl::IsCancelled(s)) return absl::CancelledError("the probe was cancelled");
    if (absl::IsAborted(s)) {
      spdlog::warn("measuring the length of {}: {}", file.string(), s.ToString());
      return absl::DataLossError(
          "The video file could not be read through: it is probably damaged.");
    }
    spdlog::warn("probe helper unavailable, running ffprobe: {}", s.ToString());
    return std::nullopt;
  }
  if (reply->kind == probe::FrameKind::kFailed) return ProbeFailure(file, reply->text);
  return PacketsReplyTail(*reply);
}

// Lists every packet of `file` (read as `format_name`) with ffprobe, which
// only demuxes: one line per packet, streamed through, never held.
absl::StatusOr<PacketTail> ListPacketsWithFfprobe(const std::filesystem::path& file,
                                                  std::string_view format_name,
                                                  const ProbeOptions& options) {
  std::vector<std::string> argv = {options.ffprobe, "-v", "error"};
  for (std::string& option : InputSafetyOptions(format_name)) argv.push_back(std::move(option));
  argv.insert(argv.end(), {"-show_entries", "packet=pts_time,dts_time,duration_time,size,pos",
                           "-of", "compact=p=0", "-i", "file:" + file.string()});
  SubprocessOptions run;
  run.deadline = options.timeout;
  run.kill_grace = std::chrono::milliseconds(1000);
  PacketTail tail;
  run.on_stdout_line = [&tail](std::string_view line) { tail.OnLine(line); };
  absl::StatusOr<std::unique_ptr<Subprocess>> proc = Subprocess::Start(argv, std::move(run));
  if (!proc.ok()) return proc.status();
  absl::StatusOr<ExitStatus> exit = WaitCancellable(**proc, options.cancel);
  if (absl::IsDeadlineExceeded(exit.status())) return MeasuringTookTooLong(options);
  if (!exit.ok()) return exit.status();
  if (std::optional<std::string> demuxer = RefusedDemuxer((*proc)->stderr_tail())) {
    return absl::InvalidArgumentError(RefusedFormatMessage(*demuxer));
  }
  // A read error ends the listing as the end of the file does (the helper's
  // listing too): what was read is what the transcode will get.
  return tail;
}

// Sets info->duration_seconds, which the container does not state, to where
// the packets of `file` end, found by reading it through without decoding.
// Bounded by the options' timeout and cancellation, like the probe.
absl::Status MeasureDuration(const std::filesystem::path& file, const ProbeOptions& options,
                             MediaInfo* info) {
  std::optional<absl::StatusOr<PacketTail>> listed;
  if (probe::ProbeHelperPool* helper = HelperFor(options)) {
    listed = ListPacketsWithHelper(*helper, file, options);
  }
  if (!listed) listed = ListPacketsWithFfprobe(file, info->format_name, options);
  if (!listed->ok()) return listed->status();
  absl::StatusOr<double> duration =
      DurationFromPackets((*listed)->packets, (*listed)->max_end, info->start_time);
  if (!duration.ok()) return duration.status();
  info->duration_seconds = *duration;
  info->duration_measured = true;
  return absl::OkStatus();
}

}  // namespace

void SetDefaultProbeHelper(probe::ProbeHelperPool* helper) { g_default_helper.store(helper); }

absl::StatusOr<MediaInfo> ProbeMedia(const std::filesystem::path& file,
                                     const ProbeOptions& options) {
  absl::StatusOr<uint64_t> size = FileSize(file);
  if (!size.ok()) return size.status();
  if (*size == 0) return absl::DataLossError("The file is empty.");
  absl::StatusOr<MediaInfo> info = DescribeMedia(file, options);
  if (!info.ok() || info->duration_seconds > 0) return info;
  const auto started = std::chrono::steady_clock::now();
  if (absl::Status s = MeasureDuration(file, options, &*info); !s.ok()) return s;
  spdlog::info("{} states no duration; reading it through measured {:.3f} s in {} ms",
               file.filename().string(), info->duration_seconds,
               std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - started)
                   .count());
  return info;
}

namespace {

// Whether the packets listed from near the end (`listed`: the listing
// itself succeeded) reach the end of the file's duration, inside the file.
absl::Status JudgeTail(bool listed, const PacketTail& tail, uint64_t file_size,
                       const MediaInfo& info) {
  // The last packet starts one frame before the end: allow a little more
  // than a frame of slack, as for any rounding of the container's duration.
  const double slack = std::max(0.5, info.frame_rate > 0 ? 2.0 / info.frame_rate : 0.5);
  if (!listed || tail.packets == 0 || tail.max_byte_end > file_size ||
      tail.max_end - info.start_time < info.duration_seconds - slack) {
    return absl::DataLossError(kCutShort);
  }
  return absl::OkStatus();
}

// VerifyMediaEnd's packet listing by a probe helper: the same listing as the
// ffprobe run (from `from` seconds, rounded to the millisecond as its
// -read_intervals is), judged the same way. nullopt when no helper can be
// had (the caller then runs ffprobe).
std::optional<absl::Status> VerifyEndWithHelper(probe::ProbeHelperPool& helper,
                                                const std::filesystem::path& file,
                                                uint64_t file_size, const MediaInfo& info,
                                                double from, const ProbeOptions& options) {
  probe::ProbeRequest request{.format_whitelist = std::string(kAllowedInputFormats),
                              .max_streams = 1'000'000,  // the probe has judged them
                              .packets_from_us = std::llround(from * 1000) * 1000};
  absl::StatusOr<probe::ProbeReply> reply = AskHelper(helper, file, request, options);
  if (!reply.ok()) {
    const absl::Status& s = reply.status();
    if (absl::IsDeadlineExceeded(s)) {
      return absl::DeadlineExceededError("Checking the end of the video took too long.");
    }
    if (absl::IsCancelled(s)) return absl::CancelledError("the end check was cancelled");
    if (absl::IsAborted(s)) {
      spdlog::warn("end check of {}: {}", file.string(), s.ToString());
      return absl::DataLossError(kCutShort);
    }
    spdlog::warn("probe helper unavailable, running ffprobe: {}", s.ToString());
    return std::nullopt;
  }
  if (reply->kind == probe::FrameKind::kFailed) {
    if (std::optional<std::string> demuxer = RefusedDemuxer(reply->text)) {
      return absl::InvalidArgumentError(RefusedFormatMessage(*demuxer));
    }
    return absl::DataLossError(kCutShort);
  }
  absl::StatusOr<PacketTail> tail = PacketsReplyTail(*reply);
  if (!tail.ok()) return tail.status();
  return JudgeTail(/*listed=*/true, *tail, file_size, info);
}

}  // namespace

absl::Status VerifyMediaEnd(const std::filesystem::path& file, const MediaInfo& info,
                            const ProbeOptions& options) {
  absl::StatusOr<uint64_t> size = FileSize(file);
  if (!size.ok()) return size.status();
  const uint64_t file_size = *size;
  absl::StatusOr<bool> framed = CheckContainerFraming(file, file_size, info.format_name);
  if (!framed.ok()) return framed.status();
  if (*framed) return absl::OkStatus();
  // The probe has just read every packet to measure the length: nothing
  // claims more than they hold, and a cut file is simply shorter.
  if (info.duration_measured) return absl::OkStatus();

  // ffprobe lists the packets from about 1.5 s before the end without
  // decoding them: a demuxer reads an index entry past the cut as a packet
  // outside the file, and a cut between packets ends the list early.
  const double from = info.start_time + std::max(0.0, info.duration_seconds - 1.5);
  if (probe::ProbeHelperPool* helper = HelperFor(options)) {
    if (auto result = VerifyEndWithHelper(*helper, file, file_size, info, from, options)) {
      return *std::move(result);
    }
  }
  std::vector<std::string> argv = {options.ffprobe, "-v", "error"};
  for (std::string& option : InputSafetyOptions(info.format_name)) {
    argv.push_back(std::move(option));
  }
  argv.insert(argv.end(), {"-read_intervals", absl::StrFormat("%.3f%%", from), "-show_entries",
                           "packet=pts_time,dts_time,duration_time,size,pos", "-of", "compact=p=0",
                           "-i", "file:" + file.string()});
  SubprocessOptions run;
  run.deadline = options.timeout;
  run.kill_grace = std::chrono::milliseconds(1000);
  PacketTail tail;
  run.on_stdout_line = [&tail](std::string_view line) { tail.OnLine(line); };
  absl::StatusOr<std::unique_ptr<Subprocess>> proc = Subprocess::Start(argv, std::move(run));
  if (!proc.ok()) return proc.status();
  absl::StatusOr<ExitStatus> exit = WaitCancellable(**proc, options.cancel);
  if (absl::IsDeadlineExceeded(exit.status())) {
    return absl::DeadlineExceededError("Checking the end of the video took too long.");
  }
  if (!exit.ok()) return exit.status();
  if (std::optional<std::string> demuxer = RefusedDemuxer((*proc)->stderr_tail())) {
    return absl::InvalidArgumentError(RefusedFormatMessage(*demuxer));
  }
  return JudgeTail(exit->success(), tail, file_size, info);
}

}  // namespace streamgrid
