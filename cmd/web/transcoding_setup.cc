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
  TranscodeWorkerPoolOptions options{.workers = flags.workers, .work_dir = flags.work_dir};
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
