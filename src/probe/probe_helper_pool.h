#pragma once

// Long-lived streamgrid-probe helpers, started once and reused, so that
// describing an upload costs no process start (ffprobe loads ~215 shared
// libraries per run). Each helper takes one request at a time over a
// socketpair: the file's descriptor and a ProbeRequest.

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "probe/probe_protocol.h"

namespace streamgrid::probe {

struct ProbeHelperOptions {
  std::filesystem::path program;  // the streamgrid-probe binary
  int helpers = 2;                // requests served at once; more wait
  // A helper is replaced after this many requests, so that whatever a
  // hostile file leaves behind in it (leaks, fragmented heap) does not last.
  int max_requests_per_helper = 256;
  bool test_hooks = false;  // starts helpers with --test-hooks (tests only)
};

// What a helper answered.
struct ProbeReply {
  FrameKind kind;  // kDescribed (text = ffprobe-shaped JSON), kPackets (text
                   // = the packets' reach, JSON), kFailed (text = FFmpeg's
                   // error lines) or kTooLarge (text = why)
  std::string text;
};

class ProbeHelperPool {
 public:
  // Checks that `options.program` is an executable file (NOT_FOUND if not)
  // and starts one helper ahead of the first request (UNAVAILABLE if it
  // cannot be started).
  static absl::StatusOr<std::unique_ptr<ProbeHelperPool>> Create(ProbeHelperOptions options);

  // Kills the helpers. No Probe() may be running.
  ~ProbeHelperPool();
  ProbeHelperPool(const ProbeHelperPool&) = delete;
  ProbeHelperPool& operator=(const ProbeHelperPool&) = delete;

  // Asks a helper to describe the file open on `fd` (the caller keeps it).
  // Waits for a free helper, starting one if needed, and for its answer, at
  // most until `deadline`. Errors: DEADLINE_EXCEEDED or CANCELLED (when
  // `cancelled`, asked every few tens of ms, says so): the helper is killed;
  // ABORTED when the helper died on the file (killed, crashed): only this
  // request fails, the next gets a new helper; UNAVAILABLE when no helper
  // can be started; INTERNAL when it answered nonsense. Thread-safe.
  absl::StatusOr<ProbeReply> Probe(int fd, const ProbeRequest& request,
                                   std::chrono::steady_clock::time_point deadline,
                                   const std::function<bool()>& cancelled = {});

  // For tests: the helpers' process ids now (-1 for a slot not started),
  // and how many helpers were started so far.
  std::vector<pid_t> HelperPids() const;
  int64_t helpers_started() const;

 private:
  struct Slot {
    std::atomic<pid_t> pid{-1};  // read by HelperPids() while busy
    int sock = -1;
    int requests = 0;
    bool busy = false;
  };

  explicit ProbeHelperPool(ProbeHelperOptions options);

  // Starts a helper into `slot` on the spawner thread.
  absl::Status Start(Slot& slot);
  absl::Status StartHere(Slot& slot);  // on the spawner thread
  static void Stop(Slot& slot);        // kills and reaps; the slot is then empty
  void SpawnerLoop();

  const ProbeHelperOptions options_;
  mutable std::mutex mu_;
  std::condition_variable free_;
  std::vector<Slot> slots_;  // guarded by mu_ except the fields of a busy slot
  int64_t started_ = 0;      // guarded by mu_

  // Helpers are forked by one long-lived thread: a child asks to be killed
  // when its parent dies (PR_SET_PDEATHSIG), and Linux means the thread
  // that forked it, so a request thread that ends must not be that parent.
  std::mutex spawn_mu_;
  std::condition_variable spawn_cv_;
  std::deque<std::function<void()>> spawn_queue_;  // guarded by spawn_mu_
  bool stopping_ = false;                          // guarded by spawn_mu_
  std::thread spawner_;
};

}  // namespace streamgrid::probe
