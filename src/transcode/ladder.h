#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "transcode/probe.h"

namespace streamgrid {

// One rendition to encode.
struct Rung {
  std::string name;     // "720p": the short side in pixels
  int width = 0;        // even, display pixels (square)
  int height = 0;       // even
  int64_t bitrate = 0;  // target video bits per second
  int64_t maxrate = 0;  // VBV peak
  int64_t bufsize = 0;  // VBV buffer
  bool operator==(const Rung&) const = default;
};

// The renditions for `source`, largest first: every standard size (1080, 720,
// 480, 360, 240 on the short side, so a portrait 1080x1920 gets a 1080-wide
// "1080p") that does not exceed the source's short side; a source smaller than
// 240 gets one rung of its own size. Dimensions are even and keep the source's
// display aspect ratio; bitrates follow the pixel count and frame rate.
// `source` must have a positive width and height.
std::vector<Rung> SelectLadder(const MediaInfo& source);

// The constant frame rate to encode `source` at: its rate rounded to a whole
// number, between 1 and 60; 30 when unknown.
int OutputFrameRate(const MediaInfo& source);

// Width and height (both even) of a picture whose short side is `short_side`
// with the aspect ratio of `width` x `height`.
void ScaleToShortSide(int width, int height, int short_side, int* out_width, int* out_height);

}  // namespace streamgrid
