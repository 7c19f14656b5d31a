#include "probe_setup.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <system_error>

#include "transcode/probe.h"

namespace streamgrid::web {

void AddProbeFlags(CLI::App& cli, ProbeFlags& flags) {
  cli.add_option("--probe-helper", flags.helper,
                 "the streamgrid-probe program that describes uploads (default: the one next "
                 "to this program; 'none' runs ffprobe for each upload instead)");
  cli.add_option("--probe-helpers", flags.helpers,
                 "probe helper processes, i.e. uploads described at once")
      ->check(CLI::Range(1, 16));
}

ProbeHelpers::ProbeHelpers(const ProbeFlags& flags) {
  if (flags.helper == "none") {
    spdlog::info("uploads are described by ffprobe (--probe-helper none)");
    return;
  }
  std::filesystem::path program = flags.helper;
  if (program.empty()) {
    std::error_code ec;
    const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) program = self.parent_path() / "streamgrid-probe";
  }
  absl::StatusOr<std::unique_ptr<probe::ProbeHelperPool>> pool =
      probe::ProbeHelperPool::Create({.program = program, .helpers = flags.helpers});
  if (!pool.ok()) {
    // Explicitly named: the operator meant it, so say it loudly.
    auto log = flags.helper.empty() ? spdlog::level::info : spdlog::level::warn;
    spdlog::log(log, "no probe helper ({}); uploads are described by ffprobe",
                pool.status().ToString());
    return;
  }
  pool_ = *std::move(pool);
  SetDefaultProbeHelper(pool_.get());
  spdlog::info("uploads are described by {} ({} helpers)", program.string(), flags.helpers);
}

ProbeHelpers::~ProbeHelpers() {
  if (pool_ != nullptr) SetDefaultProbeHelper(nullptr);
}

}  // namespace streamgrid::web
