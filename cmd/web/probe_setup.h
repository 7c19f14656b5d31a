#pragma once

// The web server's probe helpers (--probe-helper, --probe-helpers): long-lived
// streamgrid-probe processes that describe uploads in place of one ffprobe
// run each.

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "probe/probe_helper_pool.h"

namespace streamgrid::web {

struct ProbeFlags {
  std::string helper;  // empty: streamgrid-probe next to this program; "none": ffprobe
  int helpers = 2;
};

void AddProbeFlags(CLI::App& cli, ProbeFlags& flags);

// Starts the helpers named by `flags` and makes them ProbeMedia()'s default
// until destroyed. Without them (--probe-helper none, or the program is
// missing or cannot start: logged) every probe runs ffprobe, as before.
class ProbeHelpers {
 public:
  explicit ProbeHelpers(const ProbeFlags& flags);
  ~ProbeHelpers();
  ProbeHelpers(const ProbeHelpers&) = delete;
  ProbeHelpers& operator=(const ProbeHelpers&) = delete;

 private:
  std::unique_ptr<probe::ProbeHelperPool> pool_;
};

}  // namespace streamgrid::web
