#pragma once

// Child processes for the etcd test harness: fork/exec with a clean
// environment and death with the parent, and commands run to completion with
// their output captured (etcdctl, openssl).

#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace streamgrid::etcd::testing {

using Clock = std::chrono::steady_clock;

// A process sent SIGKILL is gone almost at once; this only bounds the wait.
constexpr std::chrono::milliseconds kKillWait = std::chrono::seconds(10);

// INTERNAL with `what` and strerror(err).
absl::Status ErrnoStatus(int err, std::string_view what);

// The time left until `deadline`, never negative.
inline std::chrono::milliseconds Remaining(Clock::time_point deadline) {
  return std::max(std::chrono::milliseconds(0),
                  std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
}

// Closes a descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// The executable `name` on PATH, or "" when there is none.
std::string FindOnPath(const std::string& name);

// This process's environment without ETCD_* and ETCDCTL_* variables: etcd
// refuses to start when an environment variable shadows a flag we pass, and
// stray etcdctl settings would change what the harness's commands do.
std::vector<std::string> CleanEnvironment();

// Runs `binary` (as argv[0]) with stdin/stdout/stderr on the given
// descriptors, as SpawnChild does: every other descriptor closed, default
// signal handling, and SIGKILL when the calling thread dies, so a crashed test
// leaves no etcd behind. A failed exec is an error here.
absl::StatusOr<pid_t> ForkExec(const std::string& binary, std::vector<std::string> argv,
                               std::vector<std::string> env, int stdin_fd, int stdout_fd,
                               int stderr_fd);

// "exited with code N" / "killed by signal N (name)".
std::string DescribeWaitStatus(int status);

// Polls for `pid` to exit until `deadline`; returns its wait status, or nullopt
// if it is still running then.
std::optional<int> WaitForExit(pid_t pid, Clock::time_point deadline);

struct CommandResult {
  int wait_status = 0;
  std::string out;
  std::string err;
};

// Runs `argv` (argv[0] being `binary`) to completion, capturing stdout and
// stderr. DEADLINE_EXCEEDED, after SIGKILL, if it runs past `timeout`.
absl::StatusOr<CommandResult> RunCommand(const std::string& binary, std::vector<std::string> argv,
                                         std::vector<std::string> env,
                                         std::chrono::milliseconds timeout);

}  // namespace streamgrid::etcd::testing
