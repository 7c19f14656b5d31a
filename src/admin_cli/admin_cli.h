#pragma once

// streamgrid-admin: the command line, and the commands it runs against the web
// server's AdminService. main() only calls RunAdminCli.

#include <chrono>
#include <ostream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace streamgrid::admin_cli {

// The tool's exit codes.
inline constexpr int kExitOk = 0;
// A call failed, or the migration ended FAILED.
inline constexpr int kExitFailed = 1;
// The command line is wrong.
inline constexpr int kExitUsage = 2;
// --timeout passed while the migration still runs on the server.
inline constexpr int kExitStillRunning = 3;

enum class Command { kList, kAdd, kRemove, kStatus, kResume };

// "list", "add", "remove", "status", "resume".
std::string_view CommandName(Command command);

struct CliOptions {
  Command command = Command::kList;
  // The web server's admin address, "host:port".
  std::string server;
  bool json = false;
  // Bounds the whole command: a waiting call, the polling after it, and
  // every other call (which get at most RunEnvironment::short_call_timeout).
  std::chrono::milliseconds timeout = std::chrono::hours(1);
  // add: the node's "host:port", and its --id and --weight (empty and 0 let
  // the server choose: the address and 1).
  std::string node_address;
  std::string node_id;
  double weight = 0;
  // remove: the node's id or address.
  std::string node;
  // add, remove, resume: false with --no-wait.
  bool wait = true;
  // --token-file (or $STREAMGRID_ADMIN_TOKEN_FILE): the admin token's file;
  // empty: calls carry no token.
  std::string token_file;
  // --tls-ca: TLS to the admin API, verified with this CA; --tls-cert and
  // --tls-key: a client certificate for a server that requires one.
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
};

// The environment variable naming the token file when --token-file is absent.
inline constexpr char kTokenFileEnv[] = "STREAMGRID_ADMIN_TOKEN_FILE";

// Parses the command line (`args[0]` is the program name). Returns the options
// to run, or the exit code the tool ends with: kExitOk after --help (the help
// written to `out`), kExitUsage on a usage error (CLI11's message written to
// `err`). The tool's options (--json, --timeout, --token-file, --tls-*) go
// before or after the subcommand; --token-file defaults to $kTokenFileEnv.
std::variant<CliOptions, int> ParseCommandLine(const std::vector<std::string>& args,
                                               std::ostream& out, std::ostream& err);

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
