#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/statusor.h"
#include "etcd/etcd_client.h"
#include "etcd/lease.h"
#include "transcode/job_claims.h"

namespace streamgrid {

struct EtcdJobClaimsOptions {
  // Identifies this process in the claims it writes (for people reading etcd).
  std::string server_id;
  std::string key_prefix = "/streamgrid/";
  // Lifetime of the process's lease: how long a dead server's claims outlive it.
  std::chrono::seconds lease_ttl{10};
  // Waits between attempts to get a new lease after one was lost.
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{5000};
};

// Job claims shared through etcd by every web server.
//
// The process holds one lease. A claim is the key `<prefix>claims/<video_id>`,
// holding the server id and attached to the lease, created by a transaction
// only if the key is absent; releasing deletes it only if it is still the key
// this claim created (same create revision). When the process dies its lease
// expires after the TTL, its claims vanish with it and another server can
// claim those jobs.
//
// When the lease is lost (etcd says it is gone, or it could not be refreshed
// for a whole TTL), every claim held counts as lost at once and their
// `on_lost` callbacks run: another server may take the jobs over. A background
// thread then grants a new lease, retrying with bounded back-off until it gets
// one or Stop() is called; TryClaim fails with UNAVAILABLE meanwhile.
class EtcdJobClaims : public JobClaims {
 public:
  // Grants the first lease (if that fails, the background thread keeps
  // trying) and starts the thread. INVALID_ARGUMENT for an empty server id or
  // a TTL below 2 s. `client` must outlive the result.
  static absl::StatusOr<std::unique_ptr<EtcdJobClaims>> Create(etcd::EtcdClient& client,
                                                               EtcdJobClaimsOptions options);

  // Stops (see Stop()). Every claim must be destroyed before this set is.
  ~EtcdJobClaims() override;

  EtcdJobClaims(const EtcdJobClaims&) = delete;
  EtcdJobClaims& operator=(const EtcdJobClaims&) = delete;

  // Also UNAVAILABLE while there is no lease, after Stop(), and when the
  // lease is lost during the call. A key left by an earlier call of this
  // process whose outcome was unknown is taken as this claim.
  absl::StatusOr<std::unique_ptr<JobClaim>> TryClaim(std::string_view video_id,
                                                     std::function<void()> on_lost) override;

  // Ends the background thread and revokes the lease, so claims still held
  // (they count as lost; their callbacks run) vanish at once. Idempotent.
  void Stop();

  // The key holding `video_id`'s claim.
  std::string ClaimKey(std::string_view video_id) const;

  // The current lease's id, 0 while there is none (for tests and logs).
  int64_t lease_id() const;

  // Simulates the death of this process, for tests: the lease is no longer
  // refreshed nor revoked (its claims stay in etcd until it expires), claims
  // held count as lost (callbacks run, releases do nothing) and no new lease
  // is granted, so every later TryClaim fails.
  void AbandonForTesting();

 private:
  class Claim;
  struct Held {
    uint64_t generation = 0;  // of the lease the claim is attached to
    bool lost = false;
    std::function<void()> on_lost;
  };

  EtcdJobClaims(etcd::EtcdClient& client, EtcdJobClaimsOptions options);

  // Grants a lease of the next generation and installs it; false on failure.
  bool GrantLease();
  void OnLeaseLost(uint64_t generation);
  // Marks every held claim lost and runs its callback. Requires mu_.
  void LoseAllLocked();
  void RegrantLoop();
  bool LeaseUsableLocked() const;
  bool IsLost(const std::string& video_id) const;
  void Release(const std::string& video_id, int64_t create_revision);

  etcd::EtcdClient& client_;
  const EtcdJobClaimsOptions options_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;               // Stop() called
  bool abandoned_ = false;              // AbandonForTesting() called
  std::unique_ptr<etcd::Lease> lease_;  // null while there is none
  uint64_t lease_generation_ = 0;       // of lease_
  uint64_t next_generation_ = 1;
  uint64_t lost_generation_ = 0;  // leases of this generation and older are lost
  // By video id; an entry with generation 0 is a claim being made.
  std::map<std::string, Held, std::less<>> held_;
  std::thread regrant_thread_;
};

}  // namespace streamgrid
