#pragma once

// HLS playlists for a video that is still being encoded: an EVENT media
// playlist lists only the segments already stored, so a player can start at
// the beginning while the rest is encoded. Internal to src/transcode.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace streamgrid {

// The segment names (URI lines) an HLS media playlist lists, in order. ffmpeg's
// dash muxer rewrites its media playlists after closing each segment, so every
// name listed there is a finished file.
std::vector<std::string> PlaylistSegments(std::string_view playlist);

// The playlists an HLS master playlist names (variant URI lines and the URI="..."
// attributes of #EXT-X-MEDIA tags), in order, without repeats.
std::vector<std::string> MasterPlaylistUris(std::string_view master);

// An EVENT media playlist made from `playlist` (one written by ffmpeg's dash
// muxer while it encodes): the header tags, `#EXT-X-PLAYLIST-TYPE:EVENT`, and the
// longest prefix of its segments for which `stored` is true, never
// `#EXT-X-ENDLIST` nor `#EXT-X-PROGRAM-DATE-TIME`. `*segments` (may be null)
// gets how many segments it lists. Nothing when that prefix is empty, when the
// init segment (#EXT-X-MAP) is not stored, when a name is not a valid content
// name, or when `playlist` is not an HLS playlist: a player must never be
// pointed at a file that is not there.
std::optional<std::string> LiveMediaPlaylist(std::string_view playlist,
                                             const std::function<bool(std::string_view)>& stored,
                                             size_t* segments = nullptr);

}  // namespace streamgrid
