#include "transcode/ffmpeg_args.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace streamgrid {
namespace {

constexpr int kThumbnailHeight = 360;
// Frames the thumbnail filter compares to pick a representative one.
constexpr int kThumbnailCandidates = 50;

// "file:" keeps ffmpeg from reading a protocol into a path that contains a colon.
std::string FileUrl(const std::filesystem::path& path) { return "file:" + path.string(); }

// "[0:v:0]fps=30,split=3[s0][s1][s2];[s0]scale=1280:720,...[v0];..."
std::string LadderFilterGraph(const std::vector<Rung>& ladder, int fps) {
  // The fps filter makes variable-frame-rate input constant before anything is
  // encoded, so every rung has the same frame timing and keyframes line up.
  std::string graph = absl::StrCat("[0:v:0]fps=", fps);
  size_t n = ladder.size();
  if (n > 1) {
    absl::StrAppend(&graph, ",split=", n);
    for (size_t i = 0; i < n; ++i) absl::StrAppend(&graph, "[s", i, "]");
  }
  for (size_t i = 0; i < n; ++i) {
    const Rung& rung = ladder[i];
    if (n > 1) absl::StrAppend(&graph, ";[s", i, "]");
    else absl::StrAppend(&graph, ",");
    // Exact sizes (not -2) so the stored rendition metadata matches the files;
    // setsar=1 because the sizes are already in square display pixels.
    absl::StrAppend(&graph, "scale=", rung.width, ":", rung.height,
                    ",setsar=1,format=yuv420p[v", i, "]");
  }
  return graph;
}

}  // namespace

std::vector<std::string> BuildLadderCommand(const std::string& ffmpeg,
                                            const std::filesystem::path& source,
                                            const MediaInfo& info, const std::vector<Rung>& ladder,
                                            const std::filesystem::path& out_dir) {
  int fps = OutputFrameRate(info);
  std::vector<std::string> args = {
      ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-nostats",
      "-progress", "pipe:1", "-y", "-i", FileUrl(source),
      "-filter_complex", LadderFilterGraph(ladder, fps)};
  for (size_t i = 0; i < ladder.size(); ++i) {
    args.insert(args.end(), {"-map", absl::StrCat("[v", i, "]")});
  }
  if (info.has_audio) args.insert(args.end(), {"-map", "0:a:0?"});

  args.insert(args.end(), {"-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high",
                           "-pix_fmt", "yuv420p"});
  for (size_t i = 0; i < ladder.size(); ++i) {
    const Rung& rung = ladder[i];
    args.insert(args.end(), {absl::StrCat("-b:v:", i), absl::StrCat(rung.bitrate),
                             absl::StrCat("-maxrate:v:", i), absl::StrCat(rung.maxrate),
                             absl::StrCat("-bufsize:v:", i), absl::StrCat(rung.bufsize)});
  }
  // Keyframes by time rather than frame count, and no extra ones at scene cuts,
  // so that segments of every rung start at the same instants (players switch
  // rungs at segment boundaries).
  args.insert(args.end(),
              {"-force_key_frames", absl::StrCat("expr:gte(t,n_forced*", kKeyframeIntervalSeconds,
                                                 ")"),
               "-sc_threshold", "0"});
  if (info.has_audio) {
    // Stereo AAC at 48 kHz plays everywhere; multichannel AAC trips some HLS
    // players.
    args.insert(args.end(), {"-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "48000"});
  }
  // Source tags and chapters have no place in the renditions; the muxing queue
  // is raised because audio and the split video can start far apart.
  args.insert(args.end(), {"-map_metadata", "-1", "-map_chapters", "-1",
                           "-max_muxing_queue_size", "4096"});

  args.insert(args.end(),
              {"-f", "dash", "-adaptation_sets",
               info.has_audio ? "id=0,streams=v id=1,streams=a" : "id=0,streams=v",
               "-seg_duration", absl::StrCat(kSegmentSeconds), "-use_template", "1",
               "-use_timeline", "1", "-hls_playlist", "1", "-hls_master_name",
               std::string(kHlsMasterName), "-init_seg_name", "init-$RepresentationID$.m4s",
               "-media_seg_name", "chunk-$RepresentationID$-$Number%05d$.m4s",
               FileUrl(out_dir / kDashManifestName)});
  return args;
}

void ThumbnailSize(const MediaInfo& info, int* width, int* height) {
  int target = std::min(kThumbnailHeight, info.height);
  *height = std::max(2, target & ~1);
  double scaled = static_cast<double>(info.width) * *height / info.height;
  *width = std::max(2, static_cast<int>(std::lround(scaled / 2)) * 2);
}

std::vector<std::string> BuildThumbnailCommand(const std::string& ffmpeg,
                                               const std::filesystem::path& source,
                                               const MediaInfo& info, double seek_seconds,
                                               const std::filesystem::path& out_dir) {
  int width, height;
  ThumbnailSize(info, &width, &height);
  // Scale before picking: the thumbnail filter holds all its candidate frames,
  // which at source size could be hundreds of megabytes for 4K.
  std::string filter = absl::StrCat("scale=", width, ":", height, ",setsar=1,thumbnail=",
                                    kThumbnailCandidates);
  return {ffmpeg,
          "-nostdin",
          "-hide_banner",
          "-loglevel",
          "error",
          // Progress output only serves the caller's stall detection.
          "-nostats",
          "-progress",
          "pipe:1",
          "-y",
          "-ss",
          absl::StrFormat("%.3f", std::max(0.0, seek_seconds)),
          "-i",
          FileUrl(source),
          "-map",
          "0:v:0",
          "-vf",
          filter,
          "-frames:v",
          "1",
          "-q:v",
          "3",
          "-map_metadata",
          "-1",
          FileUrl(out_dir / kThumbnailName)};
}

}  // namespace streamgrid
