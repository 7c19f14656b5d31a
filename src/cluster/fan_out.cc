#include "cluster/fan_out.h"

namespace streamgrid {

FanOut::FanOut(size_t n) {
  for (size_t i = 1; i < n; ++i) threads_.emplace_back([this, i] { Loop(i); });
}

FanOut::~FanOut() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  start_.notify_all();
  for (std::thread& thread : threads_) thread.join();
}

void FanOut::Run(const std::function<void(size_t)>& fn) {
  {
    std::lock_guard lock(mu_);
    task_ = &fn;
    pending_ = threads_.size();
    ++generation_;
  }
  start_.notify_all();
  fn(0);
  std::unique_lock lock(mu_);
  done_.wait(lock, [&] { return pending_ == 0; });
  task_ = nullptr;
}

void FanOut::Loop(size_t i) {
  // Each Run() bumps the generation; a thread runs the task once per bump.
  uint64_t seen = 0;
  while (true) {
    const std::function<void(size_t)>* task;
    {
      std::unique_lock lock(mu_);
      start_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      task = task_;
    }
    (*task)(i);
    std::lock_guard lock(mu_);
    if (--pending_ == 0) done_.notify_one();
  }
}

}  // namespace streamgrid
