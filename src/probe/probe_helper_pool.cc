#include "probe/probe_helper_pool.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>

#include "absl/strings/str_cat.h"
#include "common/spawn.h"

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
  std::vector<std::string> argv = {options_.program.string(), "--fd=3"};
  if (options_.test_hooks) argv.push_back("--test-hooks");
  // The helper's end becomes descriptor 3; its log goes into its replies, so
  // 0-2 are /dev/null. It dies with the spawner thread, i.e. with the server.
  SpawnOptions spawn;
  spawn.fds = {-1, -1, -1, socks[1]};
  absl::StatusOr<pid_t> spawned = SpawnChild(argv, spawn);
  ::close(socks[1]);
  if (!spawned.ok()) {
    ::close(socks[0]);
    return absl::UnavailableError(absl::StrCat("probe helper: ", spawned.status().message()));
  }
  const pid_t pid = *spawned;
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
