#pragma once

#include <string>
#include <string_view>

#include "cluster/cluster_state_store.h"
#include "etcd/etcd_client.h"

namespace streamgrid {

// A ClusterStateStore in one etcd key, `<prefix>cluster/state`, holding the
// state as JSON; the store's revision is the key's mod_revision, so Save is a
// transaction comparing it. Shared by every web server of the cluster.
class EtcdClusterStateStore : public ClusterStateStore {
 public:
  // `client` must outlive the store.
  EtcdClusterStateStore(etcd::EtcdClient& client, std::string prefix = "/streamgrid/");

  absl::StatusOr<std::optional<ClusterState>> Load() override;

  // As ClusterStateStore::Save. When etcd's answer is lost (the write may or
  // may not have happened) the key is read again: OK if it now holds this
  // state, ABORTED if someone else's, UNAVAILABLE if still the old one.
  absl::StatusOr<uint64_t> Save(const ClusterState& state, uint64_t expected_revision) override;

  // The key the state lives in (for watching it).
  const std::string& key() const { return key_; }

 private:
  etcd::EtcdClient& client_;
  const std::string key_;
};

}  // namespace streamgrid
