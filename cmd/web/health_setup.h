#pragma once

// The web server's failure detector flags (--node-down-after,
// --node-probe-interval) and the NodeMonitor they configure.

#include <CLI/CLI.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "auth/grpc_auth.h"
#include "cluster/cluster.h"
#include "cluster/node_monitor.h"
#include "etcd/etcd_client.h"

namespace streamgrid::web {

struct HealthFlags {
  std::string node_down_after = "10s";
  std::string node_probe_interval = "1s";
};

struct HealthSettings {
  std::chrono::milliseconds node_down_after;
  std::chrono::milliseconds node_probe_interval;
};

// A duration flag's value: a number with a unit, or several ("500ms", "10s",
// "1m30s", "2h"), as Go and absl write them. INVALID_ARGUMENT naming `flag`
// for anything else, or a negative duration.
absl::StatusOr<std::chrono::milliseconds> ParseDurationFlag(std::string_view flag,
                                                            std::string_view value);

// Registers the flags; a value that ParseDurationFlag refuses is a usage
// error at parse time.
void AddHealthFlags(CLI::App& cli, HealthFlags& flags);

// The flags' values (INVALID_ARGUMENT for a bad one, or a probe interval
// under 10 ms).
absl::StatusOr<HealthSettings> ApplyHealthFlags(const HealthFlags& flags);

// A started NodeMonitor over `cluster`, probing every
// `settings.node_probe_interval`, also watching the node announcements in
// `etcd` when given (which must outlive the monitor); `security` for the
// channels of nodes outside the placement.
std::unique_ptr<NodeMonitor> StartNodeMonitor(Cluster& cluster, const HealthSettings& settings,
                                              etcd::EtcdClient* etcd,
                                              const auth::ClientSecurity& security);

}  // namespace streamgrid::web
