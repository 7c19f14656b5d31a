#pragma once

#include <functional>
#include <map>
#include <mutex>

namespace streamgrid {

// A one-shot cancellation flag shared between the code doing a job and whoever may
// want it stopped. Thread-safe.
class CancelToken {
 public:
  // Unregisters its callback when destroyed; after that the callback is neither
  // running nor will it run.
  class Registration {
   public:
    Registration() = default;
    Registration(Registration&& other) noexcept;
    Registration& operator=(Registration&& other) noexcept;
    ~Registration();

   private:
    friend class CancelToken;
    Registration(CancelToken* token, int id) : token_(token), id_(id) {}
    void Reset();

    CancelToken* token_ = nullptr;
    int id_ = 0;
  };

  CancelToken() = default;
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  // Marks the token cancelled and runs every registered callback (on the calling
  // thread). Later calls do nothing.
  void Cancel();

  // True once Cancel() has been called.
  bool cancelled() const;

  // Runs `callback` when Cancel() is called, or right away on this thread if it
  // already was. Callbacks must be quick and must not use this token. The token
  // must outlive the returned registration.
  [[nodiscard]] Registration OnCancel(std::function<void()> callback);

 private:
  void Unregister(int id);

  mutable std::mutex mu_;
  bool cancelled_ = false;
  int next_id_ = 1;
  std::map<int, std::function<void()>> callbacks_;
};

}  // namespace streamgrid
