#include "admin_cli/admin_cli.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <optional>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "admin_cli/admin_client.h"
#include "admin_cli/format.h"
#include "admin_cli/progress.h"
#include "auth/token.h"
#include "google/protobuf/util/message_differencer.h"

namespace streamgrid::admin_cli {
namespace {

using Clock = std::chrono::system_clock;

constexpr std::string_view kProgram = "streamgrid-admin";

bool Running(const v1::Migration& migration) {
  return migration.state() != v1::MIGRATION_STATE_DONE &&
         migration.state() != v1::MIGRATION_STATE_FAILED;
}

// Whether `a` and `b` are the same migration, maybe at different points.
bool SameMigration(const v1::Migration& a, const v1::Migration& b) {
  return a.started_unix_ms() == b.started_unix_ms() && a.description() == b.description() &&
         a.from_version() == b.from_version() && a.to_version() == b.to_version();
}

// One command's run.
class Runner {
 public:
  Runner(const CliOptions& options, const RunEnvironment& env, const auth::ClientSecurity& security)
      : options_(options),
        env_(env),
        out_(*env.out),
        err_(*env.err),
        client_(options.server, security),
        deadline_(Clock::now() + options.timeout),
        display_(err_, env.progress && !options.json, env.terminal_width) {}

  int Run() {
    switch (options_.command) {
      case Command::kList:
        return List();
      case Command::kStatus:
        return ShowStatus();
      case Command::kAdd:
      case Command::kRemove:
      case Command::kResume:
        return ChangeMembership();
    }
    return kExitFailed;
  }

 private:
  // A deadline for a call that answers at once, within --timeout.
  Deadline Soon(std::chrono::milliseconds timeout) const {
    return std::min(deadline_, Clock::now() + timeout);
  }

  std::string_view Name() const { return CommandName(options_.command); }

  int Fail(const absl::Status& status) {
    display_.Clear();
    err_ << kProgram << ": " << Name() << " failed: " << absl::StatusCodeToString(status.code())
         << ": " << status.message() << "\n";
    // gRPC reports a plaintext client at a TLS server as a closed socket, and
    // a certificate it cannot verify as a failed handshake.
    if (absl::IsUnavailable(status) && (absl::StrContains(status.message(), "Socket closed") ||
                                        absl::StrContains(status.message(), "andshake") ||
                                        absl::StrContains(status.message(), "SSL"))) {
      err_ << kProgram << ": if the admin API uses TLS (--admin-tls-cert), pass --tls-ca with "
           << "the CA that signed its certificate\n";
    }
    if (absl::IsUnauthenticated(status)) {
      err_ << kProgram << ": the admin token was refused or is missing: pass --token-file "
           << "(or set " << kTokenFileEnv << ") with the file the web server's "
           << "--admin-token-file names\n";
    }
    return kExitFailed;
  }

  void PrintJson(const nlohmann::json& document) { out_ << document.dump(2) << "\n"; }

  int List() {
    absl::StatusOr<v1::ListNodesResponse> nodes = client_.ListNodes(Soon(env_.short_call_timeout));
    if (!nodes.ok()) return Fail(nodes.status());
    if (options_.json) {
      PrintJson(NodesToJson(*nodes));
    } else {
      out_ << FormatNodeTable(*nodes);
    }
    return kExitOk;
  }

  int ShowStatus() {
    absl::StatusOr<v1::StatusResponse> status = client_.Status(Soon(env_.short_call_timeout));
    if (!status.ok()) return Fail(status.status());
    if (options_.json) {
      PrintJson(StatusToJson(*status));
    } else {
      out_ << FormatStatus(*status);
    }
    return kExitOk;
  }

  absl::StatusOr<v1::Migration> Call(Deadline deadline) {
    switch (options_.command) {
      case Command::kAdd: {
        v1::AddNodeRequest request;
        request.set_address(options_.node_address);
        request.set_id(options_.node_id);
        request.set_weight(options_.weight);
        request.set_wait(options_.wait);
        return client_.AddNode(request, deadline);
      }
      case Command::kRemove: {
        v1::RemoveNodeRequest request;
        request.set_node(options_.node);
        request.set_wait(options_.wait);
        return client_.RemoveNode(request, deadline);
      }
      default: {
        v1::ResumeMigrationRequest request;
        request.set_wait(options_.wait);
        return client_.ResumeMigration(request, deadline);
      }
    }
  }

  // Whether Status showing `migration` means this command's change took
  // effect: a migration other than the one before it (for resume, one that
  // changed in any way since).
  bool IsOurs(const v1::Migration& migration) const {
    if (!before_.has_value()) return true;
    if (options_.command == Command::kResume) {
      return !google::protobuf::util::MessageDifferencer::Equals(*before_, migration);
    }
    return !SameMigration(*before_, migration);
  }

  int ChangeMembership() {
    // Checks that the server answers (so that UNAVAILABLE later means it went
    // away, or the server's own answer) and notes the migration before ours.
    absl::StatusOr<v1::StatusResponse> before = client_.Status(Soon(env_.short_call_timeout));
    if (!before.ok()) return Fail(before.status());
    if (before->has_migration()) before_ = before->migration();

    if (!options_.wait) {
      absl::StatusOr<v1::Migration> started = Call(Soon(env_.short_call_timeout));
      if (!started.ok()) return Fail(started.status());
      return Report(*started);
    }

    absl::StatusOr<v1::Migration> result;
    {
      StatusPoller poller(client_, env_.poll_interval, env_.poll_call_timeout,
                          [this](const v1::StatusResponse& status) {
                            if (status.has_migration() && IsOurs(status.migration())) {
                              display_.Show(status.migration());
                            }
                          });
      result = Call(deadline_);
    }
    if (result.ok()) return Running(*result) ? AwaitEnd(*result) : Report(*result);
    switch (result.status().code()) {
      case absl::StatusCode::kUnavailable:
      case absl::StatusCode::kCancelled:
        return Reconnect(result.status());
      case absl::StatusCode::kDeadlineExceeded:
        // The server may give up on something of its own before --timeout.
        if (Clock::now() + std::chrono::milliseconds(100) < deadline_) {
          return Fail(result.status());
        }
        return AfterTimeout();
      default:
        return Fail(result.status());
    }
  }

  // Waits out the poll interval, or what is left of --timeout.
  void Pause() {
    const auto left = deadline_ - Clock::now();
    if (left > Clock::duration::zero()) {
      std::this_thread::sleep_for(std::min<Clock::duration>(env_.poll_interval, left));
    }
  }

  // The waiting call ended without an answer: the server went away, or
  // answered UNAVAILABLE itself. Status tells which once the server answers.
  int Reconnect(const absl::Status& call_error) {
    bool announced = false;
    for (;;) {
      absl::StatusOr<v1::StatusResponse> status = client_.Status(Soon(env_.poll_call_timeout));
      if (status.ok()) {
        if (!status->has_migration() || !IsOurs(status->migration())) return Fail(call_error);
        if (Running(status->migration())) {
          display_.Clear();
          err_ << kProgram << ": the " << Name() << " call ended ("
               << absl::StatusCodeToString(call_error.code()) << ": " << call_error.message()
               << "); the migration continues on the server, following it\n";
        }
        return AwaitEnd(status->migration());
      }
      if (!announced) {
        display_.Clear();
        err_ << kProgram << ": lost the connection to " << options_.server << " ("
             << absl::StatusCodeToString(call_error.code()) << ": " << call_error.message()
             << "); waiting for it to come back (a migration that started resumes there)\n";
        announced = true;
      }
      if (Clock::now() >= deadline_) return StillRunning(std::nullopt);
      Pause();
    }
  }

  // Polls Status until `migration` is over, or --timeout passes. Failed polls
  // are retried: the server may be restarting.
  int AwaitEnd(v1::Migration migration) {
    while (Running(migration)) {
      display_.Show(migration);
      if (Clock::now() >= deadline_) return StillRunning(migration);
      Pause();
      absl::StatusOr<v1::StatusResponse> status = client_.Status(Soon(env_.poll_call_timeout));
      if (status.ok() && status->has_migration() && SameMigration(status->migration(), migration)) {
        migration = status->migration();
      }
    }
    return Report(migration);
  }

  // --timeout passed during the waiting call: one last look at the migration.
  int AfterTimeout() {
    absl::StatusOr<v1::StatusResponse> status =
        client_.Status(Clock::now() + env_.poll_call_timeout);
    if (status.ok() && status->has_migration() && IsOurs(status->migration())) {
      if (!Running(status->migration())) return Report(status->migration());
      return StillRunning(status->migration());
    }
    return StillRunning(std::nullopt);
  }

  int StillRunning(const std::optional<v1::Migration>& migration) {
    display_.Clear();
    if (options_.json && migration.has_value()) PrintJson(MigrationToJson(*migration));
    err_ << kProgram << ": " << Name() << ": gave up waiting after "
         << absl::StrFormat("%g", options_.timeout.count() / 1000.0) << " s; the migration";
    if (migration.has_value()) {
      err_ << " (" << migration->description() << ": " << MigrationStateName(migration->state())
           << ", " << migration->partitions_done() << "/" << migration->partitions_total()
           << " partitions)";
    }
    err_ << " continues on the server. Follow it with: " << kProgram << " status "
         << options_.server << "\n";
    return kExitStillRunning;
  }

  std::string DoneWhat(const v1::Migration& migration) const {
    switch (options_.command) {
      case Command::kAdd:
        return "added node " + (options_.node_id.empty()
                                    ? options_.node_address
                                    : options_.node_id + " (" + options_.node_address + ")");
      case Command::kRemove:
        return "removed node " + options_.node;
      default:
        return "migration done (" + migration.description() + ")";
    }
  }

  int Report(const v1::Migration& migration) {
    display_.Clear();
    if (options_.json) PrintJson(MigrationToJson(migration));
    if (migration.state() == v1::MIGRATION_STATE_FAILED) {
      err_ << kProgram << ": " << Name() << " failed: migration \"" << migration.description()
           << "\" failed after " << migration.partitions_done() << "/"
           << migration.partitions_total() << " partitions: " << migration.error() << "\n"
           << kProgram
           << ": the old placement still serves; once the cause is fixed, run: " << kProgram
           << " resume " << options_.server << "\n";
      return kExitFailed;
    }
    if (options_.json) return kExitOk;
    if (migration.state() == v1::MIGRATION_STATE_DONE) {
      out_ << FormatMigrationDone(DoneWhat(migration), migration) << "\n";
    } else {
      out_ << "migration started: " << migration.description() << " ("
           << migration.partitions_total() << " partitions to copy); follow it with: " << kProgram
           << " status " << options_.server << "\n";
    }
    return kExitOk;
  }

  const CliOptions& options_;
  const RunEnvironment& env_;
  std::ostream& out_;
  std::ostream& err_;
  AdminClient client_;
  const Deadline deadline_;
  ProgressDisplay display_;
  // The migration Status showed before the membership call, if any.
  std::optional<v1::Migration> before_;
};

int TerminalWidth(int fd) {
  winsize size{};
  if (ioctl(fd, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

}  // namespace

int RunCommand(const CliOptions& options, const RunEnvironment& env) {
  auth::ClientSecurity security;
  if (!options.token_file.empty()) {
    absl::StatusOr<std::string> token = auth::ReadTokenFile(options.token_file);
    if (!token.ok()) {
      *env.err << kProgram << ": --token-file: " << token.status().message() << "\n";
      return kExitUsage;
    }
    security.token = *std::move(token);
  }
  absl::StatusOr<auth::ClientTls> tls =
      auth::LoadClientTls(options.tls_ca, options.tls_cert, options.tls_key, "--tls-");
  if (!tls.ok()) {
    *env.err << kProgram << ": " << tls.status().message() << "\n";
    return kExitUsage;
  }
  security.tls = *std::move(tls);
  return Runner(options, env, security).Run();
}

int RunAdminCli(int argc, char** argv) {
  std::variant<CliOptions, int> parsed =
      ParseCommandLine(std::vector<std::string>(argv, argv + argc), std::cout, std::cerr);
  if (const int* exit_code = std::get_if<int>(&parsed)) return *exit_code;
  const RunEnvironment env{.out = &std::cout,
                           .err = &std::cerr,
                           .progress = isatty(STDERR_FILENO) == 1,
                           .terminal_width = TerminalWidth(STDERR_FILENO)};
  return RunCommand(std::get<CliOptions>(parsed), env);
}

}  // namespace streamgrid::admin_cli
