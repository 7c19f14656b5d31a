#include "cluster/cluster_state_follower.h"

#include <spdlog/spdlog.h>

#include <utility>

namespace streamgrid {

ClusterStateFollower::ClusterStateFollower(Cluster& cluster, EtcdClusterStateStore& store,
                                           etcd::EtcdClient& client)
    : cluster_(cluster), store_(store), client_(client) {}

ClusterStateFollower::~ClusterStateFollower() { Stop(); }

void ClusterStateFollower::Start() {
  if (watcher_) return;
  etcd::WatchOptions options{
      .prefix = store_.key(),
      .start_revision = static_cast<int64_t>(cluster_.state()->revision) + 1,
  };
  watcher_ = etcd::Watcher::Start(client_, std::move(options),
                                  [this](const etcd::WatchBatch&) { Reload(); });
}

void ClusterStateFollower::Stop() {
  if (watcher_) watcher_->Stop();
}

void ClusterStateFollower::Reload() {
  std::lock_guard lock(reload_mu_);
  absl::StatusOr<std::optional<ClusterState>> stored = store_.Load();
  if (!stored.ok()) {
    // The watch retries on its own; the next event or reconnection reloads.
    spdlog::warn("could not reload the cluster state: {}", stored.status().ToString());
    return;
  }
  if (!stored->has_value()) return;
  const uint64_t revision = (*stored)->revision;
  const uint64_t version = (*stored)->current.version();
  if (cluster_.UpdateIfNewer(**std::move(stored))) {
    spdlog::info("cluster state changed elsewhere: now revision {} (placement version {})",
                 revision, version);
  }
}

}  // namespace streamgrid
