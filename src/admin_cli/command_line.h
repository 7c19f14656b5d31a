#pragma once

// streamgrid-admin's command line, apart from the gRPC code that runs the
// commands, so that it can be tested and fuzzed on its own.

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

}  // namespace streamgrid::admin_cli
