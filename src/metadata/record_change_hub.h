#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace streamgrid {

// Who wants to hear of changes to which video record: the part of
// VideoMetadataService::Subscribe() both implementations share. A service
// calls Notify() for each record it sees change (its own writes, or a watch
// on a shared store). Thread-safe.
class RecordChangeHub {
 public:
  class Subscription;

  RecordChangeHub() = default;
  RecordChangeHub(const RecordChangeHub&) = delete;
  RecordChangeHub& operator=(const RecordChangeHub&) = delete;

  // Calls `changed` on each Notify(id) or NotifyAll() until the returned
  // subscription is destroyed. The hub must outlive it.
  std::unique_ptr<Subscription> Subscribe(std::string id, std::function<void()> changed);

  // Calls every callback subscribed to `id`, on this thread, one after the
  // other. Callbacks must be quick and must not subscribe, unsubscribe or
  // notify (the hub's lock is held).
  void Notify(std::string_view id);

  // Calls every callback: changes may have been missed (a watch was reset).
  void NotifyAll();

  // Subscriptions alive now (for tests and metrics).
  size_t size() const;

 private:
  using Callbacks = std::multimap<std::string, std::function<void()>, std::less<>>;

  mutable std::mutex mu_;
  Callbacks callbacks_;  // guarded by mu_
};

// One Subscribe()'s registration. Destroying it unsubscribes: once the
// destructor returns, its callback is not running and is never called again.
// Must not be destroyed from inside its own callback.
class RecordChangeHub::Subscription {
 public:
  ~Subscription();
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

 private:
  friend class RecordChangeHub;
  Subscription(RecordChangeHub& hub, Callbacks::iterator entry) : hub_(hub), entry_(entry) {}

  RecordChangeHub& hub_;
  const Callbacks::iterator entry_;
};

}  // namespace streamgrid
