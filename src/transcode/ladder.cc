#include "transcode/ladder.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace streamgrid {
namespace {

constexpr int kStandardShortSides[] = {1080, 720, 480, 360, 240};

// Reference point of the bitrate curve: 0.8 Mb/s for 640x360 at up to 30 fps.
constexpr double kReferenceBitrate = 800'000;
constexpr double kReferencePixels = 640.0 * 360.0;
// Bits per pixel fall as pictures grow (an exponent below 1): bigger frames
// compress better. 0.8 gives about 1.2 Mb/s at 480p, 2.4 at 720p, 4.6 at 1080p,
// in line with PeerTube's ladder (see /work/shared/NOTES.md).
constexpr double kPixelExponent = 0.8;

int RoundDownToEven(int value) { return std::max(2, value & ~1); }

int RoundToEven(double value) { return std::max(2, static_cast<int>(std::lround(value / 2)) * 2); }

int64_t Bitrate(int width, int height, int fps) {
  double pixels = static_cast<double>(width) * height;
  double bitrate = kReferenceBitrate * std::pow(pixels / kReferencePixels, kPixelExponent);
  // Twice the frames cost far less than twice the bits (consecutive frames are
  // similar), hence the square root; at most the 60 fps we encode.
  if (fps > 30) bitrate *= std::sqrt(std::min(fps, 60) / 30.0);
  // Whole kb/s keep ffmpeg arguments and the stored metadata readable.
  return std::max<int64_t>(1000, std::llround(bitrate / 1000) * 1000);
}

Rung MakeRung(int short_side, int width, int height, int fps) {
  Rung rung;
  rung.name = absl::StrCat(short_side, "p");
  rung.width = width;
  rung.height = height;
  rung.bitrate = Bitrate(width, height, fps);
  rung.maxrate = std::llround(rung.bitrate * 1.07);
  rung.bufsize = std::llround(rung.bitrate * 1.5);
  return rung;
}

}  // namespace

void ScaleToShortSide(int width, int height, int short_side, int* out_width, int* out_height) {
  if (width >= height) {
    *out_height = RoundDownToEven(short_side);
    *out_width = RoundToEven(static_cast<double>(width) * short_side / height);
  } else {
    *out_width = RoundDownToEven(short_side);
    *out_height = RoundToEven(static_cast<double>(height) * short_side / width);
  }
}

int OutputFrameRate(const MediaInfo& source) {
  if (!(source.frame_rate > 0)) return 30;
  return std::clamp(static_cast<int>(std::lround(source.frame_rate)), 1, 60);
}

std::vector<Rung> SelectLadder(const MediaInfo& source) {
  int fps = OutputFrameRate(source);
  int source_short = std::min(source.width, source.height);
  std::vector<Rung> ladder;
  for (int short_side : kStandardShortSides) {
    if (short_side > source_short) continue;
    int width, height;
    ScaleToShortSide(source.width, source.height, short_side, &width, &height);
    ladder.push_back(MakeRung(short_side, width, height, fps));
  }
  if (ladder.empty()) {
    // Too small for any standard size: keep it as it is rather than upscale.
    int width = RoundDownToEven(source.width);
    int height = RoundDownToEven(source.height);
    ladder.push_back(MakeRung(std::min(width, height), width, height, fps));
  }
  return ladder;
}

}  // namespace streamgrid
