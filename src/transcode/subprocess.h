#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace streamgrid {

// A scheduling priority lowered for a while, shared by the children started
// with it (SubprocessOptions::priority): they run at nice value `nice` (or the
// server's own, if that is lower still) until Restore() puts those still
// running, and any started later, back at the server's nice value. Used for a
// transcode's head start, which must not take the cores from the upload it
// encodes while that upload is being made durable.
class ChildPriority {
 public:
  explicit ChildPriority(int nice = 19);
  ChildPriority(const ChildPriority&) = delete;
  ChildPriority& operator=(const ChildPriority&) = delete;

  // Puts every running child started with this back at the nice value the
  // server had when this was made (every thread of its process group); later
  // children start there. Callable any number of times, from any thread.
  // PERMISSION_DENIED when the kernel refuses (raising a priority needs
  // CAP_SYS_NICE or an RLIMIT_NICE that allows it): the children stay low.
  absl::Status Restore();

  // True if this process may put a lowered child back (see Restore()): when
  // false, lowering one would keep it low for good.
  static bool CanRestore();

 private:
  friend class Subprocess;

  const int base_nice_;  // the server's, at construction
  const int low_nice_;
  std::mutex mu_;
  bool restored_ = false;      // guarded by mu_
  std::vector<pid_t> groups_;  // running children's process groups; mu_
};

struct SubprocessOptions {
  // Receives each line the child writes to stdout (without the newline), on the
  // thread that calls Wait(). Lines longer than 64 KiB arrive in pieces.
  std::function<void(std::string_view line)> on_stdout_line;
  // How much of the end of stderr to keep for error messages.
  size_t stderr_tail_bytes = 16 * 1024;
  // Kill the child if it is still running this long after Start().
  std::optional<std::chrono::milliseconds> deadline;
  // Kill the child if it writes nothing to stdout or stderr for this long.
  std::optional<std::chrono::milliseconds> stall_timeout;
  // Time between SIGTERM and SIGKILL when the child is killed.
  std::chrono::milliseconds kill_grace{3000};
  // Run the child (and whatever it starts) at this lowered priority until it
  // is restored; null: at the server's.
  std::shared_ptr<ChildPriority> priority;
};

// How a child process ended.
struct ExitStatus {
  int exit_code = -1;  // when it exited by itself, else -1
  int signal = 0;      // the signal that ended it, else 0
  bool success() const { return signal == 0 && exit_code == 0; }
  // "exit code 1" or "killed by signal 9 (Killed)".
  std::string ToString() const;
};

// A child process run without a shell, in its own process group, with stdin from
// /dev/null, stdout and stderr captured and every other descriptor closed. Signal
// dispositions and mask are reset to the defaults in the child. The child is
// killed (SIGKILL) if the thread that started it ends, which includes the whole
// server being killed: no ffmpeg outlives the process that wanted it.
class Subprocess {
 public:
  // Starts `argv[0]` (looked up on PATH when it has no slash) with `argv`.
  // NOT_FOUND when the program does not exist, INTERNAL for other failures.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv,
                                                           SubprocessOptions options);

  // Kills the process group and reaps the child if Wait() did not.
  ~Subprocess();

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // Delivers output until the child has exited and reaps it. Returns how it ended,
  // or DEADLINE_EXCEEDED when the deadline or stall timeout had it killed, or
  // CANCELLED when Kill() did. Any leftover processes of its group are killed.
  // Call at most once.
  absl::StatusOr<ExitStatus> Wait();

  // Asks Wait() to end the child's process group: SIGTERM, then SIGKILL after the
  // grace period. Callable from any thread, any number of times, before or
  // during Wait().
  void Kill();

  // The last bytes the child wrote to stderr (complete once Wait() returned).
  const std::string& stderr_tail() const { return stderr_tail_; }

  pid_t pid() const { return pid_; }

 private:
  Subprocess() = default;

  void HandleStdout(std::string_view data);
  void HandleStderr(std::string_view data);
  // Reads what is available on `fd`; returns false at end of file or on error.
  bool ReadFrom(int fd, bool is_stdout);
  void DrainAfterExit();
  void Reap();

  SubprocessOptions options_;
  pid_t pid_ = -1;
  int pidfd_ = -1;  // readable when the child exits; -1 where unsupported
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  int wake_fd_ = -1;  // eventfd that Kill() writes to
  std::atomic<bool> kill_requested_{false};
  bool reaped_ = false;
  ExitStatus exit_status_;
  std::chrono::steady_clock::time_point started_;
  std::string stdout_partial_;
  std::string stderr_tail_;
};

// Runs `argv` to completion and returns its stdout (up to `max_stdout_bytes`,
// newline-terminated lines), or the error from Start()/Wait(). A non-zero exit is
// not an error here: check `exit`.
struct SubprocessOutput {
  ExitStatus exit;
  std::string stdout_text;
  std::string stderr_tail;
};
absl::StatusOr<SubprocessOutput> RunSubprocess(const std::vector<std::string>& argv,
                                               SubprocessOptions options,
                                               size_t max_stdout_bytes = 4 << 20);

}  // namespace streamgrid
