#include "cluster/etcd_cluster_state_store.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace streamgrid {

EtcdClusterStateStore::EtcdClusterStateStore(etcd::EtcdClient& client, std::string prefix)
    : client_(client), key_(std::move(prefix) + "cluster/state") {}

absl::StatusOr<std::optional<ClusterState>> EtcdClusterStateStore::Load() {
  absl::StatusOr<std::optional<etcd::KeyValue>> kv = client_.Get(key_);
  if (!kv.ok()) return kv.status();
  if (!kv->has_value()) return std::nullopt;
  absl::StatusOr<ClusterState> state = ClusterStateFromJson((*kv)->value);
  if (!state.ok()) {
    return absl::DataLossError(
        absl::StrCat("stored cluster state in etcd is unreadable: ", state.status().message()));
  }
  state->revision = static_cast<uint64_t>((*kv)->mod_revision);
  return std::optional<ClusterState>(*std::move(state));
}

absl::StatusOr<uint64_t> EtcdClusterStateStore::Save(const ClusterState& state,
                                                     uint64_t expected_revision) {
  ClusterState stored = state;
  stored.revision = 0;  // the key's mod_revision is the revision
  const std::string json = ClusterStateToJson(stored);
  etcd::Txn txn;
  if (expected_revision == 0) {
    txn.IfAbsent(key_);
  } else {
    txn.IfUnchangedSince(key_, static_cast<int64_t>(expected_revision));
  }
  txn.ThenPut(key_, json);
  absl::StatusOr<etcd::TxnResult> result = client_.Commit(txn);
  if (result.ok()) {
    if (!result->succeeded) {
      return absl::AbortedError("the cluster state changed since it was read");
    }
    return static_cast<uint64_t>(result->revision);
  }
  if (!etcd::EtcdClient::IsRetriable(result.status())) return result.status();
  // The answer was lost: find out what happened.
  absl::StatusOr<std::optional<etcd::KeyValue>> now = client_.Get(key_);
  if (!now.ok()) return result.status();
  const uint64_t revision = now->has_value() ? (*now)->mod_revision : 0;
  if (now->has_value() && (*now)->value == json && revision != expected_revision) {
    return revision;
  }
  if (revision == expected_revision) return result.status();
  return absl::AbortedError("the cluster state changed since it was read");
}

}  // namespace streamgrid
