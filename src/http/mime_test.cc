#include "http/mime.h"

#include <string>
#include <utility>

#include "gtest/gtest.h"

namespace streamgrid::http {
namespace {

TEST(MimeTypeForNameTest, KnownExtensions) {
  const std::pair<const char*, const char*> cases[] = {
      {"manifest.mpd", "application/dash+xml"},
      {"master.m3u8", "application/vnd.apple.mpegurl"},
      {"seg-00001.m4s", "video/iso.segment"},
      {"init.mp4", "video/mp4"},
      {"audio.m4a", "audio/mp4"},
      {"thumb.jpg", "image/jpeg"},
      {"thumb.jpeg", "image/jpeg"},
      {"poster.png", "image/png"},
      {"poster.webp", "image/webp"},
      {"subs.vtt", "text/vtt; charset=utf-8"},
      {"index.html", "text/html; charset=utf-8"},
      {"app.css", "text/css; charset=utf-8"},
      {"app.js", "text/javascript; charset=utf-8"},
      {"app.mjs", "text/javascript; charset=utf-8"},
      {"data.json", "application/json"},
      {"app.js.map", "application/json"},
      {"logo.svg", "image/svg+xml"},
      {"favicon.ico", "image/x-icon"},
      {"notes.txt", "text/plain; charset=utf-8"},
      {"module.wasm", "application/wasm"},
  };
  for (const auto& [name, type] : cases) EXPECT_EQ(MimeTypeForName(name), type) << name;
}

TEST(MimeTypeForNameTest, CaseInsensitiveAndPaths) {
  EXPECT_EQ(MimeTypeForName("VIDEO.MP4"), "video/mp4");
  EXPECT_EQ(MimeTypeForName("Manifest.MpD"), "application/dash+xml");
  EXPECT_EQ(MimeTypeForName("/static/js/app.JS"), "text/javascript; charset=utf-8");
  EXPECT_EQ(MimeTypeForName("videos/abc/seg.1.m4s"), "video/iso.segment");
}

TEST(MimeTypeForNameTest, UnknownIsOctetStream) {
  const char* names[] = {"",     "README", "archive.tar.gz", "file.", "dir.mp4/file", "a.mp4x",
                         "a.mp", ".",      "video.mkv"};
  for (const char* name : names) {
    EXPECT_EQ(MimeTypeForName(name), "application/octet-stream") << name;
  }
}

TEST(IsCompressibleTest, TextualTypes) {
  const char* yes[] = {
      "text/html; charset=utf-8",
      "text/css",
      "text/vtt",
      "TEXT/PLAIN",
      "application/json",
      "application/dash+xml",
      "application/vnd.apple.mpegurl",
      "application/x-mpegURL",
      "image/svg+xml",
      "application/xml",
      "application/ld+json",
      "text/javascript; charset=utf-8",
      " application/json ; charset=utf-8",
  };
  for (const char* mime : yes) EXPECT_TRUE(IsCompressible(mime)) << mime;
}

TEST(IsCompressibleTest, MediaAndBinaryTypes) {
  const char* no[] = {"video/iso.segment",
                      "video/mp4",
                      "audio/mp4",
                      "image/jpeg",
                      "image/png",
                      "image/webp",
                      "image/x-icon",
                      "application/octet-stream",
                      "",
                      "json",
                      "application/jsonx"};
  for (const char* mime : no) EXPECT_FALSE(IsCompressible(mime)) << mime;
}

TEST(IsCompressibleTest, AgreesWithMimeTypeForName) {
  EXPECT_TRUE(IsCompressible(MimeTypeForName("a.mpd")));
  EXPECT_TRUE(IsCompressible(MimeTypeForName("a.m3u8")));
  EXPECT_TRUE(IsCompressible(MimeTypeForName("a.js")));
  EXPECT_FALSE(IsCompressible(MimeTypeForName("a.m4s")));
  EXPECT_FALSE(IsCompressible(MimeTypeForName("a.jpg")));
}

TEST(MediaMimeTypeForNameTest, OnlyMediaPlaylistAndImageTypes) {
  EXPECT_EQ(MediaMimeTypeForName("manifest.mpd"), "application/dash+xml");
  EXPECT_EQ(MediaMimeTypeForName("MASTER.M3U8"), "application/vnd.apple.mpegurl");
  EXPECT_EQ(MediaMimeTypeForName("seg-1.m4s"), "video/iso.segment");
  EXPECT_EQ(MediaMimeTypeForName("init.mp4"), "video/mp4");
  EXPECT_EQ(MediaMimeTypeForName("thumbnail.jpg"), "image/jpeg");
  EXPECT_EQ(MediaMimeTypeForName("a.webp"), "image/webp");
  EXPECT_EQ(MediaMimeTypeForName("subs.vtt"), "text/vtt; charset=utf-8");
  for (const char* name : {"x.html", "x.htm", "x.svg", "x.js", "x.mjs", "x.css", "x.json", "x.xml",
                           "x.txt", "original", "x.html.", "x", ".mp4/x", "x.wasm"}) {
    EXPECT_EQ(MediaMimeTypeForName(name), std::nullopt) << name;
  }
}

}  // namespace
}  // namespace streamgrid::http
