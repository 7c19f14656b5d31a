#pragma once

#include <memory>
#include <mutex>

#include "cluster/cluster.h"
#include "cluster/etcd_cluster_state_store.h"
#include "etcd/watcher.h"

namespace streamgrid {

// Keeps a web server's Cluster view in step with the cluster state in etcd,
// which other web servers change (node added or removed, migration
// progress): a watch on the state's key triggers a reload, and a newer state
// than the view's is put in force. Watch events are only hints (etcd 3.4 can
// repeat or reorder them): every reload reads the key, and only a higher
// revision replaces the view.
class ClusterStateFollower {
 public:
  // `cluster`, `store` and `client` must outlive the follower.
  ClusterStateFollower(Cluster& cluster, EtcdClusterStateStore& store, etcd::EtcdClient& client);
  ~ClusterStateFollower();  // Stop()s

  // Starts watching from the revision after the view's state.
  void Start();
  // Stops watching; idempotent.
  void Stop();

  // Reads the stored state and puts it in force if it is newer than the view.
  void Reload();

 private:
  Cluster& cluster_;
  EtcdClusterStateStore& store_;
  etcd::EtcdClient& client_;
  std::mutex reload_mu_;  // one reload at a time
  std::unique_ptr<etcd::Watcher> watcher_;
};

}  // namespace streamgrid
