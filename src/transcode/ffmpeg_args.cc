#include "transcode/ffmpeg_args.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <numeric>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "transcode/media_policy.h"

namespace streamgrid {
namespace {

constexpr int kThumbnailHeight = 360;
// Frames the thumbnail filter compares to pick a representative one.
constexpr int kThumbnailCandidates = 50;
// setdar turns its ratio into a fraction with terms up to this; its default of
// 100 would approximate ratios like 854/481.
constexpr int kMaxAspectTerm = 1'000'000;

// "file:" keeps ffmpeg from reading a protocol into a path that contains a colon.
std::string FileUrl(const std::filesystem::path& path) { return "file:" + path.string(); }

void Append(std::vector<std::string>& args, std::initializer_list<std::string> more) {
  args.insert(args.end(), more);
}

// "-i SOURCE" behind the input whitelists (media_policy.h): every command
// reads the upload through here.
void AppendInput(std::vector<std::string>& args, const std::filesystem::path& source,
                 const MediaInfo& info) {
  for (std::string& option : InputSafetyOptions(info.format_name)) {
    args.push_back(std::move(option));
  }
  Append(args, {"-i", FileUrl(source)});
}

// The start of every command: quiet except for errors, which become our error
// messages, and machine-readable progress on stdout instead of a status line.
std::vector<std::string> CommonArgs(const std::string& ffmpeg) {
  return {ffmpeg,     "-nostdin",  "-hide_banner", "-loglevel", "error",
          "-nostats", "-progress", "pipe:1",       "-y"};
}

// "[0:v:0]fps=30,split=3[s0][s1][s2];[s0]scale=1280:720,...[v0];..." plus, with
// a thumbnail, one more branch "[s3]setpts=...,thumbnail=50[thumb]" (or, when a
// rung has the thumbnail's size, "[s2]scale=640:360,split=2[r2][tsrc];..." and
// the branch starts from "[tsrc]"), and with a storyboard one more branch
// "[s4]setpts=...;[sbtiles]fps=1/2,scale=160:90,...,tile=10x3...[storyboard]".
std::string LadderFilterGraph(const MediaInfo& info, const std::vector<Rung>& ladder,
                              std::optional<double> thumbnail_at,
                              const std::optional<StoryboardLayout>& storyboard) {
  // Every rung gets exactly the source's display aspect ratio: even rounding
  // leaves e.g. 854x480 a hair off 16:9, and the dash muxer refuses an
  // adaptation set whose aspect ratios differ. setdar makes up the difference
  // with a sample aspect ratio a hair off 1:1, which players apply.
  int divisor = std::gcd(info.width, info.height);
  std::string dar = absl::StrCat("setdar=dar=", info.width / divisor, "/", info.height / divisor,
                                 ":max=", kMaxAspectTerm);
  // The fps filter makes variable-frame-rate input constant before anything is
  // encoded, so every rung has the same frame timing and keyframes line up.
  std::string graph = absl::StrCat("[0:v:0]fps=", OutputFrameRate(info));
  size_t n = ladder.size();
  // The thumbnail is picked among frames scaled to ThumbnailSize(). When a rung
  // has exactly that size (the 360-line rung of most sources), its scaled
  // frames serve both: the thumbnail branch then scales nothing and the main
  // split has no extra output (about 0.1-0.2 CPU-s less per 5 s of 1080p).
  int thumb_width = 0, thumb_height = 0;
  std::optional<size_t> thumb_rung;
  if (thumbnail_at) {
    ThumbnailSize(info, &thumb_width, &thumb_height);
    for (size_t i = 0; i < n; ++i) {
      if (ladder[i].width == thumb_width && ladder[i].height == thumb_height) {
        thumb_rung = i;
        break;
      }
    }
  }
  const size_t thumb_branches = thumbnail_at && !thumb_rung ? 1 : 0;
  size_t branches = n + thumb_branches + (storyboard ? 1 : 0);
  if (branches > 1) {
    absl::StrAppend(&graph, ",split=", branches);
    for (size_t i = 0; i < branches; ++i) absl::StrAppend(&graph, "[s", i, "]");
  }
  for (size_t i = 0; i < n; ++i) {
    const Rung& rung = ladder[i];
    if (branches > 1) {
      absl::StrAppend(&graph, ";[s", i, "]");
    } else {
      absl::StrAppend(&graph, ",");
    }
    // Exact sizes (not -2) so the stored rendition metadata matches the files.
    absl::StrAppend(&graph, "scale=", rung.width, ":", rung.height, ",");
    if (thumb_rung == i) absl::StrAppend(&graph, "split=2[r", i, "][tsrc];[r", i, "]");
    absl::StrAppend(&graph, dar, ",format=yuv420p[v", i, "]");
  }
  if (thumbnail_at) {
    // The same pick as BuildThumbnailCommand() makes, from the frames this run
    // decodes anyway: the candidates from `thumbnail_at` seconds after the first
    // frame; the two trims end that branch after them, so the split stops
    // feeding it. ffmpeg reports no progress until every output has written
    // something, so the first frame goes out at once, ahead of the pick.
    std::string scale = thumb_rung
                            ? std::string("setsar=1")
                            : absl::StrCat("scale=", thumb_width, ":", thumb_height, ",setsar=1");
    std::string source = thumb_rung ? "[tsrc]" : absl::StrCat("[s", n, "]");
    absl::StrAppend(&graph, ";", source, "setpts=PTS-STARTPTS,split=2[tfirst][tpick];",
                    "[tfirst]trim=end_frame=1,", scale, "[t0];",
                    "[tpick]trim=start=", absl::StrFormat("%.3f", std::max(0.0, *thumbnail_at)),
                    ",trim=end_frame=", kThumbnailCandidates, ",", scale,
                    ",thumbnail=", kThumbnailCandidates, "[t1];",
                    "[t0][t1]concat=n=2:v=1:a=0[thumb]");
  }
  if (storyboard) {
    // A frame every interval (the fps filter keeps one in so many and drops
    // the rest before anything is scaled), tiled into one sheet that the tile
    // filter emits when it is full or the input ends. As for the thumbnail,
    // a first frame goes out at once (the first frame on a sheet-sized
    // canvas: concat wants one size), or ffmpeg would report no progress
    // until the end. It is split off ahead of the fps filter, which holds
    // its first frame until half an interval later. setpts numbers the two
    // frames, which would otherwise share a timestamp.
    const StoryboardLayout& s = *storyboard;
    const std::string tile_scale =
        absl::StrCat("scale=", s.tile_width, ":", s.tile_height, ",setsar=1");
    absl::StrAppend(&graph, ";[s", n + thumb_branches,
                    "]setpts=PTS-STARTPTS,split=2[sbfirst][sbtiles];", "[sbfirst]trim=end_frame=1,",
                    tile_scale, ",pad=", s.sheet_width(), ":", s.sheet_height(), "[sb0];",
                    "[sbtiles]fps=1/", s.interval_seconds, ",", tile_scale, ",tile=", s.columns,
                    "x", s.rows, "[sb1];", "[sb0][sb1]concat=n=2:v=1:a=0,setpts=N/TB[storyboard]");
  }
  return graph;
}

}  // namespace

std::vector<std::string> BuildLadderCommand(const std::string& ffmpeg,
                                            const std::filesystem::path& source,
                                            const MediaInfo& info, const std::vector<Rung>& ladder,
                                            const std::filesystem::path& out_dir,
                                            std::optional<double> thumbnail_at,
                                            const std::optional<StoryboardLayout>& storyboard) {
  std::vector<std::string> args = CommonArgs(ffmpeg);
  AppendInput(args, source, info);
  Append(args, {"-filter_complex", LadderFilterGraph(info, ladder, thumbnail_at, storyboard)});
  for (size_t i = 0; i < ladder.size(); ++i) Append(args, {"-map", absl::StrCat("[v", i, "]")});
  if (info.has_audio) Append(args, {"-map", "0:a:0?"});

  Append(args, {"-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high"});
  Append(args, {"-pix_fmt", "yuv420p"});
  for (size_t i = 0; i < ladder.size(); ++i) {
    const Rung& rung = ladder[i];
    Append(args, {absl::StrCat("-b:v:", i), absl::StrCat(rung.bitrate)});
    Append(args, {absl::StrCat("-maxrate:v:", i), absl::StrCat(rung.maxrate)});
    Append(args, {absl::StrCat("-bufsize:v:", i), absl::StrCat(rung.bufsize)});
  }
  // Keyframes by time rather than frame count, and no extra ones at scene cuts,
  // so that segments of every rung start at the same instants (players switch
  // rungs at segment boundaries).
  Append(args, {"-force_key_frames",
                absl::StrCat("expr:gte(t,n_forced*", kKeyframeIntervalSeconds, ")")});
  Append(args, {"-sc_threshold", "0"});
  if (info.has_audio) {
    // Stereo AAC at 48 kHz plays everywhere; multichannel AAC trips some HLS
    // players.
    Append(args, {"-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "48000"});
  }
  // Source tags and chapters have no place in the renditions; the muxing queue
  // is raised because audio and the split video can start far apart.
  Append(args, {"-map_metadata", "-1", "-map_chapters", "-1"});
  Append(args, {"-max_muxing_queue_size", "4096"});

  // DASH, plus HLS playlists over the same fMP4 segments.
  Append(args, {"-f", "dash", "-seg_duration", absl::StrCat(kSegmentSeconds)});
  Append(args,
         {"-adaptation_sets", info.has_audio ? "id=0,streams=v id=1,streams=a" : "id=0,streams=v"});
  Append(args, {"-use_template", "1", "-use_timeline", "1"});
  Append(args, {"-hls_playlist", "1", "-hls_master_name", std::string(kHlsMasterName)});
  Append(args, {"-init_seg_name", "init-$RepresentationID$.m4s"});
  Append(args, {"-media_seg_name", "chunk-$RepresentationID$-$Number%05d$.m4s"});
  args.push_back(FileUrl(out_dir / kDashManifestName));

  if (thumbnail_at) {
    // A second output of the same run: two JPEGs, numbered in order. Frames
    // pass as they are: a constant rate would repeat the first frame to fill
    // the time up to the pick.
    Append(args, {"-map", "[thumb]", "-fps_mode", "passthrough", "-frames:v", "2"});
    Append(args, {"-q:v", "3", "-map_metadata", "-1"});
    args.push_back(FileUrl(out_dir / "thumbnail-%d.jpg"));
  }
  if (storyboard) {
    // A third output: the blank sheet, then the sheet (any later, partial
    // one, should the video run longer than probed, is not written).
    Append(args, {"-map", "[storyboard]", "-fps_mode", "passthrough", "-frames:v", "2"});
    Append(args, {"-q:v", "5", "-map_metadata", "-1"});
    args.push_back(FileUrl(out_dir / "storyboard-%d.jpg"));
  }
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
  std::vector<std::string> args = CommonArgs(ffmpeg);
  // Seeking before -i jumps to the nearest keyframe and decodes from there.
  Append(args, {"-ss", absl::StrFormat("%.3f", std::max(0.0, seek_seconds))});
  AppendInput(args, source, info);
  Append(args, {"-map", "0:v:0"});
  // Scale before picking: the thumbnail filter holds all its candidate frames,
  // which at source size could be hundreds of megabytes for 4K.
  Append(args, {"-vf", absl::StrCat("scale=", width, ":", height,
                                    ",setsar=1,thumbnail=", kThumbnailCandidates)});
  Append(args, {"-frames:v", "1", "-q:v", "3", "-map_metadata", "-1"});
  args.push_back(FileUrl(out_dir / kThumbnailName));
  return args;
}

}  // namespace streamgrid
