// Prints, as a JSON array on stdout, the argv of the one ffmpeg run that
// StreamGrid's transcoder makes for a source: ProbeMedia(), SelectLadder() and
// BuildLadderCommand() as the worker calls them. `./dev bench` runs that argv
// by hand as the "plain ffmpeg" reference of upload -> ready, so the reference
// always encodes the same ladder with the same options.
//
//   ladder_command [--with-thumbnail] [--without-storyboard] SOURCE OUT_DIR
//                  [FFMPEG [FFPROBE]]
//
// Without --with-thumbnail the argv makes the ladder, its DASH + HLS output
// and the storyboard sheet (issue 10's reference: one plain ffmpeg run of the
// ladder; the storyboard is part of what a viewer gets, so the reference
// makes it too); with it, it also writes the thumbnail frames the transcoder
// takes from the same run (thumbnail_at: the middle of the video), i.e.
// exactly the worker's argv. --without-storyboard leaves the sheet out (to
// measure what it costs).

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "transcode/ffmpeg_args.h"
#include "transcode/ladder.h"
#include "transcode/probe.h"
#include "transcode/storyboard.h"

int main(int argc, char** argv) {
  bool with_thumbnail = false;
  bool with_storyboard = true;
  std::vector<const char*> args;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--with-thumbnail") == 0) {
      with_thumbnail = true;
    } else if (std::strcmp(argv[i], "--without-storyboard") == 0) {
      with_storyboard = false;
    } else {
      args.push_back(argv[i]);
    }
  }
  if (args.size() < 2 || args.size() > 4) {
    std::fprintf(stderr,
                 "usage: %s [--with-thumbnail] [--without-storyboard] SOURCE OUT_DIR [FFMPEG "
                 "[FFPROBE]]\n",
                 argv[0]);
    return 2;
  }
  const std::string ffmpeg = args.size() > 2 ? args[2] : "ffmpeg";
  streamgrid::ProbeOptions probe_options;
  if (args.size() > 3) probe_options.ffprobe = args[3];
  absl::StatusOr<streamgrid::MediaInfo> info = streamgrid::ProbeMedia(args[0], probe_options);
  if (!info.ok()) {
    std::fprintf(stderr, "%s: %s\n", args[0], info.status().ToString().c_str());
    return 1;
  }
  const std::vector<streamgrid::Rung> ladder = streamgrid::SelectLadder(*info);
  if (ladder.empty()) {
    std::fprintf(stderr, "%s: no rung of the ladder fits this source\n", args[0]);
    return 1;
  }
  const std::optional<double> thumbnail_at =
      with_thumbnail ? std::optional<double>(info->duration_seconds / 2) : std::nullopt;
  const std::optional<streamgrid::StoryboardLayout> storyboard =
      with_storyboard ? streamgrid::PlanStoryboard(*info) : std::nullopt;
  nlohmann::json argv_json = streamgrid::BuildLadderCommand(ffmpeg, args[0], *info, ladder, args[1],
                                                            thumbnail_at, storyboard);
  std::printf("%s\n", argv_json.dump().c_str());
  return 0;
}
