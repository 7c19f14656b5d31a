#include "admin_cli/command_line.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>

namespace streamgrid::admin_cli {
namespace {

constexpr std::string_view kProgram = "streamgrid-admin";

// An empty operand ("") is a mistake to report here, not something for the
// server to refuse.
CLI::Validator NonEmpty() {
  return CLI::Validator(
      [](std::string& value) { return value.empty() ? std::string("must not be empty") : ""; }, "",
      "NONEMPTY");
}

// CLI11's Range lets NaN through, since every comparison with NaN is false.
CLI::Validator Finite() {
  return CLI::Validator(
      [](std::string& value) {
        double number = 0;
        if (CLI::detail::lexical_cast(value, number) && !std::isfinite(number)) {
          return "must be a finite number, got " + value;
        }
        return std::string();
      },
      "", "FINITE");
}

}  // namespace

std::string_view CommandName(Command command) {
  switch (command) {
    case Command::kList:
      return "list";
    case Command::kAdd:
      return "add";
    case Command::kRemove:
      return "remove";
    case Command::kStatus:
      return "status";
    case Command::kResume:
      return "resume";
  }
  return "?";
}

std::variant<CliOptions, int> ParseCommandLine(const std::vector<std::string>& args,
                                               std::ostream& out, std::ostream& err) {
  CliOptions options;
  double timeout_seconds = 3600;
  bool no_wait = false;

  CLI::App app{
      "StreamGrid cluster administration: storage nodes and the data migrations "
      "that adding or removing them starts.",
      std::string(kProgram)};
  // Options of the tool may also follow the subcommand.
  app.fallthrough();
  app.require_subcommand(1);
  app.add_flag("--json", options.json, "print one JSON document on stdout instead of text");
  app.add_option("--timeout", timeout_seconds,
                 "seconds to wait for a migration; also bounds every call")
      ->check(Finite())
      ->check(CLI::Range(0.001, 1e7))
      ->capture_default_str();
  app.add_option("--token-file", options.token_file,
                 "file holding the admin token (the web server's --admin-token-file)")
      ->envname(kTokenFileEnv);
  app.add_option("--tls-ca", options.tls_ca,
                 "connect over TLS, verifying the server with this CA certificate (PEM)");
  app.add_option("--tls-cert", options.tls_cert,
                 "client certificate (PEM) for a server that requires one (with --tls-key)");
  app.add_option("--tls-key", options.tls_key, "the client certificate's private key (PEM)");

  const auto add_server = [&](CLI::App* command) {
    command->add_option("server", options.server, "the web server's admin address HOST:PORT")
        ->required()
        ->check(NonEmpty());
  };
  const auto add_no_wait = [&](CLI::App* command) {
    command->add_flag("--no-wait", no_wait,
                      "answer once the migration started, without waiting for it");
  };

  CLI::App* list = app.add_subcommand(
      "list", "list the storage nodes: health (up, suspect, down, since when), usage, shares");
  add_server(list);

  CLI::App* add = app.add_subcommand("add", "add a storage node and migrate its share to it");
  add_server(add);
  add->add_option("node-address", options.node_address,
                  "HOST:PORT of a running streamgrid-storage, or the id of one that announces "
                  "itself in etcd (listed as available)")
      ->required()
      ->check(NonEmpty());
  add->add_option("--id", options.node_id,
                  "the node's id (default: the id it announces in etcd, else its address)");
  add->add_option("--weight", options.weight, "relative capacity (default 1)")
      ->check(Finite())
      ->check(CLI::NonNegativeNumber);
  add_no_wait(add);

  CLI::App* remove =
      app.add_subcommand("remove", "migrate a storage node's files away, then remove it");
  add_server(remove);
  remove->add_option("node", options.node, "the node's id or address")
      ->required()
      ->check(NonEmpty());
  add_no_wait(remove);

  CLI::App* status = app.add_subcommand(
      "status", "show the current or last migration, the cluster and what self-repair has done");
  add_server(status);

  CLI::App* resume = app.add_subcommand("resume", "restart a migration that failed");
  add_server(resume);
  add_no_wait(resume);

  std::vector<const char*> argv;
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e, out, err) == 0 ? kExitOk : kExitUsage;
  }

  if (add->parsed()) {
    options.command = Command::kAdd;
  } else if (remove->parsed()) {
    options.command = Command::kRemove;
  } else if (status->parsed()) {
    options.command = Command::kStatus;
  } else if (resume->parsed()) {
    options.command = Command::kResume;
  } else {
    options.command = Command::kList;
  }
  options.wait = !no_wait;
  options.timeout = std::max(std::chrono::milliseconds(1),
                             std::chrono::milliseconds(std::llround(timeout_seconds * 1000)));
  return options;
}

}  // namespace streamgrid::admin_cli
