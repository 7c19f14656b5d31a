#include "common/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace streamgrid {
namespace {

std::vector<char*> Pointers(const std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (const std::string& s : strings) pointers.push_back(const_cast<char*>(s.c_str()));
  pointers.push_back(nullptr);
  return pointers;
}

// Closes every descriptor in [from, to] (to inclusive), with the kernel's
// close_range where it has one.
void CloseRange(int from, unsigned to, int open_max) {
  if (static_cast<unsigned>(from) > to) return;
  if (::syscall(SYS_close_range, static_cast<unsigned>(from), to, 0U) == 0) return;
  for (int fd = from; fd < open_max && static_cast<unsigned>(fd) <= to; ++fd) ::close(fd);
}

// Runs in the child between fork and exec: system calls only
// (async-signal-safe), no allocation, no locks. Never returns.
[[noreturn]] void BecomeChild(const SpawnOptions& options, pid_t parent, int report, int open_max,
                              char* const* argv, char* const* envp) {
  auto fail = [&report] {
    const int err = errno;
    [[maybe_unused]] ssize_t n = ::write(report, &err, sizeof(err));
    ::_exit(127);
  };
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
  if (options.new_process_group) ::setpgid(0, 0);
  if (options.nice) ::setpriority(PRIO_PROCESS, 0, *options.nice);
  // We may ignore SIGPIPE or block signals; the child should not inherit that.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &default_action, nullptr);
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  ::sigprocmask(SIG_SETMASK, &empty_mask, nullptr);

  // Every source goes above the targets first, so that placing one cannot
  // overwrite another still to be placed (and the report pipe too, which
  // must survive). dup2 then clears close-on-exec on each target.
  const int n = static_cast<int>(options.fds.size());
  if (report < n && (report = ::fcntl(report, F_DUPFD_CLOEXEC, n)) < 0) ::_exit(127);
  int moved[16];
  for (int i = 0; i < n; ++i) {
    const int source = options.fds[i] >= 0 ? options.fds[i] : ::open("/dev/null", O_RDWR);
    if (source < 0 || (moved[i] = ::fcntl(source, F_DUPFD, n)) < 0) fail();
  }
  for (int i = 0; i < n; ++i) {
    if (::dup2(moved[i], i) < 0) fail();
  }
  // Nothing else of ours reaches the child, whether or not someone opened it
  // close-on-exec, except the report pipe, which exec closes.
  CloseRange(n, static_cast<unsigned>(report) - 1, open_max);
  CloseRange(report + 1, ~0U, open_max);
  if (options.search_path) {
    ::execvpe(argv[0], argv, envp);
  } else {
    ::execve(argv[0], argv, envp);
  }
  fail();
  ::_exit(127);  // not reached: fail() exits
}

}  // namespace

absl::StatusOr<pid_t> SpawnChild(const std::vector<std::string>& argv,
                                 const SpawnOptions& options) {
  if (argv.empty() || argv[0].empty()) return absl::InvalidArgumentError("empty command line");
  if (options.fds.size() < 3 || options.fds.size() > 16) {
    return absl::InvalidArgumentError("a child takes 3 to 16 descriptors");
  }
  // Everything the child touches is made before fork: after it, only
  // async-signal-safe calls are allowed.
  const std::vector<char*> args = Pointers(argv);
  const std::vector<char*> env = options.env ? Pointers(*options.env) : std::vector<char*>{};
  char* const* envp = options.env ? env.data() : environ;
  const int open_max = static_cast<int>(::sysconf(_SC_OPEN_MAX));
  const std::string failure = absl::StrCat("cannot run '", argv[0], "'");

  // The child reports a failed exec through this pipe (closed by a good exec).
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    const int err = errno;
    return absl::ErrnoToStatus(err, absl::StrCat(failure, ": ", std::strerror(err)));
  }
  const pid_t parent = ::getpid();
  // fork rather than posix_spawn: only the child itself can ask to be killed
  // when we die (PR_SET_PDEATHSIG).
  const pid_t pid = ::fork();
  if (pid == 0) BecomeChild(options, parent, report[1], open_max, args.data(), envp);
  const int fork_error = errno;
  ::close(report[1]);
  if (pid < 0) {
    ::close(report[0]);
    return absl::InternalError(absl::StrCat(failure, ": ", std::strerror(fork_error)));
  }
  int exec_error = 0;
  ssize_t got;
  do {
    got = ::read(report[0], &exec_error, sizeof(exec_error));
  } while (got < 0 && errno == EINTR);
  ::close(report[0]);
  if (got == 0) return pid;  // exec closed the pipe: the program runs
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  if (got != static_cast<ssize_t>(sizeof(exec_error))) exec_error = EIO;
  std::string message = absl::StrCat(failure, ": ", std::strerror(exec_error));
  if (exec_error == ENOENT || exec_error == ENOTDIR) return absl::NotFoundError(message);
  if (exec_error == EACCES) return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

}  // namespace streamgrid
