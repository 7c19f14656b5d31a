#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "etcd/etcd_client.h"

namespace streamgrid::etcd {

// An etcd lease kept alive by a background thread: keys written with its id
// vanish when it ends, so they say "this process is alive" (job claims, node
// registrations). Thread-safe.
//
// The lease is refreshed every TTL/3 (each refresh a bounded call, on another
// member when one fails, retried every few hundred milliseconds). If no
// refresh succeeds for a whole TTL, or etcd answers that the lease is gone, the
// lease counts as lost: alive() turns false, `on_lost` runs once (on the
// keeper's thread) and refreshing stops. A holder must then stop acting on
// what the lease guarded.
class Lease {
 public:
  // Grants a lease of `ttl` (whole seconds, at least 2) and starts keeping it
  // alive. Granting is retried like a read: a grant whose answer was lost only
  // leaves an unused lease that expires by itself.
  static absl::StatusOr<std::unique_ptr<Lease>> Grant(EtcdClient& client, std::chrono::seconds ttl,
                                                      std::function<void()> on_lost = {});

  // Stops refreshing; the lease then expires within its TTL unless revoked.
  ~Lease();

  int64_t id() const { return id_; }
  std::chrono::seconds ttl() const { return ttl_; }
  bool alive() const;

  // Stops refreshing and revokes the lease (its keys go at once). Idempotent.
  absl::Status Revoke();

  // Seconds the lease `id` has left, or -1 if it does not exist (any more).
  static absl::StatusOr<int64_t> TimeToLive(EtcdClient& client, int64_t id);

 private:
  Lease(EtcdClient& client, int64_t id, std::chrono::seconds ttl, std::function<void()> on_lost);
  void KeepAlive();
  // One refresh on the preferred member: the TTL etcd granted again (<= 0 if
  // the lease is gone).
  absl::StatusOr<int64_t> RefreshOnce();
  void StopKeeping();

  EtcdClient& client_;
  const int64_t id_;
  const std::chrono::seconds ttl_;
  const std::function<void()> on_lost_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;  // guarded by mu_
  bool alive_ = true;  // guarded by mu_
  std::thread keeper_;
};

}  // namespace streamgrid::etcd
