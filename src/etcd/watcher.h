#pragma once

// A watch on every key under a prefix in etcd that outlives member failures.
//
// One background thread runs one Watch stream on the client's preferred
// member. When the stream breaks (member down, leader lost, a stuck connect),
// the thread moves on to another member with bounded exponential back-off and
// creates the watch again from the revision after the last one it delivered,
// so in normal operation every change is delivered once, in revision order.
//
// Events are still hints, not a log: etcd 3.4 has known watch bugs (events
// sent twice, a stream going back in time). The watcher drops every event at
// or below the revision it has already delivered, which hides the known cases,
// but handlers should apply events idempotently (a key's mod_revision tells
// which of two values is newer) and rely on a re-list after a reset.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "etcd/etcd_client.h"
#include "grpcpp/client_context.h"

namespace streamgrid::etcd {

struct WatchOptions {
  // Every key starting with it is watched; empty watches every key.
  std::string prefix;
  // The first revision to deliver changes from (replaying history); 0 means
  // the changes after the watch is first established.
  int64_t start_revision = 0;
  // Whether events carry the key's previous value (when etcd still has it).
  bool prev_kv = false;
  // How long one attempt may take to connect and have etcd confirm the watch
  // before it is given up for another member.
  std::chrono::milliseconds create_timeout = std::chrono::seconds(3);
  // Pause between failed attempts: starts here, doubles up to max_backoff, and
  // starts over once a stream has been established.
  std::chrono::milliseconds initial_backoff = std::chrono::milliseconds(100);
  std::chrono::milliseconds max_backoff = std::chrono::seconds(2);
};

struct WatchEvent {
  enum Type { kPut, kDelete };
  Type type = kPut;
  // For kDelete only the key and mod_revision (the deletion's revision) are
  // set.
  KeyValue kv;
  // The key's value before this change, if WatchOptions::prev_kv and etcd
  // still had it.
  std::optional<KeyValue> prev_kv;
};

struct WatchBatch {
  // Changes in revision order; several events share a revision when one
  // transaction changed several keys (a revision is never split over batches).
  std::vector<WatchEvent> events;
  // Every change up to and including `revision` has now been delivered: the
  // mod_revision of the last event. For a reset: the watcher goes on with the
  // changes after `revision`.
  int64_t revision = 0;
  // No events: history the watcher still needed was compacted away, so
  // changes were missed. The caller must list the prefix again (at a revision
  // >= `revision`); the watcher carries on by itself with the changes after
  // `revision`, which may repeat some that the listing already holds.
  bool reset = false;
};

// Thread-safe.
class Watcher {
 public:
  // Called on the watcher's own thread, one batch at a time; the watcher waits
  // for it to return. It must not destroy the watcher; it may call Stop().
  using Handler = std::function<void(const WatchBatch& batch)>;

  // Starts watching in the background at once; never fails (an unreachable
  // cluster is retried until Stop()). `client` must outlive the watcher.
  static std::unique_ptr<Watcher> Start(EtcdClient& client, WatchOptions options, Handler handler);

  // Stop().
  ~Watcher();

  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Ends the stream and waits for the thread (promptly, whatever state the
  // members are in); no handler call runs or starts after it returns (unless
  // called from the handler, where it returns at once and the watcher ends
  // when the handler returns). Idempotent.
  void Stop();

  // Every change up to this revision has been delivered (or was covered by a
  // reset); a new watch from last_revision() + 1 would continue seamlessly.
  // Includes revisions learned from etcd's progress notices while nothing
  // under the prefix changes. It moves past a batch only after the handler
  // returned from it. 0 until known (start_revision 0, not yet established).
  int64_t last_revision() const { return last_revision_.load(); }

  // Whether a stream with the watch established is running right now.
  bool healthy() const { return healthy_.load(); }

 private:
  using Stream =
      grpc::ClientReaderWriterInterface<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>;

  // How one stream attempt ended.
  enum class StreamEnd {
    kStopped,    // Stop() was called
    kFailed,     // broken, refused or timed out: back off, try another member
    kResumeNow,  // the watch was reset after a compaction: create it again now
  };

  Watcher(EtcdClient& client, WatchOptions options, Handler handler);

  // The watcher thread: stream attempts until Stop().
  void Run();
  // One stream on `channel`, until it ends. Sets `*established` once etcd
  // confirms the watch.
  StreamEnd RunStream(const std::shared_ptr<grpc::Channel>& channel, bool* established);
  // Reads responses until the stream ends (then sets `*ended_by_etcd`) or the
  // watch is canceled.
  StreamEnd ReadLoop(Stream& stream, bool* established, bool* ended_by_etcd);
  StreamEnd OnCanceled(const etcdserverpb::WatchResponse& response);
  void Deliver(const etcdserverpb::WatchResponse& response);
  etcdserverpb::WatchRequest CreateRequest() const;
  // Sleeps for `pause` unless Stop() comes first; false when stopping.
  bool Pause(std::chrono::milliseconds pause);
  void SetNextRevision(int64_t next);
  // The timer thread: cancels a stream attempt that has not been confirmed by
  // its create deadline, since the watcher thread is blocked in it.
  void RunWatchdog();

  EtcdClient& client_;
  const WatchOptions options_;
  const Handler handler_;

  std::atomic<int64_t> last_revision_{0};
  std::atomic<bool> healthy_{false};

  std::mutex mu_;
  std::condition_variable cv_;  // signals stopping_ and create_deadline_ changes
  bool stopping_ = false;       // guarded by mu_
  // The running attempt's context, for TryCancel; guarded by mu_ (it is
  // cleared before the context dies).
  grpc::ClientContext* context_ = nullptr;
  // When the running attempt is cancelled unless confirmed; guarded by mu_.
  std::optional<std::chrono::steady_clock::time_point> create_deadline_;
  // Whether the watchdog cancelled the running attempt; guarded by mu_.
  bool create_timed_out_ = false;

  // Only the watcher thread touches it: the revision the next watch starts
  // from; 0 = "from now" until the first watch is established.
  int64_t next_revision_ = 0;
  // Only the watcher thread touches it: the auth token the running stream was
  // opened with ("" without authentication).
  std::string stream_token_;

  // The watcher thread's id, for Stop() to tell a call from the handler.
  std::atomic<std::thread::id> run_thread_id_;
  std::mutex join_mu_;  // serializes the joins of concurrent Stop() calls
  std::thread thread_;
  std::thread watchdog_;
};

}  // namespace streamgrid::etcd
