#pragma once

#include <filesystem>
#include <istream>
#include <ostream>

#include "absl/status/status.h"

namespace streamgrid {

// Turns an HLS media playlist written by ffmpeg's dash muxer into a proper VOD
// playlist: drops `#EXT-X-PROGRAM-DATE-TIME` lines (they carry the encoding time,
// which means nothing to a viewer), puts `#EXT-X-PLAYLIST-TYPE:VOD` (in place of
// any other type) after `#EXT-X-VERSION` when that follows the header, else right
// after `#EXTM3U`, and appends `#EXT-X-ENDLIST` when missing. Everything else is
// copied unchanged, line by line, with "\n" line ends (any CRs before a line end
// are dropped). INVALID_ARGUMENT when the input does not start with `#EXTM3U`;
// other errors when reading or writing fails.
absl::Status FixupHlsMediaPlaylist(std::istream& in, std::ostream& out);

// The same for the file at `path`, rewritten in place through a temporary file
// renamed over it.
absl::Status FixupHlsMediaPlaylistFile(const std::filesystem::path& path);

}  // namespace streamgrid
