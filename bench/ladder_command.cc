// Prints, as a JSON array on stdout, the argv of the one ffmpeg run that
// StreamGrid's transcoder makes for a source: ProbeMedia(), SelectLadder() and
// BuildLadderCommand() exactly as the worker calls them. `./dev bench` runs
// that argv by hand as the "plain ffmpeg" reference of upload -> ready, so the
// reference always encodes the same ladder with the same options.
//
//   ladder_command SOURCE OUT_DIR [FFMPEG [FFPROBE]]

#include <cstdio>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "transcode/ffmpeg_args.h"
#include "transcode/ladder.h"
#include "transcode/probe.h"

int main(int argc, char** argv) {
  if (argc < 3 || argc > 5) {
    std::fprintf(stderr, "usage: %s SOURCE OUT_DIR [FFMPEG [FFPROBE]]\n", argv[0]);
    return 2;
  }
  const std::string ffmpeg = argc > 3 ? argv[3] : "ffmpeg";
  streamgrid::ProbeOptions probe_options;
  if (argc > 4) probe_options.ffprobe = argv[4];
  absl::StatusOr<streamgrid::MediaInfo> info = streamgrid::ProbeMedia(argv[1], probe_options);
  if (!info.ok()) {
    std::fprintf(stderr, "%s: %s\n", argv[1], info.status().ToString().c_str());
    return 1;
  }
  const std::vector<streamgrid::Rung> ladder = streamgrid::SelectLadder(*info);
  if (ladder.empty()) {
    std::fprintf(stderr, "%s: no rung of the ladder fits this source\n", argv[1]);
    return 1;
  }
  nlohmann::json argv_json =
      streamgrid::BuildLadderCommand(ffmpeg, argv[1], *info, ladder, argv[2]);
  std::printf("%s\n", argv_json.dump().c_str());
  return 0;
}
