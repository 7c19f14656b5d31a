#include "metadata/record_change_hub.h"

#include <utility>

namespace streamgrid {

std::unique_ptr<RecordChangeHub::Subscription> RecordChangeHub::Subscribe(
    std::string id, std::function<void()> changed) {
  std::lock_guard lock(mu_);
  auto entry = callbacks_.emplace(std::move(id), std::move(changed));
  return std::unique_ptr<Subscription>(new Subscription(*this, entry));
}

void RecordChangeHub::Notify(std::string_view id) {
  std::lock_guard lock(mu_);
  auto [first, last] = callbacks_.equal_range(id);
  for (auto it = first; it != last; ++it) it->second();
}

void RecordChangeHub::NotifyAll() {
  std::lock_guard lock(mu_);
  for (auto& [id, changed] : callbacks_) changed();
}

size_t RecordChangeHub::size() const {
  std::lock_guard lock(mu_);
  return callbacks_.size();
}

RecordChangeHub::Subscription::~Subscription() {
  // Notify() calls callbacks with the lock held, so taking it here waits out
  // a call of this one in progress.
  std::lock_guard lock(hub_.mu_);
  hub_.callbacks_.erase(entry_);
}

}  // namespace streamgrid
