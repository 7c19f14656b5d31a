#include "transcode/hls_fixup.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace streamgrid {
namespace {

constexpr std::string_view kPlaylistType = "#EXT-X-PLAYLIST-TYPE:VOD";
constexpr std::string_view kEndList = "#EXT-X-ENDLIST";

}  // namespace

absl::Status FixupHlsMediaPlaylist(std::istream& in, std::ostream& out) {
  auto write_line = [&out](std::string_view text) { out << text << '\n'; };
  std::string line;
  auto next_line = [&]() {
    if (!std::getline(in, line)) return false;
    // Every trailing CR goes: with only one removed, "x\r\r" would be written
    // as "x\r\n", a CRLF line end again, and a second pass would change it.
    while (!line.empty() && line.back() == '\r') line.pop_back();
    return true;
  };
  if (!next_line() || line != "#EXTM3U") {
    if (in.bad()) return absl::DataLossError("reading the playlist failed");
    return absl::InvalidArgumentError("not an HLS playlist (no #EXTM3U header)");
  }
  write_line(line);

  bool type_written = false;
  bool end_seen = false;
  while (next_line()) {
    // Any existing type goes too: an EVENT playlist must become VOD.
    if (line.starts_with("#EXT-X-PROGRAM-DATE-TIME") || line.starts_with("#EXT-X-PLAYLIST-TYPE")) {
      continue;
    }
    if (!type_written) {
      // Right after the version line when it directly follows the header,
      // otherwise before the first other line.
      bool is_version = line.starts_with("#EXT-X-VERSION");
      if (is_version) write_line(line);
      write_line(kPlaylistType);
      type_written = true;
      if (is_version) continue;
    }
    if (line == kEndList) {
      // Players ignore anything after the first ENDLIST; a second is noise.
      if (end_seen) continue;
      end_seen = true;
    }
    write_line(line);
  }
  if (in.bad()) return absl::DataLossError("reading the playlist failed");
  if (!type_written) write_line(kPlaylistType);
  if (!end_seen) write_line(kEndList);
  out.flush();
  if (!out) return absl::InternalError("writing the playlist failed");
  return absl::OkStatus();
}

absl::Status FixupHlsMediaPlaylistFile(const std::filesystem::path& path) {
  std::filesystem::path temp = path;
  temp += ".fixup";
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      return absl::InternalError(
          absl::StrCat("cannot open ", path.string(), ": ", std::strerror(errno)));
    }
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) {
      return absl::InternalError(
          absl::StrCat("cannot create ", temp.string(), ": ", std::strerror(errno)));
    }
    absl::Status status = FixupHlsMediaPlaylist(in, out);
    out.close();
    if (status.ok() && !out) status = absl::InternalError("writing the playlist failed");
    if (!status.ok()) {
      std::error_code ignored;
      std::filesystem::remove(temp, ignored);
      return absl::Status(status.code(), absl::StrCat(path.string(), ": ", status.message()));
    }
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) {
    std::filesystem::remove(temp, ec);
    return absl::InternalError(absl::StrCat("cannot replace ", path.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace streamgrid
