#include "probe/probe_helper_pool.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>

#include "absl/strings/str_cat.h"

namespace streamgrid::probe {
namespace {

absl::Status Errno(int err, const char* what) {
  return absl::ErrnoToStatus(err, absl::StrCat(what, ": ", std::strerror(err)));
}

// How a reaped helper ended, for the message.
std::string Ending(int wstatus) {
  if (WIFSIGNALED(wstatus)) return absl::StrCat("signal ", WTERMSIG(wstatus));
  if (WIFEXITED(wstatus)) return absl::StrCat("exit code ", WEXITSTATUS(wstatus));
  return "unknown";
}

}  // namespace

absl::StatusOr<std::unique_ptr<ProbeHelperPool>> ProbeHelperPool::Create(
    ProbeHelperOptions options) {
  if (options.program.empty() || ::access(options.program.c_str(), X_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("no probe helper program at '", options.program.string(), "'"));
  }
  if (options.helpers < 1) options.helpers = 1;
  if (options.max_requests_per_helper < 1) options.max_requests_per_helper = 1;
  std::unique_ptr<ProbeHelperPool> pool(new ProbeHelperPool(std::move(options)));
  // One helper now, so that the first upload does not pay its start.
  Slot& first = pool->slots_.front();
  if (absl::Status s = pool->Start(first); !s.ok()) return s;
  return pool;
}

ProbeHelperPool::ProbeHelperPool(ProbeHelperOptions options)
    : options_(std::move(options)), slots_(options_.helpers) {
  spawner_ = std::thread([this] { SpawnerLoop(); });
}

ProbeHelperPool::~ProbeHelperPool() {
  {
    std::lock_guard lock(spawn_mu_);
    stopping_ = true;
  }
  spawn_cv_.notify_all();
  spawner_.join();
  std::lock_guard lock(mu_);
  for (Slot& slot : slots_) Stop(slot);
}

void ProbeHelperPool::SpawnerLoop() {
  std::unique_lock lock(spawn_mu_);
  for (;;) {
    spawn_cv_.wait(lock, [this] { return stopping_ || !spawn_queue_.empty(); });
    // Pending starts still run (their callers wait on them) before stopping.
    if (spawn_queue_.empty()) return;
    std::function<void()> task = std::move(spawn_queue_.front());
    spawn_queue_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
}

absl::Status ProbeHelperPool::Start(Slot& slot) {
  std::packaged_task<absl::Status()> task([this, &slot] { return StartHere(slot); });
  std::future<absl::Status> done = task.get_future();
  {
    std::lock_guard lock(spawn_mu_);
    if (stopping_) return absl::UnavailableError("the probe helpers are stopping");
    spawn_queue_.emplace_back([&task] { task(); });
  }
  spawn_cv_.notify_one();
  absl::Status status = done.get();
  if (status.ok()) {
    std::lock_guard lock(mu_);
    ++started_;
  }
  return status;
}

absl::Status ProbeHelperPool::StartHere(Slot& slot) {
  int socks[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks) != 0) {
    return Errno(errno, "cannot create the probe helper's socket");
  }
  // Reports an exec failure; closed by a successful exec.
  int exec_pipe[2];
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    const int err = errno;
    ::close(socks[0]);
    ::close(socks[1]);
    return Errno(err, "cannot start the probe helper");
  }
  const std::string program = options_.program.string();
  std::vector<const char*> argv = {program.c_str(), "--fd=3"};
  if (options_.test_hooks) argv.push_back("--test-hooks");
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Between fork and exec, system calls only (async-signal-safe).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the server died already
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &default_action, nullptr);
    sigset_t empty_mask;
    sigemptyset(&empty_mask);
    ::sigprocmask(SIG_SETMASK, &empty_mask, nullptr);
    const int null_fd = ::open("/dev/null", O_RDWR);
    // The helper's end becomes descriptor 3 (dup2 clears close-on-exec);
    // its log goes into its replies, so 0-2 are /dev/null.
    // (dup2 onto itself keeps the flag: clear it by hand then.)
    const int moved = socks[1] == 3 ? ::fcntl(3, F_SETFD, 0) : ::dup2(socks[1], 3);
    if (null_fd < 0 || moved < 0 || ::dup2(null_fd, 0) < 0 || ::dup2(null_fd, 1) < 0 ||
        ::dup2(null_fd, 2) < 0) {
      const int err = errno;
      [[maybe_unused]] ssize_t n = ::write(exec_pipe[1], &err, sizeof(err));
      ::_exit(127);
    }
    // Nothing else the server holds may reach the helper, except the report
    // pipe, which exec closes.
    for (int fd = 4; fd < exec_pipe[1]; ++fd) ::close(fd);
    ::syscall(SYS_close_range, exec_pipe[1] + 1, ~0U, 0);
    ::execv(argv[0], const_cast<char* const*>(argv.data()));
    const int err = errno;
    [[maybe_unused]] ssize_t n = ::write(exec_pipe[1], &err, sizeof(err));
    ::_exit(127);
  }
  const int fork_error = errno;
  ::close(exec_pipe[1]);
  ::close(socks[1]);
  if (pid < 0) {
    ::close(exec_pipe[0]);
    ::close(socks[0]);
    return Errno(fork_error, "cannot start the probe helper");
  }
  int exec_error = 0;
  ssize_t got;
  do {
    got = ::read(exec_pipe[0], &exec_error, sizeof(exec_error));
  } while (got < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  if (got > 0) {
    ::close(socks[0]);
    int wstatus;
    while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    return absl::UnavailableError(
        absl::StrCat("cannot run the probe helper '", program, "': ", std::strerror(exec_error)));
  }
  slot.pid = pid;
  slot.sock = socks[0];
  slot.requests = 0;
  return absl::OkStatus();
}

void ProbeHelperPool::Stop(Slot& slot) {
  if (slot.sock >= 0) ::close(slot.sock);
  slot.sock = -1;
  if (slot.pid > 0) {
    ::kill(slot.pid, SIGKILL);
    int wstatus;
    while (::waitpid(slot.pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
  }
  slot.pid = -1;
  slot.requests = 0;
}

absl::StatusOr<ProbeReply> ProbeHelperPool::Probe(int fd, const ProbeRequest& request,
                                                  std::chrono::steady_clock::time_point deadline,
                                                  const std::function<bool()>& cancelled) {
  Slot* slot = nullptr;
  {
    std::unique_lock lock(mu_);
    auto pick = [this, &slot] {
      // A helper already running first: it costs no start.
      for (Slot& s : slots_) {
        if (!s.busy && s.pid > 0) return (slot = &s) != nullptr;
      }
      for (Slot& s : slots_) {
        if (!s.busy) return (slot = &s) != nullptr;
      }
      return false;
    };
    while (!pick()) {
      if (cancelled && cancelled()) return absl::CancelledError("the probe was cancelled");
      const auto wake =
          std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(50));
      if (free_.wait_until(lock, wake) == std::cv_status::timeout &&
          std::chrono::steady_clock::now() >= deadline) {
        if (pick()) break;
        return absl::DeadlineExceededError("no probe helper became free in time");
      }
    }
    slot->busy = true;
  }
  // The slot is ours until released; its fields are not shared meanwhile.
  auto release = [this, slot] {
    {
      std::lock_guard lock(mu_);
      slot->busy = false;
    }
    free_.notify_one();
  };
  absl::StatusOr<ProbeReply> reply = [&]() -> absl::StatusOr<ProbeReply> {
    if (slot->pid < 0) {
      if (absl::Status s = Start(*slot); !s.ok()) return s;
    }
    if (absl::Status s = SendFrame(slot->sock, FrameKind::kRequest, EncodeRequest(request), fd);
        !s.ok()) {
      // The helper went away between requests (killed from outside): it
      // has not seen this file; one more helper is worth a try.
      Stop(*slot);
      if (absl::Status started = Start(*slot); !started.ok()) return started;
      if (absl::Status again =
              SendFrame(slot->sock, FrameKind::kRequest, EncodeRequest(request), fd);
          !again.ok()) {
        return absl::UnavailableError(
            absl::StrCat("the probe helper takes no requests: ", again.message()));
      }
    }
    absl::StatusOr<Frame> frame = ReadFrameUntil(slot->sock, deadline, cancelled);
    if (!frame.ok()) {
      // Whatever it was doing is abandoned: a helper mid-file is killed.
      const pid_t pid = slot->pid;
      int wstatus = 0;
      if (slot->sock >= 0) ::close(std::exchange(slot->sock, -1));
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
      }
      slot->pid = -1;
      slot->requests = 0;
      if (absl::IsAborted(frame.status())) {
        return absl::AbortedError(
            absl::StrCat("the probe helper stopped on the file (", Ending(wstatus), ")"));
      }
      return frame.status();
    }
    if (++slot->requests >= options_.max_requests_per_helper) Stop(*slot);
    switch (frame->kind) {
      case FrameKind::kDescribed:
      case FrameKind::kFailed:
      case FrameKind::kTooLarge:
      case FrameKind::kPackets:
        return ProbeReply{frame->kind, std::move(frame->payload)};
      default:
        return absl::InternalError(
            absl::StrCat("the probe helper refused the request: ", frame->payload));
    }
  }();
  release();
  return reply;
}

std::vector<pid_t> ProbeHelperPool::HelperPids() const {
  std::lock_guard lock(mu_);
  std::vector<pid_t> pids;
  for (const Slot& slot : slots_) pids.push_back(slot.pid);
  return pids;
}

int64_t ProbeHelperPool::helpers_started() const {
  std::lock_guard lock(mu_);
  return started_;
}

}  // namespace streamgrid::probe
