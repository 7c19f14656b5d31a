#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

#include "grpcpp/server_context.h"

namespace streamgrid::storage {

// Cancels synchronous-API server calls that make no progress for too long, so a
// client that stalls mid-stream (alive, so keepalive does not notice, and
// perhaps without a deadline) cannot hold a handler thread forever. Handlers
// register their call and touch it on every message read or written.
class CallWatchdog {
 public:
  class Watch;

  // Calls idle for longer than `idle_timeout` are cancelled, within about a
  // quarter of it (checked at least once a second).
  explicit CallWatchdog(std::chrono::milliseconds idle_timeout);
  // Stops the checking thread. Every Watch must be gone by now.
  ~CallWatchdog();

  CallWatchdog(const CallWatchdog&) = delete;
  CallWatchdog& operator=(const CallWatchdog&) = delete;

  // Watches `context` until the returned Watch is destroyed, which must happen
  // before the handler returns (while `context` is still valid). Counts as
  // progress.
  std::unique_ptr<Watch> Start(grpc::ServerContext* context);

  // How many calls were cancelled for idling.
  uint64_t cancelled() const { return cancelled_.load(); }

 private:
  struct Entry {
    explicit Entry(grpc::ServerContext* context, int64_t now) : context(context), last(now) {}
    grpc::ServerContext* const context;
    std::atomic<int64_t> last;  // steady-clock nanoseconds of the last progress
    bool cancelled = false;     // guarded by mu_
  };

  void Run();

  const std::chrono::nanoseconds idle_timeout_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::list<Entry> entries_;  // guarded by mu_; a list keeps each Entry in place
  bool stopping_ = false;     // guarded by mu_
  std::atomic<uint64_t> cancelled_{0};
  std::thread thread_;
};

// One watched call; see CallWatchdog::Start.
class CallWatchdog::Watch {
 public:
  ~Watch();
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;

  // Records progress: the idle time starts over.
  void Touch();

 private:
  friend class CallWatchdog;
  Watch(CallWatchdog& watchdog, std::list<Entry>::iterator entry)
      : watchdog_(watchdog), entry_(entry) {}

  CallWatchdog& watchdog_;
  const std::list<Entry>::iterator entry_;
};

}  // namespace streamgrid::storage
