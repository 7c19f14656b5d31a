#pragma once

// Migration coordination between web servers that share one etcd.
//
// Every web server registers `<prefix>servers/<server_id>` under its own lease
// before it puts any cluster state in force, and keeps there the revision of
// the state it has in force and the revision it has drained: the newest
// state revision such that none of its writes planned under an older state is
// still running. A migrator waits until every registered server has drained
// the revision its step relies on; a server that dies drops out with its
// lease. Registering before loading the state matters: a server that a
// migrator's listing does not show yet will load a state at least as new as
// the one the migrator published.
//
// A server that loses its registration (its lease expired: it was cut off
// from etcd, or stalled) would no longer be waited for, so it refuses new
// writes (Cluster::FenceWrites) until it is registered again and has reloaded
// the cluster state.
//
// The migration runner is whoever holds `<prefix>migration/runner`, a key
// under the holder's registration lease: created only when absent, so one
// server runs migration steps, and another takes over within a lease TTL of
// the runner's death.
//
// Known gap: writes already running when a partitioned server loses its lease
// are not cancelled; one of them could still land on old owners after a
// migration elsewhere copied their partition.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "cluster/cluster.h"
#include "etcd/etcd_client.h"
#include "etcd/registration.h"
#include "migration/migration_coordinator.h"

namespace streamgrid {

struct EtcdMigrationCoordinatorOptions {
  std::string server_id;
  std::string key_prefix = "/streamgrid/";
  // How long a dead server's registration (and runner key) outlives it.
  std::chrono::seconds lease_ttl{10};
  // How often the drain report and a waiting migrator look again.
  std::chrono::milliseconds poll_interval{100};
};

// A web server's entry in the registry, as other servers read it.
struct RegisteredServer {
  std::string server_id;
  uint64_t state_revision = 0;    // of the cluster state in force
  uint64_t drained_revision = 0;  // no write of it runs under an older state
};

class EtcdMigrationCoordinator final : public MigrationCoordinator {
 public:
  // Registers this server (drained revision 0 until Attach) and fails when
  // etcd does not take the registration. INVALID_ARGUMENT for an empty server
  // id. `client` must outlive the result.
  static absl::StatusOr<std::unique_ptr<EtcdMigrationCoordinator>> Create(
      etcd::EtcdClient& client, EtcdMigrationCoordinatorOptions options);

  // Stop().
  ~EtcdMigrationCoordinator() override;

  // Starts reporting what `cluster` has drained, and fencing its writes while
  // the registration is lost. `reload` puts the stored cluster state in force
  // (the follower's reload); it is called after a lost registration is back,
  // before writes are allowed again. Both must outlive the coordinator (or
  // Stop()). Call once.
  void Attach(Cluster& cluster, std::function<void()> reload);

  // Ends the report thread and revokes the registration (with any runner key
  // under it). Idempotent.
  void Stop();

  absl::Status AwaitWritesDrained(uint64_t revision, std::chrono::milliseconds timeout,
                                  const std::function<bool()>& stopping) override;
  bool TryBecomeRunner() override;

  // Every registered server, by id. For the admin API and tests.
  absl::StatusOr<std::vector<RegisteredServer>> Servers();

  // The id of the server holding the runner key; "" when none does.
  absl::StatusOr<std::string> Runner();

  // How often this server's registration was lost (and its writes fenced).
  uint64_t registrations_lost() const;

  std::string ServerKey(std::string_view server_id) const;
  std::string RunnerKey() const;

  // For tests: the registration stops being refreshed, as if this process
  // hung; its key and runner key expire with the lease.
  void AbandonForTesting();

 private:
  EtcdMigrationCoordinator(etcd::EtcdClient& client, EtcdMigrationCoordinatorOptions options);
  void Report();
  void OnRegistrationChange(bool registered);

  etcd::EtcdClient& client_;
  const EtcdMigrationCoordinatorOptions options_;
  std::unique_ptr<etcd::Registration> registration_;

  Cluster* cluster_ = nullptr;  // set once by Attach
  std::function<void()> reload_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;      // guarded by mu_
  bool needs_reload_ = false;  // guarded by mu_: the registration changed
  bool report_now_ = false;    // guarded by mu_: a migrator waits for reports
  uint64_t losses_ = 0;        // guarded by mu_: registrations lost so far
  std::thread reporter_;
  std::atomic<int64_t> runner_lease_{0};  // the lease the runner key was put under by us
};

}  // namespace streamgrid
