#pragma once

#include <optional>
#include <string_view>

namespace streamgrid::http {

// The Content-Type to serve a file as, chosen by the extension of the last path
// component of `file_name` (case-insensitive); text types carry
// "; charset=utf-8". Unknown or missing extensions give
// "application/octet-stream". The result refers to static storage.
std::string_view MimeTypeForName(std::string_view file_name);

// The Content-Type for a stored video file (/content/<id>/<file>): only media,
// playlist, image and caption types (mpd, m3u8, m4s, mp4, m4a, jpg/jpeg, png,
// webp, vtt). nullopt for anything else, HTML, SVG and scripts included, so
// content can never be served as something a browser would run.
std::optional<std::string_view> MediaMimeTypeForName(std::string_view file_name);

// True if a response of media type `mime` (parameters such as charset allowed,
// case-insensitive) is worth compressing: text/*, JSON and XML types (including
// +json/+xml such as DASH manifests and SVG), JavaScript and HLS playlists.
// False for media segments, images and everything else.
bool IsCompressible(std::string_view mime);

}  // namespace streamgrid::http
