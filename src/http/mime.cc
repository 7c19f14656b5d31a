#include "http/mime.h"

#include <array>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "common/strings.h"

namespace streamgrid::http {
namespace {

constexpr std::string_view kOctetStream = "application/octet-stream";

constexpr std::array<std::pair<std::string_view, std::string_view>, 20> kTypes = {{
    {"mpd", "application/dash+xml"},
    {"m3u8", "application/vnd.apple.mpegurl"},
    {"m4s", "video/iso.segment"},
    {"mp4", "video/mp4"},
    {"m4a", "audio/mp4"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"png", "image/png"},
    {"webp", "image/webp"},
    {"vtt", "text/vtt; charset=utf-8"},
    {"html", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"svg", "image/svg+xml"},
    {"ico", "image/x-icon"},
    {"txt", "text/plain; charset=utf-8"},
    {"wasm", "application/wasm"},
}};

// What stored video files may be served as (see MediaMimeTypeForName).
constexpr std::array<std::string_view, 10> kMediaExtensions = {"mpd", "m3u8", "m4s", "mp4",  "m4a",
                                                               "jpg", "jpeg", "png", "webp", "vtt"};

// Non-text application types that are still textual on the wire.
constexpr std::array<std::string_view, 5> kCompressibleApplicationTypes = {
    "application/json", "application/xml", "application/javascript",
    "application/vnd.apple.mpegurl", "application/x-mpegurl"};

}  // namespace

std::string_view MimeTypeForName(std::string_view file_name) {
  size_t slash = file_name.find_last_of('/');
  if (slash != std::string_view::npos) file_name.remove_prefix(slash + 1);
  size_t dot = file_name.find_last_of('.');
  if (dot == std::string_view::npos) return kOctetStream;
  std::string_view ext = file_name.substr(dot + 1);
  for (const auto& [known_ext, type] : kTypes) {
    if (EqualsIgnoreCase(ext, known_ext)) return type;
  }
  return kOctetStream;
}

std::optional<std::string_view> MediaMimeTypeForName(std::string_view file_name) {
  size_t dot = file_name.find_last_of("./");
  if (dot == std::string_view::npos || file_name[dot] != '.') return std::nullopt;
  std::string_view ext = file_name.substr(dot + 1);
  for (std::string_view media : kMediaExtensions) {
    if (EqualsIgnoreCase(ext, media)) return MimeTypeForName(file_name);
  }
  return std::nullopt;
}

bool IsCompressible(std::string_view mime) {
  std::string type(mime.substr(0, mime.find(';')));
  absl::StripAsciiWhitespace(&type);
  absl::AsciiStrToLower(&type);
  if (absl::StartsWith(type, "text/")) return true;
  if (absl::EndsWith(type, "+json") || absl::EndsWith(type, "+xml")) return true;
  for (std::string_view known : kCompressibleApplicationTypes) {
    if (type == known) return true;
  }
  return false;
}

}  // namespace streamgrid::http
