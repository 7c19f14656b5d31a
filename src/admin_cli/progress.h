#pragma once

// What streamgrid-admin shows while it awaits a migration: a progress line
// redrawn in place on a terminal, fed by Status polls on a thread of their own.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <ostream>
#include <thread>

#include "admin_cli/admin_client.h"
#include "proto/admin.pb.h"

namespace streamgrid::admin_cli {

// The one-line progress bar on `err`, redrawn in place ('\r', then erased to
// the end of the line); a no-op when disabled. Thread-safe.
class ProgressDisplay {
 public:
  ProgressDisplay(std::ostream& err, bool enabled, int width);

  // Draws `migration`'s progress in place of the previous line.
  void Show(const v1::Migration& migration);

  // Erases the line if one is drawn, so that what follows starts on a clean one.
  void Clear();

 private:
  std::ostream& err_;
  const bool enabled_;
  const int width_;
  std::mutex mu_;
  bool shown_ = false;
};

// Polls Status on a thread of its own every `interval` (the first poll one
// interval after construction), each poll with a `call_timeout` deadline,
// handing each answer to `on_status` (on that thread), until destroyed.
// Failed polls are skipped. Destruction wakes the thread and cancels a poll in
// flight, so it returns at once.
class StatusPoller {
 public:
  StatusPoller(AdminClient& client, std::chrono::milliseconds interval,
               std::chrono::milliseconds call_timeout,
               std::function<void(const v1::StatusResponse&)> on_status);
  ~StatusPoller();

  StatusPoller(const StatusPoller&) = delete;
  StatusPoller& operator=(const StatusPoller&) = delete;

 private:
  void Run();

  AdminClient& client_;
  const std::chrono::milliseconds interval_;
  const std::chrono::milliseconds call_timeout_;
  const std::function<void(const v1::StatusResponse&)> on_status_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  grpc::ClientContext* in_flight_ = nullptr;
  std::thread thread_;  // Last: starts once the rest is initialized.
};

}  // namespace streamgrid::admin_cli
