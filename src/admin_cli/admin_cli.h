#pragma once

// streamgrid-admin: the command line, and the commands it runs against the web
// server's AdminService. main() only calls RunAdminCli.

#include <chrono>
#include <ostream>

#include "admin_cli/command_line.h"

namespace streamgrid::admin_cli {

// Where a run writes, and how it waits. The defaults are the tool's.
struct RunEnvironment {
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  // Draw a progress line on `err` while a migration runs (a terminal, and
  // not --json; RunCommand checks the latter), fitting in `terminal_width`.
  bool progress = false;
  int terminal_width = 80;
  // The deadline of calls that answer at once (list, status, --no-wait).
  std::chrono::milliseconds short_call_timeout = std::chrono::seconds(10);
  // How often Status is polled while a migration is awaited, and each poll's
  // deadline.
  std::chrono::milliseconds poll_interval = std::chrono::milliseconds(250);
  std::chrono::milliseconds poll_call_timeout = std::chrono::seconds(5);
};

// Runs one parsed command against options.server: results on env.out
// (exactly one JSON document with --json), errors as
// "streamgrid-admin: <command> failed: <CODE>: <message>" on env.err (with a
// hint about --token-file when the server refuses the token). Returns the
// exit code (kExitOk, kExitFailed or kExitStillRunning; kExitUsage when the
// token or TLS files cannot be read).
int RunCommand(const CliOptions& options, const RunEnvironment& env);

// The whole tool on the process's argv, stdout and stderr; draws progress when
// stderr is a terminal. Returns the exit code.
int RunAdminCli(int argc, char** argv);

}  // namespace streamgrid::admin_cli
