#include "repair_setup.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace streamgrid::web {
namespace {

absl::StatusOr<std::chrono::milliseconds> ParseRepairDuration(const std::string& flag,
                                                              const std::string& value) {
  absl::Duration duration;
  if (!absl::ParseDuration(value, &duration) || duration == absl::InfiniteDuration() ||
      duration < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " must be a duration such as 30s, 10m or 0 (off), got '", value, "'"));
  }
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(duration));
}

CLI::Validator RepairDurationValidator(std::string flag) {
  return CLI::Validator(
      [flag = std::move(flag)](std::string& value) -> std::string {
        absl::StatusOr<std::chrono::milliseconds> parsed = ParseRepairDuration(flag, value);
        return parsed.ok() ? "" : std::string(parsed.status().message());
      },
      "DURATION");
}

}  // namespace

void AddRepairFlags(CLI::App& cli, RepairFlags& flags) {
  cli.add_option("--repair-after", flags.repair_after,
                 "a storage node down this long is taken out and its files re-replicated from "
                 "the surviving copies; it is put back when it answers again (default 10m; 0: "
                 "never)")
      ->check(RepairDurationValidator("--repair-after"));
  cli.add_option("--anti-entropy-interval", flags.anti_entropy_interval,
                 "between passes comparing every partition's copies on its owners and "
                 "restoring missing or differing ones (default 10m; 0: no periodic passes, "
                 "restarted nodes and damaged copies are still repaired)")
      ->check(RepairDurationValidator("--anti-entropy-interval"));
  cli.add_option("--repair-bytes-per-second", flags.repair_bytes_per_second,
                 "bandwidth limit of repair copies: anti-entropy, damaged copies, and the "
                 "migrations re-replicating a down node or putting it back (0: none)");
}

absl::StatusOr<repair::RepairOptions> ApplyRepairFlags(const RepairFlags& flags) {
  absl::StatusOr<std::chrono::milliseconds> after =
      ParseRepairDuration("--repair-after", flags.repair_after);
  if (!after.ok()) return after.status();
  absl::StatusOr<std::chrono::milliseconds> interval =
      ParseRepairDuration("--anti-entropy-interval", flags.anti_entropy_interval);
  if (!interval.ok()) return interval.status();
  return repair::RepairOptions{.repair_after = *after,
                               .anti_entropy_interval = *interval,
                               .bytes_per_second = flags.repair_bytes_per_second};
}

std::unique_ptr<repair::RepairLoop> StartRepairLoop(Cluster& cluster, MembershipChanges& membership,
                                                    MigrationCoordinator* coordinator,
                                                    repair::RepairStats& stats,
                                                    const repair::RepairOptions& options) {
  auto loop =
      std::make_unique<repair::RepairLoop>(cluster, membership, coordinator, stats, options);
  loop->Start();
  spdlog::info("self-repair: re-replication after {} ms down, anti-entropy every {} ms",
               options.repair_after.count(), options.anti_entropy_interval.count());
  return loop;
}

}  // namespace streamgrid::web
