#include "etcd/testing/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/spawn.h"
#include "common/strings.h"

extern char** environ;

namespace streamgrid::etcd::testing {

using std::chrono::milliseconds;

constexpr size_t kMaxCommandOutput = 4 << 20;

absl::Status ErrnoStatus(int err, std::string_view what) {
  return absl::InternalError(absl::StrCat(ToAbsl(what), ": ", strerror(err)));
}

std::string FindOnPath(const std::string& name) {
  const char* path = getenv("PATH");
  std::string_view rest = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    size_t colon = rest.find(':');
    std::string_view dir = rest.substr(0, colon);
    std::string candidate = absl::StrCat(dir.empty() ? "." : ToAbsl(dir), "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (colon == std::string_view::npos) return "";
    rest.remove_prefix(colon + 1);
  }
}

std::vector<std::string> CleanEnvironment() {
  std::vector<std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view var(*entry);
    bool etcd_var = var.starts_with("ETCD_") || var.starts_with("ETCDCTL_");
    // Needed on architectures etcd does not officially support; shadows no flag.
    if (etcd_var && !var.starts_with("ETCD_UNSUPPORTED_ARCH=")) continue;
    env.emplace_back(var);
  }
  return env;
}

absl::StatusOr<pid_t> ForkExec(const std::string& binary, std::vector<std::string> argv,
                               std::vector<std::string> env, int stdin_fd, int stdout_fd,
                               int stderr_fd) {
  // SpawnChild runs argv[0]; the binary's path stands in for it.
  if (argv.empty()) argv.emplace_back();
  argv[0] = binary;
  SpawnOptions options;
  options.fds = {stdin_fd, stdout_fd, stderr_fd};
  options.env = std::move(env);
  return SpawnChild(argv, options);
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)),
                        ")");
  }
  return absl::StrCat("ended with wait status ", status);
}

std::optional<int> WaitForExit(pid_t pid, Clock::time_point deadline) {
  while (true) {
    int status = 0;
    pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) return status;
    if (done < 0 && errno != EINTR) return -1;  // not our child any more
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(milliseconds(5));
  }
}

absl::StatusOr<CommandResult> RunCommand(const std::string& binary, std::vector<std::string> argv,
                                         std::vector<std::string> env, milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  Fd out_read(out_pipe[0]);
  Fd out_write(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  Fd err_read(err_pipe[0]);
  Fd err_write(err_pipe[1]);
  Fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (null.get() < 0) return ErrnoStatus(errno, "open /dev/null");

  absl::StatusOr<pid_t> pid = ForkExec(binary, std::move(argv), std::move(env), null.get(),
                                       out_write.get(), err_write.get());
  if (!pid.ok()) return pid.status();
  out_write.Reset();
  err_write.Reset();

  CommandResult result;
  bool timed_out = false;
  pollfd fds[2] = {{out_read.get(), POLLIN, 0}, {err_read.get(), POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    milliseconds left = Remaining(deadline);
    if (left.count() == 0) {
      timed_out = true;
      break;
    }
    int ready = ::poll(fds, 2, static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) break;
    for (int k = 0; k < 2; ++k) {
      if (fds[k].fd < 0 || fds[k].revents == 0) continue;
      char buffer[8192];
      ssize_t n = ::read(fds[k].fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        fds[k].fd = -1;  // poll() skips negative descriptors
        continue;
      }
      if (sinks[k]->size() < kMaxCommandOutput) sinks[k]->append(buffer, static_cast<size_t>(n));
    }
  }
  std::optional<int> status;
  if (!timed_out) {
    status = WaitForExit(*pid, deadline);
    timed_out = !status.has_value();
  }
  if (timed_out) {
    ::kill(*pid, SIGKILL);
    WaitForExit(*pid, Clock::now() + kKillWait);
    return absl::DeadlineExceededError(absl::StrCat(binary, " did not finish within ",
                                                    timeout.count(), " ms; stderr: ", result.err));
  }
  result.wait_status = *status;
  return result;
}

}  // namespace streamgrid::etcd::testing
