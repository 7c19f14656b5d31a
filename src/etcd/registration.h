#pragma once

// A key that says "this process is here and this is its state": kept in etcd
// under the process's own lease, so it vanishes within a TTL of the process
// dying, hanging or losing etcd. Web servers register themselves (with the
// cluster state they have in force) and storage nodes register themselves
// (with their address and usage).
//
// One background thread does every write, in order: the first registration,
// value changes from Set(), and, after the lease is lost, a new lease and the
// key written again (with bounded back-off, until it succeeds or Stop()). So a
// value never goes back to an older one, and a failed write is simply retried.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "etcd/etcd_client.h"
#include "etcd/lease.h"

namespace streamgrid::etcd {

struct RegistrationOptions {
  std::string key;
  std::string value;
  // The lease's TTL: how long the key outlives the process.
  std::chrono::seconds ttl{10};
  // Waits between failed attempts to register again.
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{5000};
  // Called on the registration's thread when the key stops being ours (the
  // lease was lost: false) and when it is written under a new lease (true).
  // Not called for the first registration nor for Stop().
  std::function<void(bool registered)> on_change;
};

// Thread-safe.
class Registration {
 public:
  // Grants a lease and writes the key within `first_timeout`; UNAVAILABLE (or
  // DEADLINE_EXCEEDED) when etcd does not take it by then, INVALID_ARGUMENT for
  // an empty key or a TTL below 2 s. `client` must outlive the result.
  static absl::StatusOr<std::unique_ptr<Registration>> Create(
      EtcdClient& client, RegistrationOptions options,
      std::chrono::milliseconds first_timeout = std::chrono::seconds(15));

  // Stop().
  ~Registration();

  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;

  // Makes `value` the key's value: written soon by the background thread
  // (retried until it is), or with the next registration while the lease is
  // lost. Values set in a row may be collapsed into the last one.
  void Set(std::string value);

  // Whether the key is held under a live lease right now and its last write
  // succeeded.
  bool registered() const;
  // The lease the key is attached to; 0 while not registered. Other keys put
  // under it share the registration's fate (a lock held while registered).
  int64_t lease_id() const;
  // The last value written to etcd ("" before the first write succeeded).
  std::string written_value() const;

  // Ends the thread and revokes the lease, so the key goes at once.
  // Idempotent.
  void Stop();

  // For tests: stops refreshing without revoking, as a process that died
  // would; the key expires with the lease's TTL.
  void AbandonForTesting();

 private:
  Registration(EtcdClient& client, RegistrationOptions options);

  // Grants a lease (unless one is held) and writes the value under it.
  absl::Status Write();
  void Run();
  void OnLeaseLost(uint64_t generation);

  EtcdClient& client_;
  const RegistrationOptions options_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool abandoned_ = false;
  std::string value_;             // the value wanted
  std::string written_;           // the value last written
  bool dirty_ = true;             // value_ not yet written under the current lease
  std::unique_ptr<Lease> lease_;  // null after a loss until a new one is granted
  uint64_t generation_ = 0;       // of lease_
  bool lost_ = false;             // lease_ was reported lost
  bool registered_ = false;
  std::thread thread_;
};

}  // namespace streamgrid::etcd
