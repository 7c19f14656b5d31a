#include "admin_cli/progress.h"

#include <algorithm>
#include <utility>

#include "admin_cli/format.h"

namespace streamgrid::admin_cli {

ProgressDisplay::ProgressDisplay(std::ostream& err, bool enabled, int width)
    : err_(err), enabled_(enabled), width_(std::max(width, 20)) {}

void ProgressDisplay::Show(const v1::Migration& migration) {
  if (!enabled_) return;
  std::lock_guard lock(mu_);
  // One column short of the width: a full line wraps on some terminals.
  err_ << '\r' << FormatProgressLine(migration, width_ - 1) << "\x1b[K" << std::flush;
  shown_ = true;
}

void ProgressDisplay::Clear() {
  std::lock_guard lock(mu_);
  if (!shown_) return;
  err_ << "\r\x1b[K" << std::flush;
  shown_ = false;
}

StatusPoller::StatusPoller(AdminClient& client, std::chrono::milliseconds interval,
                           std::chrono::milliseconds call_timeout,
                           std::function<void(const v1::StatusResponse&)> on_status)
    : client_(client),
      interval_(interval),
      call_timeout_(call_timeout),
      on_status_(std::move(on_status)),
      thread_([this] { Run(); }) {}

StatusPoller::~StatusPoller() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (in_flight_ != nullptr) in_flight_->TryCancel();
  }
  wake_.notify_all();
  thread_.join();
}

void StatusPoller::Run() {
  std::unique_lock lock(mu_);
  while (!wake_.wait_for(lock, interval_, [this] { return stopping_; })) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + call_timeout_);
    // Published before the call, so that the destructor can cancel it.
    in_flight_ = &context;
    lock.unlock();
    absl::StatusOr<v1::StatusResponse> status = client_.Status(context);
    if (status.ok()) on_status_(*status);
    lock.lock();
    in_flight_ = nullptr;
  }
}

}  // namespace streamgrid::admin_cli
