#include "transcode/cancel_token.h"

#include <utility>

namespace streamgrid {

CancelToken::Registration::Registration(Registration&& other) noexcept
    : token_(std::exchange(other.token_, nullptr)), id_(other.id_) {}

CancelToken::Registration& CancelToken::Registration::operator=(Registration&& other) noexcept {
  if (this != &other) {
    Reset();
    token_ = std::exchange(other.token_, nullptr);
    id_ = other.id_;
  }
  return *this;
}

CancelToken::Registration::~Registration() { Reset(); }

void CancelToken::Registration::Reset() {
  if (token_ != nullptr) token_->Unregister(id_);
  token_ = nullptr;
}

void CancelToken::Cancel() {
  // Callbacks run under the lock so that Unregister() (which takes it too) cannot
  // return while one is still running: that is what lets a registration's owner
  // destroy whatever the callback touches right after unregistering.
  std::lock_guard lock(mu_);
  if (cancelled_) return;
  cancelled_ = true;
  for (auto& [id, callback] : callbacks_) callback();
  callbacks_.clear();
}

bool CancelToken::cancelled() const {
  std::lock_guard lock(mu_);
  return cancelled_;
}

CancelToken::Registration CancelToken::OnCancel(std::function<void()> callback) {
  {
    std::lock_guard lock(mu_);
    if (!cancelled_) {
      int id = next_id_++;
      callbacks_.emplace(id, std::move(callback));
      return Registration(this, id);
    }
  }
  callback();
  return Registration();
}

void CancelToken::Unregister(int id) {
  std::lock_guard lock(mu_);
  callbacks_.erase(id);
}

}  // namespace streamgrid
