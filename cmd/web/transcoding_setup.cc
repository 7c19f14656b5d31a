#include "transcoding_setup.h"

#include <unistd.h>

#include <cstdio>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "spdlog/spdlog.h"

namespace streamgrid::web {

absl::StatusOr<Transcoding> MakeTranscoding(VideoMetadataService& metadata,
                                            VideoContentService& content, etcd::EtcdClient* etcd,
                                            const TranscodingFlags& flags) {
  Transcoding transcoding;
  TranscodeWorkerPoolOptions options{
      .workers = flags.workers, .work_dir = flags.work_dir, .transcode = flags.transcode};
  options.publish_nice = flags.publish_nice;
  options.on_job_done = flags.on_job_done;
  if (etcd != nullptr) {
    absl::StatusOr<std::unique_ptr<EtcdJobClaims>> claims =
        EtcdJobClaims::Create(*etcd, {.server_id = flags.server_id, .lease_ttl = flags.lease_ttl});
    if (!claims.ok()) return claims.status();
    transcoding.claims = *std::move(claims);
    options.claims = transcoding.claims.get();
    // Jobs uploaded through other servers, or left by one that died.
    options.rescan_interval = flags.rescan_interval;
  }
  transcoding.pool = std::make_unique<TranscodeWorkerPool>(metadata, content, std::move(options));
  return transcoding;
}

void AddMediaFlags(CLI::App& cli, MediaFlags& flags) {
  cli.add_option("--max-video-duration", flags.max_video_duration_s,
                 "longest video accepted, in seconds (longer: 413 at upload)")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1e7));
  cli.add_option("--max-video-resolution", flags.max_video_resolution,
                 "largest picture accepted, WIDTHxHEIGHT, either way up (larger: 413 at upload; "
                 "default DCI 8K)")
      ->capture_default_str();
  cli.add_option("--max-streams", flags.max_streams,
                 "most streams (video, audio, subtitles, data) a file may have (more: 413)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  cli.add_option("--transcode-time-factor", flags.transcode_time_factor,
                 "a transcode is stopped and the video failed after FACTOR x its duration + "
                 "--transcode-time-floor seconds (0: no limit)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  cli.add_option("--transcode-time-floor", flags.transcode_time_floor_s,
                 "seconds every transcode may take on top of the factor")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e7));
}

absl::Status ApplyMediaFlags(const MediaFlags& flags, MediaLimits* limits,
                             TranscodeOptions* transcode) {
  limits->max_duration_seconds = flags.max_video_duration_s;
  limits->max_streams = flags.max_streams;
  if (absl::Status s = ParseMaxResolution(flags.max_video_resolution, limits); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--max-video-resolution: ", s.message()));
  }
  transcode->limits = *limits;
  transcode->time_factor = flags.transcode_time_factor;
  transcode->time_floor =
      std::chrono::milliseconds(static_cast<int64_t>(flags.transcode_time_floor_s * 1000));
  return absl::OkStatus();
}

std::string DefaultServerId(uint16_t http_port) {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
    std::snprintf(host, sizeof(host), "streamgrid");
  }
  if (http_port != 0) return absl::StrCat(host, ":", http_port);
  std::random_device random;
  return absl::StrCat(host, ":", absl::StrFormat("%08x", random()));
}

void LogAsServer(std::string_view server_id) {
  // A '%' in the id would start a pattern flag.
  std::string escaped = absl::StrReplaceAll(std::string(server_id), {{"%", "%%"}});
  spdlog::set_pattern(absl::StrCat("[%Y-%m-%d %H:%M:%S.%e] [server ", escaped, "] [%^%l%$] %v"));
}

}  // namespace streamgrid::web
