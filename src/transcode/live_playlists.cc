#include "transcode/live_playlists.h"

#include <algorithm>

#include "absl/strings/str_split.h"
#include "common/names.h"

namespace streamgrid {
namespace {

// The lines of `text` without their line ends (a CR before "\n" goes too).
std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  for (absl::string_view piece :
       absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    std::string_view line(piece.data(), piece.size());
    while (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
  }
  return lines;
}

bool IsUriLine(std::string_view line) { return !line.empty() && line.front() != '#'; }

// The value of URI="..." in a tag line, if any.
std::optional<std::string_view> UriAttribute(std::string_view line) {
  constexpr std::string_view kKey = "URI=\"";
  size_t start = line.find(kKey);
  if (start == std::string_view::npos) return std::nullopt;
  start += kKey.size();
  size_t end = line.find('"', start);
  if (end == std::string_view::npos) return std::nullopt;
  return line.substr(start, end - start);
}

}  // namespace

std::vector<std::string> PlaylistSegments(std::string_view playlist) {
  std::vector<std::string> segments;
  for (std::string_view line : Lines(playlist)) {
    if (IsUriLine(line)) segments.emplace_back(line);
  }
  return segments;
}

std::vector<std::string> MasterPlaylistUris(std::string_view master) {
  std::vector<std::string> uris;
  auto add = [&uris](std::string_view uri) {
    if (std::find(uris.begin(), uris.end(), uri) == uris.end()) uris.emplace_back(uri);
  };
  for (std::string_view line : Lines(master)) {
    if (IsUriLine(line)) {
      add(line);
    } else if (line.starts_with("#EXT-X-MEDIA:")) {
      if (std::optional<std::string_view> uri = UriAttribute(line)) add(*uri);
    }
  }
  return uris;
}

std::optional<std::string> LiveMediaPlaylist(std::string_view playlist,
                                             const std::function<bool(std::string_view)>& stored,
                                             size_t* segments) {
  if (segments != nullptr) *segments = 0;
  std::vector<std::string_view> lines = Lines(playlist);
  if (lines.empty() || lines.front() != "#EXTM3U") return std::nullopt;
  std::string header = "#EXTM3U\n";
  std::string body;
  std::string pending;  // the tags of the segment being read
  bool in_segments = false;
  bool type_written = false;
  size_t count = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    if (line.empty()) continue;
    // Time of encoding, type and end: the EVENT playlist says its own.
    if (line.starts_with("#EXT-X-PROGRAM-DATE-TIME") || line.starts_with("#EXT-X-PLAYLIST-TYPE") ||
        line == "#EXT-X-ENDLIST") {
      continue;
    }
    if (line.starts_with("#EXTINF")) in_segments = true;
    if (!in_segments) {
      if (line.starts_with("#EXT-X-MAP")) {
        std::optional<std::string_view> init = UriAttribute(line);
        if (!init || !IsValidContentName(*init) || !stored(*init)) return std::nullopt;
      }
      header.append(line).append("\n");
      if (!type_written && line.starts_with("#EXT-X-VERSION")) {
        header += "#EXT-X-PLAYLIST-TYPE:EVENT\n";
        type_written = true;
      }
      continue;
    }
    if (!IsUriLine(line)) {
      // A tag of the next segment (#EXTINF and the like); a later #EXT-X-MAP
      // would need its own check, and ffmpeg writes none.
      if (line.starts_with("#EXT-X-MAP")) break;
      pending.append(line).append("\n");
      continue;
    }
    if (!IsValidContentName(line) || !stored(line)) break;
    body.append(pending).append(line).append("\n");
    pending.clear();
    ++count;
  }
  if (count == 0) return std::nullopt;
  if (!type_written) header += "#EXT-X-PLAYLIST-TYPE:EVENT\n";
  if (segments != nullptr) *segments = count;
  return header + body;
}

}  // namespace streamgrid
