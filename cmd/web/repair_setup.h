#pragma once

// The web server's self-repair flags (--repair-after, --anti-entropy-interval,
// --repair-bytes-per-second) and the repair loop they configure.

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "cluster/cluster.h"
#include "migration/membership_changes.h"
#include "migration/migration_coordinator.h"
#include "repair/repair_loop.h"
#include "repair/repair_stats.h"

namespace streamgrid::web {

struct RepairFlags {
  std::string repair_after = "10m";
  std::string anti_entropy_interval = "10m";
  uint64_t repair_bytes_per_second = 0;
};

// Registers the flags; a duration that does not parse is a usage error.
void AddRepairFlags(CLI::App& cli, RepairFlags& flags);

// The loop's options from the flags; INVALID_ARGUMENT for a bad duration.
absl::StatusOr<repair::RepairOptions> ApplyRepairFlags(const RepairFlags& flags);

// Starts the repair loop of a web server whose content is on the cluster
// (it acts only while this server is the migration runner).
std::unique_ptr<repair::RepairLoop> StartRepairLoop(Cluster& cluster, MembershipChanges& membership,
                                                    MigrationCoordinator* coordinator,
                                                    repair::RepairStats& stats,
                                                    const repair::RepairOptions& options);

}  // namespace streamgrid::web
