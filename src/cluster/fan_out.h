#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace streamgrid {

// Runs fn(i) for every i below n at once, i = 0 on the calling thread and each
// other on a thread of its own kept for the object's lifetime, and waits for
// all. Lets a writer push one chunk to every replica in parallel without
// copying it or starting threads per chunk.
class FanOut {
 public:
  // Starts n - 1 threads.
  explicit FanOut(size_t n);
  // Joins the threads; no Run() may be in progress.
  ~FanOut();

  // Calls fn(0) .. fn(n - 1) in parallel and returns when all have returned.
  // One Run() at a time.
  void Run(const std::function<void(size_t)>& fn);

 private:
  void Loop(size_t i);

  std::mutex mu_;
  std::condition_variable start_;
  std::condition_variable done_;
  const std::function<void(size_t)>* task_ = nullptr;  // guarded by mu_
  uint64_t generation_ = 0;                            // guarded by mu_
  size_t pending_ = 0;                                 // guarded by mu_
  bool stop_ = false;                                  // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace streamgrid
