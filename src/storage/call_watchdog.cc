#include "storage/call_watchdog.h"

#include <algorithm>

#include "spdlog/spdlog.h"

namespace streamgrid::storage {
namespace {

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

CallWatchdog::CallWatchdog(std::chrono::milliseconds idle_timeout)
    : idle_timeout_(idle_timeout), thread_([this] { Run(); }) {}

CallWatchdog::~CallWatchdog() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

std::unique_ptr<CallWatchdog::Watch> CallWatchdog::Start(grpc::ServerContext* context) {
  std::lock_guard lock(mu_);
  entries_.emplace_front(context, NowNanos());
  return std::unique_ptr<Watch>(new Watch(*this, entries_.begin()));
}

CallWatchdog::Watch::~Watch() {
  // Taking the lock also waits out a TryCancel() in progress on this call, so
  // its context stays valid until the watchdog is done with it.
  std::lock_guard lock(watchdog_.mu_);
  watchdog_.entries_.erase(entry_);
}

void CallWatchdog::Watch::Touch() { entry_->last.store(NowNanos(), std::memory_order_relaxed); }

void CallWatchdog::Run() {
  const auto period = std::clamp<std::chrono::nanoseconds>(
      idle_timeout_ / 4, std::chrono::milliseconds(10), std::chrono::seconds(1));
  std::unique_lock lock(mu_);
  while (!stopping_) {
    wake_.wait_for(lock, period);
    const int64_t now = NowNanos();
    for (Entry& entry : entries_) {
      if (entry.cancelled ||
          now - entry.last.load(std::memory_order_relaxed) <= idle_timeout_.count()) {
        continue;
      }
      // Safe under the lock: a sync-API TryCancel() runs no application code,
      // and the handler cannot finish (and free the context) while we hold it.
      spdlog::warn("cancelling call from {}: no progress for {} ms", entry.context->peer(),
                   std::chrono::duration_cast<std::chrono::milliseconds>(idle_timeout_).count());
      entry.cancelled = true;
      cancelled_.fetch_add(1);  // before the client can observe the cancellation
      entry.context->TryCancel();
    }
  }
}

}  // namespace streamgrid::storage
