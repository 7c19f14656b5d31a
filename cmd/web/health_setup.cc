#include "health_setup.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/strings.h"
#include "storage/node_announcement.h"

namespace streamgrid::web {

absl::StatusOr<std::chrono::milliseconds> ParseDurationFlag(std::string_view flag,
                                                            std::string_view value) {
  absl::Duration duration;
  if (!absl::ParseDuration(absl::string_view(value.data(), value.size()), &duration) ||
      duration == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(ToAbsl(flag), " must be a duration such as 500ms, 10s, 1m30s or 2h, got '",
                     ToAbsl(value), "'"));
  }
  if (duration < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(ToAbsl(flag), " must not be negative, got '", ToAbsl(value), "'"));
  }
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(duration));
}

namespace {

CLI::Validator DurationValidator(std::string flag) {
  return CLI::Validator(
      [flag = std::move(flag)](std::string& value) -> std::string {
        absl::StatusOr<std::chrono::milliseconds> parsed = ParseDurationFlag(flag, value);
        return parsed.ok() ? "" : std::string(parsed.status().message());
      },
      "DURATION");
}

}  // namespace

void AddHealthFlags(CLI::App& cli, HealthFlags& flags) {
  cli.add_option("--node-down-after", flags.node_down_after,
                 "a storage node failing every call for this long is down (before that: "
                 "suspect), e.g. 10s (the default), 1m")
      ->check(DurationValidator("--node-down-after"));
  cli.add_option("--node-probe-interval", flags.node_probe_interval,
                 "how often every storage node is probed with a health check, e.g. 1s (the "
                 "default), 500ms")
      ->check(DurationValidator("--node-probe-interval"));
}

absl::StatusOr<HealthSettings> ApplyHealthFlags(const HealthFlags& flags) {
  absl::StatusOr<std::chrono::milliseconds> down_after =
      ParseDurationFlag("--node-down-after", flags.node_down_after);
  if (!down_after.ok()) return down_after.status();
  absl::StatusOr<std::chrono::milliseconds> interval =
      ParseDurationFlag("--node-probe-interval", flags.node_probe_interval);
  if (!interval.ok()) return interval.status();
  if (*interval < std::chrono::milliseconds(10)) {
    return absl::InvalidArgumentError("--node-probe-interval must be at least 10ms");
  }
  return HealthSettings{.node_down_after = *down_after, .node_probe_interval = *interval};
}

std::unique_ptr<NodeMonitor> StartNodeMonitor(Cluster& cluster, const HealthSettings& settings,
                                              etcd::EtcdClient* etcd,
                                              const auth::ClientSecurity& security) {
  NodeMonitorOptions options;
  options.probe_interval = settings.node_probe_interval;
  // Long enough for a busy node to answer, short enough that a round with a
  // hung node does not hold the others' news for long.
  options.probe_timeout =
      std::clamp(settings.node_probe_interval * 2, std::chrono::milliseconds(1000),
                 std::chrono::milliseconds(5000));
  options.security = security;
  if (etcd) {
    options.announced = [etcd]() -> absl::StatusOr<std::vector<std::string>> {
      auto announced = storage::ListNodeAnnouncements(*etcd, "/streamgrid/");
      if (!announced.ok()) return announced.status();
      std::vector<std::string> ids;
      for (const storage::NodeAnnouncement& a : *announced) ids.push_back(a.node_id);
      return ids;
    };
  }
  auto monitor = std::make_unique<NodeMonitor>(cluster, std::move(options));
  monitor->Start();
  spdlog::info("probing storage nodes every {} ms; down after {} ms without an answer",
               settings.node_probe_interval.count(), settings.node_down_after.count());
  return monitor;
}

}  // namespace streamgrid::web
