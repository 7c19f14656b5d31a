#include "transcode/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/spawn.h"
#include "common/strings.h"

namespace streamgrid {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxLineBytes = 64 * 1024;
constexpr size_t kReadChunk = 64 * 1024;

void CloseFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

absl::Status ErrnoStatus(int err, std::string_view what) {
  std::string message = absl::StrCat(ToAbsl(what), ": ", std::strerror(err));
  if (err == ENOENT || err == ENOTDIR) return absl::NotFoundError(message);
  if (err == EACCES) return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

int MillisUntil(Clock::time_point now, Clock::time_point when) {
  if (when <= now) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(when - now).count();
  return static_cast<int>(std::min<int64_t>(ms, 60'000));
}

}  // namespace

ChildPriority::ChildPriority(int nice)
    : base_nice_(::getpriority(PRIO_PROCESS, 0)), low_nice_(std::max(nice, base_nice_)) {}

absl::Status ChildPriority::Restore() {
  std::lock_guard lock(mu_);
  restored_ = true;
  absl::Status status;
  for (pid_t group : groups_) {
    // PRIO_PGRP reaches every thread of every process in the group: ffmpeg's
    // encoder threads were created with the nice value of its main thread.
    if (::setpriority(PRIO_PGRP, group, base_nice_) == 0) continue;
    const int err = errno;
    if (err == ESRCH || !status.ok()) continue;  // ESRCH: it exited meanwhile
    status = err == EPERM
                 ? absl::PermissionDeniedError(absl::StrCat("setpriority: ", std::strerror(err)))
                 : ErrnoStatus(err, "setpriority");
  }
  return status;
}

bool ChildPriority::CanRestore() {
  // Tried rather than worked out from capabilities and limits: a thread of
  // our own lowers itself by one and raises itself back.
  static const bool can = [] {
    bool ok = false;
    std::thread([&ok] {
      const pid_t tid = static_cast<pid_t>(::syscall(SYS_gettid));
      errno = 0;
      const int nice = ::getpriority(PRIO_PROCESS, tid);
      if (errno != 0 || nice >= 19) return;
      if (::setpriority(PRIO_PROCESS, tid, nice + 1) != 0) return;
      ok = ::setpriority(PRIO_PROCESS, tid, nice) == 0;
    }).join();
    return ok;
  }();
  return can;
}

std::string ExitStatus::ToString() const {
  if (signal != 0) return absl::StrCat("killed by signal ", signal, " (", strsignal(signal), ")");
  return absl::StrCat("exit code ", exit_code);
}

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(const std::vector<std::string>& argv,
                                                              SubprocessOptions options) {
  if (argv.empty() || argv[0].empty()) return absl::InvalidArgumentError("empty command line");
  std::unique_ptr<Subprocess> proc(new Subprocess());
  proc->options_ = std::move(options);

  // Every descriptor is close-on-exec on our side, so a child spawned concurrently
  // by another thread cannot inherit them and hold our pipes open.
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    int err = errno;
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return ErrnoStatus(err, "pipe2");
  }
  proc->stdout_fd_ = out_pipe[0];
  proc->stderr_fd_ = err_pipe[0];
  int out_write = out_pipe[1];
  int err_write = err_pipe[1];
  proc->wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (proc->wake_fd_ < 0) {
    int err = errno;
    CloseFd(out_write);
    CloseFd(err_write);
    return ErrnoStatus(err, "eventfd");
  }
  ::fcntl(proc->stdout_fd_, F_SETFL, O_NONBLOCK);
  ::fcntl(proc->stderr_fd_, F_SETFL, O_NONBLOCK);

  // Held until the child is registered, so that a Restore() either comes
  // first (the child starts at the server's priority) or finds it.
  std::unique_lock<std::mutex> priority_lock;
  bool lower = false;
  SpawnOptions spawn;
  spawn.fds = {-1, out_write, err_write};  // stdin from /dev/null
  spawn.search_path = true;
  // A process group of its own lets Kill() reach grandchildren too.
  spawn.new_process_group = true;
  if (proc->options_.priority) {
    priority_lock = std::unique_lock(proc->options_.priority->mu_);
    lower = !proc->options_.priority->restored_;
    if (lower) spawn.nice = proc->options_.priority->low_nice_;
  }
  // The child dies with this thread (see SpawnChild): without that an ffmpeg
  // outlives a killed server and races the job its restart resumes.
  absl::StatusOr<pid_t> spawned = SpawnChild(argv, spawn);
  CloseFd(out_write);
  CloseFd(err_write);
  if (!spawned.ok()) return spawned.status();
  const pid_t pid = *spawned;
  proc->pid_ = pid;
  proc->started_ = Clock::now();
  if (lower) proc->options_.priority->groups_.push_back(pid);
  if (priority_lock.owns_lock()) priority_lock.unlock();
  // A pidfd tells us the child exited without reaping it, so the process group
  // can still be signalled safely (its id cannot be reused while the zombie
  // exists). Without one we poll waitid(WNOWAIT).
  // Via syscall(): glibc 2.36's <sys/pidfd.h> lacks extern "C" for C++.
  proc->pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  return proc;
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && !reaped_) {
    ::kill(-pid_, SIGKILL);
    Reap();
  }
  CloseFd(pidfd_);
  CloseFd(stdout_fd_);
  CloseFd(stderr_fd_);
  CloseFd(wake_fd_);
}

void Subprocess::Kill() {
  kill_requested_.store(true);
  uint64_t one = 1;
  // Nonblocking; a full counter still leaves it readable, which is all we need.
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
}

void Subprocess::HandleStdout(std::string_view data) {
  stdout_partial_.append(data);
  size_t start = 0;
  while (true) {
    size_t newline = stdout_partial_.find('\n', start);
    if (newline == std::string::npos) break;
    std::string_view line(stdout_partial_.data() + start, newline - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (options_.on_stdout_line) options_.on_stdout_line(line);
    start = newline + 1;
  }
  stdout_partial_.erase(0, start);
  // Bound memory for output that never ends a line.
  while (stdout_partial_.size() >= kMaxLineBytes) {
    if (options_.on_stdout_line) {
      options_.on_stdout_line(std::string_view(stdout_partial_).substr(0, kMaxLineBytes));
    }
    stdout_partial_.erase(0, kMaxLineBytes);
  }
}

void Subprocess::HandleStderr(std::string_view data) {
  stderr_tail_.append(data);
  // Trim in big steps so that appending stays amortised O(1).
  if (stderr_tail_.size() > 2 * options_.stderr_tail_bytes) {
    stderr_tail_.erase(0, stderr_tail_.size() - options_.stderr_tail_bytes);
  }
}

bool Subprocess::ReadFrom(int fd, bool is_stdout) {
  char buffer[kReadChunk];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n > 0) {
      std::string_view data(buffer, static_cast<size_t>(n));
      if (is_stdout) {
        HandleStdout(data);
      } else {
        HandleStderr(data);
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;  // EOF or a real error: either way nothing more will come
  }
}

void Subprocess::DrainAfterExit() {
  // The child is gone, so whatever it wrote is already in the pipes; a
  // grandchild may still hold them open, hence nonblocking reads only.
  if (stdout_fd_ >= 0 && !ReadFrom(stdout_fd_, true)) CloseFd(stdout_fd_);
  if (stderr_fd_ >= 0 && !ReadFrom(stderr_fd_, false)) CloseFd(stderr_fd_);
  if (!stdout_partial_.empty() && options_.on_stdout_line) {
    options_.on_stdout_line(stdout_partial_);
  }
  stdout_partial_.clear();
  if (stderr_tail_.size() > options_.stderr_tail_bytes) {
    stderr_tail_.erase(0, stderr_tail_.size() - options_.stderr_tail_bytes);
  }
}

void Subprocess::Reap() {
  // Forgotten before the reap frees the id for reuse by another group.
  if (options_.priority) {
    std::lock_guard lock(options_.priority->mu_);
    std::erase(options_.priority->groups_, pid_);
  }
  int status = 0;
  pid_t rc;
  do {
    rc = ::waitpid(pid_, &status, 0);
  } while (rc < 0 && errno == EINTR);
  reaped_ = true;
  if (rc != pid_) return;
  if (WIFEXITED(status)) {
    exit_status_.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    exit_status_.signal = WTERMSIG(status);
  }
}

absl::StatusOr<ExitStatus> Subprocess::Wait() {
  if (reaped_) return absl::FailedPreconditionError("Wait() was already called");
  enum class Reason { kNone, kCancelled, kDeadline, kStall };
  Reason reason = Reason::kNone;
  std::optional<Clock::time_point> sigkill_at;
  bool sigkill_sent = false;
  Clock::time_point last_output = Clock::now();
  std::optional<Clock::time_point> deadline;
  if (options_.deadline) deadline = started_ + *options_.deadline;

  auto begin_kill = [&](Reason why, Clock::time_point now) {
    if (reason != Reason::kNone) return;
    reason = why;
    ::kill(-pid_, SIGTERM);
    sigkill_at = now + options_.kill_grace;
  };

  while (true) {
    Clock::time_point now = Clock::now();
    if (kill_requested_.load()) begin_kill(Reason::kCancelled, now);
    if (deadline && now >= *deadline) begin_kill(Reason::kDeadline, now);
    if (options_.stall_timeout && now - last_output >= *options_.stall_timeout) {
      begin_kill(Reason::kStall, now);
    }
    if (sigkill_at && !sigkill_sent && now >= *sigkill_at) {
      ::kill(-pid_, SIGKILL);
      sigkill_sent = true;
    }

    int timeout = -1;
    auto consider = [&](Clock::time_point when) {
      int ms = MillisUntil(now, when);
      timeout = timeout < 0 ? ms : std::min(timeout, ms);
    };
    if (reason == Reason::kNone) {
      if (deadline) consider(*deadline);
      if (options_.stall_timeout) consider(last_output + *options_.stall_timeout);
    }
    if (sigkill_at && !sigkill_sent) consider(*sigkill_at);
    if (pidfd_ < 0) consider(now + std::chrono::milliseconds(50));

    pollfd fds[4];
    int nfds = 0;
    int stdout_index = -1, stderr_index = -1, pid_index = -1;
    if (stdout_fd_ >= 0) {
      stdout_index = nfds;
      fds[nfds++] = {stdout_fd_, POLLIN, 0};
    }
    if (stderr_fd_ >= 0) {
      stderr_index = nfds;
      fds[nfds++] = {stderr_fd_, POLLIN, 0};
    }
    if (pidfd_ >= 0) {
      pid_index = nfds;
      fds[nfds++] = {pidfd_, POLLIN, 0};
    }
    fds[nfds++] = {wake_fd_, POLLIN, 0};

    int ready = ::poll(fds, nfds, timeout);
    if (ready < 0 && errno != EINTR) return ErrnoStatus(errno, "poll");
    if (ready <= 0) continue;

    if (stdout_index >= 0 && fds[stdout_index].revents != 0) {
      last_output = Clock::now();
      if (!ReadFrom(stdout_fd_, true)) CloseFd(stdout_fd_);
    }
    if (stderr_index >= 0 && fds[stderr_index].revents != 0) {
      last_output = Clock::now();
      if (!ReadFrom(stderr_fd_, false)) CloseFd(stderr_fd_);
    }
    if (fds[nfds - 1].revents != 0) {
      uint64_t count;
      [[maybe_unused]] ssize_t n = ::read(wake_fd_, &count, sizeof(count));
    }
    bool exited = false;
    if (pid_index >= 0) {
      exited = fds[pid_index].revents != 0;
    } else {
      siginfo_t info{};
      exited =
          ::waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid_;
    }
    if (exited) break;
  }

  DrainAfterExit();
  // Leftover members of the group (the child's own children) go too; the zombie
  // leader still pins the group id, so this cannot hit an unrelated process.
  ::kill(-pid_, SIGKILL);
  Reap();
  CloseFd(stdout_fd_);
  CloseFd(stderr_fd_);

  auto seconds = [](std::chrono::milliseconds ms) { return ms.count() / 1000.0; };
  switch (reason) {
    case Reason::kCancelled:
      return absl::CancelledError("the process was killed on request");
    case Reason::kDeadline:
      return absl::DeadlineExceededError(
          absl::StrCat("the process did not finish within ", seconds(*options_.deadline), " s"));
    case Reason::kStall:
      return absl::DeadlineExceededError(absl::StrCat("the process produced no output for ",
                                                      seconds(*options_.stall_timeout), " s"));
    case Reason::kNone:
      break;
  }
  return exit_status_;
}

absl::StatusOr<SubprocessOutput> RunSubprocess(const std::vector<std::string>& argv,
                                               SubprocessOptions options, size_t max_stdout_bytes) {
  SubprocessOutput output;
  options.on_stdout_line = [&output, max_stdout_bytes](std::string_view line) {
    if (output.stdout_text.size() + line.size() + 1 > max_stdout_bytes) return;
    output.stdout_text.append(line);
    output.stdout_text.push_back('\n');
  };
  auto proc = Subprocess::Start(argv, std::move(options));
  if (!proc.ok()) return proc.status();
  absl::StatusOr<ExitStatus> exit = (*proc)->Wait();
  if (!exit.ok()) return exit.status();
  output.exit = *exit;
  output.stderr_tail = (*proc)->stderr_tail();
  return output;
}

}  // namespace streamgrid
