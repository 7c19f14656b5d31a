#pragma once

// The transcoding side of streamgrid-web: the worker pool and, when several
// servers share etcd, the job claims that keep them from running a job twice.

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "content/video_content_service.h"
#include "etcd/etcd_client.h"
#include "metadata/video_metadata_service.h"
#include "transcode/etcd_job_claims.h"
#include "transcode/media_policy.h"
#include "transcode/transcode_worker_pool.h"

namespace streamgrid::web {

struct TranscodingFlags {
  int workers = 1;
  std::filesystem::path work_dir;
  std::string server_id;
  std::chrono::seconds lease_ttl{10};
  std::chrono::milliseconds rescan_interval{2000};
  TranscodeOptions transcode;  // limits and time limit (ApplyMediaFlags)
  int publish_nice = TranscodeWorkerPoolOptions{}.publish_nice;  // --transcode-store-nice
  std::function<void(const TranscodeJobTiming&)> on_job_done;    // metrics
};

// The flags capping what one upload may cost (see README, "Accepted media").
struct MediaFlags {
  double max_video_duration_s = MediaLimits{}.max_duration_seconds;
  std::string max_video_resolution = "8192x4320";
  int max_streams = MediaLimits{}.max_streams;
  double transcode_time_factor = 30;
  double transcode_time_floor_s = 600;
};

// Adds --max-video-duration, --max-video-resolution, --max-streams,
// --transcode-time-factor and --transcode-time-floor to `cli`, stored in `flags`.
void AddMediaFlags(CLI::App& cli, MediaFlags& flags);

// The upload limits and the transcode limits `flags` ask for; INVALID_ARGUMENT
// naming the flag when one is malformed.
absl::Status ApplyMediaFlags(const MediaFlags& flags, MediaLimits* limits,
                             TranscodeOptions* transcode);

// The pool, not yet started, and the claims it uses. Destroying it stops the
// pool before the claims go (which revokes their lease).
struct Transcoding {
  std::unique_ptr<EtcdJobClaims> claims;  // null: this server alone runs jobs
  std::unique_ptr<TranscodeWorkerPool> pool;
};

// Without `etcd` (SQLite metadata): a pool with in-process claims and no
// rescan, the single-server behaviour. With it: claims in etcd under
// flags.server_id and a rescan every flags.rescan_interval. Fails on invalid
// flags (empty server id, TTL below 2 s).
absl::StatusOr<Transcoding> MakeTranscoding(VideoMetadataService& metadata,
                                            VideoContentService& content, etcd::EtcdClient* etcd,
                                            const TranscodingFlags& flags);

// "<hostname>:<port>", or "<hostname>:<8 random hex digits>" when the port is
// 0 (picked at start, so not known yet).
std::string DefaultServerId(uint16_t http_port);

// Puts "[server <id>]" into every later log line.
void LogAsServer(std::string_view server_id);

}  // namespace streamgrid::web
