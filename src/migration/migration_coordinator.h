#pragma once

// What a migration needs from the web servers that share the storage cluster:
// that no write still runs under a placement older than the one a migration
// step relies on, and that one server at a time runs the migration.
//
// One web server (SQLite metadata) coordinates with itself: its own Cluster
// view knows every write (LocalMigrationCoordinator). Several web servers on
// one etcd register there and report what they have drained
// (EtcdMigrationCoordinator).

#include <chrono>
#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "cluster/cluster.h"

namespace streamgrid {

class MigrationCoordinator {
 public:
  virtual ~MigrationCoordinator() = default;

  // Waits until no write of any web server can still be running under a
  // cluster state older than `revision`: every server has a state of at least
  // that revision in force, and the writes it planned under earlier ones are
  // over. DEADLINE_EXCEEDED after `timeout`, CANCELLED once `stopping` returns
  // true (polled).
  virtual absl::Status AwaitWritesDrained(uint64_t revision, std::chrono::milliseconds timeout,
                                          const std::function<bool()>& stopping) = 0;

  // Whether this server is the one to run migration steps now. Called before
  // each step; false means another live server runs them (or this one cannot
  // tell right now), and the caller asks again later.
  virtual bool TryBecomeRunner() = 0;
};

// The coordinator of a web server that is alone on its cluster.
class LocalMigrationCoordinator final : public MigrationCoordinator {
 public:
  // `cluster` must outlive the coordinator.
  explicit LocalMigrationCoordinator(const Cluster& cluster) : cluster_(cluster) {}

  absl::Status AwaitWritesDrained(uint64_t revision, std::chrono::milliseconds timeout,
                                  const std::function<bool()>& stopping) override;
  bool TryBecomeRunner() override { return true; }

 private:
  const Cluster& cluster_;
};

}  // namespace streamgrid
