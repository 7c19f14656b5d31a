#include "transcode/media_policy.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/strings.h"

namespace streamgrid {
namespace {

// The comma-separated names of `list`, as views into it.
std::vector<std::string_view> Names(std::string_view list) {
  std::vector<std::string_view> names;
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view name = StripWhitespace(list.substr(0, comma));
    if (!name.empty()) names.push_back(name);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return names;
}

// What a refused demuxer's input is, for the message: the usual suspects by
// name, images by their demuxers' naming pattern; empty for anything else.
std::string_view Describe(std::string_view demuxer) {
  if (demuxer == "hls" || demuxer == "applehttp") return "an HLS playlist";
  if (demuxer == "dash") return "a DASH manifest";
  if (demuxer == "concat") return "a concat list";
  if (demuxer == "image2" || demuxer.ends_with("_pipe")) return "an image or image sequence";
  if (demuxer == "sdp" || demuxer == "rtsp" || demuxer == "rtp") {
    return "a network stream description";
  }
  return "";
}

}  // namespace

std::vector<std::string> InputSafetyOptions(std::string_view format_name) {
  std::vector<std::string> options = {"-format_whitelist", std::string(kAllowedInputFormats),
                                      "-protocol_whitelist", std::string(kAllowedInputProtocols)};
  const std::vector<std::string_view> names = Names(format_name);
  if (std::find(names.begin(), names.end(), "mov") != names.end()) {
    options.insert(options.end(), {"-enable_drefs", "0", "-use_absolute_path", "0"});
  }
  return options;
}

bool IsAllowedInputFormat(std::string_view format_name) {
  const std::vector<std::string_view> allowed = Names(kAllowedInputFormats);
  for (std::string_view name : Names(format_name)) {
    if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) return true;
  }
  return false;
}

std::string RefusedFormatMessage(std::string_view demuxer) {
  std::string_view what = Describe(demuxer);
  std::string start =
      what.empty() ? absl::StrCat("The file is not a video in a format we accept (it reads as '",
                                  ToAbsl(demuxer), "').")
                   : absl::StrCat("The file is ", ToAbsl(what), ", not a video.");
  return absl::StrCat(start, " Upload a video file: ", ToAbsl(kAcceptedKinds),
                      ". Playlists, manifests, lists of files and images are refused.");
}

absl::Status CheckMediaLimits(const MediaInfo& info, const MediaLimits& limits) {
  if (info.duration_seconds > limits.max_duration_seconds) {
    return absl::OutOfRangeError(absl::StrFormat(
        "The video is %.0f seconds long; the longest accepted here is %.0f seconds.",
        info.duration_seconds, limits.max_duration_seconds));
  }
  const int long_side = std::max(info.width, info.height);
  const int short_side = std::min(info.width, info.height);
  if (long_side > limits.max_long_side || short_side > limits.max_short_side) {
    return absl::OutOfRangeError(absl::StrFormat(
        "The video's picture is %dx%d; the largest accepted here is %dx%d (either way up).",
        info.width, info.height, limits.max_long_side, limits.max_short_side));
  }
  if (info.stream_count > limits.max_streams) {
    return absl::OutOfRangeError(
        absl::StrFormat("The file has %d streams; at most %d are accepted.", info.stream_count,
                        limits.max_streams));
  }
  return absl::OkStatus();
}

absl::Status ParseMaxResolution(std::string_view text, MediaLimits* limits) {
  size_t x = text.find_first_of("xX");
  std::optional<int64_t> width, height;
  if (x != std::string_view::npos) {
    width = ParseInt64(text.substr(0, x));
    height = ParseInt64(text.substr(x + 1));
  }
  constexpr int64_t kMaxSide = 1 << 20;
  if (!width || !height || *width < 2 || *height < 2 || *width > kMaxSide || *height > kMaxSide) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected WIDTHxHEIGHT such as 8192x4320, got '", ToAbsl(text), "'"));
  }
  limits->max_long_side = static_cast<int>(std::max(*width, *height));
  limits->max_short_side = static_cast<int>(std::min(*width, *height));
  return absl::OkStatus();
}

std::chrono::milliseconds TranscodeTimeLimit(double duration_seconds, double factor,
                                             std::chrono::milliseconds floor) {
  if (!(factor > 0)) return std::chrono::milliseconds(0);
  // Only keeps a container's absurd duration from overflowing the arithmetic.
  constexpr double kMaxMs = 30.0 * 24 * 3600 * 1000;
  double ms = std::max(0.0, duration_seconds) * factor * 1000 + static_cast<double>(floor.count());
  return std::chrono::milliseconds(static_cast<int64_t>(std::min(ms, kMaxMs)));
}

}  // namespace streamgrid
