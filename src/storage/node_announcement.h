#pragma once

// Storage nodes announce themselves in etcd: `<prefix>nodes/<node_id>` holds
// the node's address and usage, under the node's own lease, so the key says
// "this node is running" and vanishes within a TTL of it dying. Web servers
// read the announcements to list nodes that are up but not members yet (and
// to add one by its id), and to tell a member whose process is gone.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "etcd/etcd_client.h"
#include "etcd/registration.h"
#include "storage/storage_engine.h"

namespace streamgrid::storage {

struct NodeAnnouncement {
  std::string node_id;
  // Where web servers reach the node, "host:port".
  std::string address;
  StorageUsage usage;
  int64_t started_unix_ms = 0;
  int64_t updated_unix_ms = 0;
};

std::string ToJson(const NodeAnnouncement& announcement);
// DATA_LOSS for a value that is not an announcement.
absl::StatusOr<NodeAnnouncement> NodeAnnouncementFromJson(std::string_view json);

// The key of node `node_id`'s announcement, and the prefix of them all.
std::string NodeAnnouncementKey(std::string_view prefix, std::string_view node_id);
std::string NodeAnnouncementPrefix(std::string_view prefix);

// Every node announced now, by id (a value that is not an announcement is
// skipped with a warning). `prefix` as in NodeAnnouncementKey.
absl::StatusOr<std::vector<NodeAnnouncement>> ListNodeAnnouncements(etcd::EtcdClient& client,
                                                                    std::string_view prefix);

struct NodeAnnouncerOptions {
  std::string node_id;
  std::string address;
  std::string key_prefix = "/streamgrid/";
  std::chrono::seconds lease_ttl{10};
  // How often the usage in the announcement is brought up to date.
  std::chrono::milliseconds usage_interval = std::chrono::seconds(5);
};

// Keeps one node's announcement in etcd while the node runs. Thread-safe.
//
// A node serves its files whether or not etcd answers: the announcement is
// made in the background, retried until etcd takes it, and kept up to date.
class NodeAnnouncer {
 public:
  // Starts announcing in the background; `usage` is called on the
  // announcer's thread. INVALID_ARGUMENT for an empty node id or address.
  // `client` must outlive the announcer.
  static absl::StatusOr<std::unique_ptr<NodeAnnouncer>> Start(
      etcd::EtcdClient& client, NodeAnnouncerOptions options,
      std::function<absl::StatusOr<StorageUsage>()> usage);

  // Stop().
  ~NodeAnnouncer();

  // Whether the announcement is in etcd now.
  bool announced() const;

  // Ends the refresh and withdraws the announcement at once (within a few
  // seconds when etcd does not answer). Idempotent.
  void Stop();

 private:
  NodeAnnouncer(etcd::EtcdClient& client, NodeAnnouncerOptions options,
                std::function<absl::StatusOr<StorageUsage>()> usage);
  NodeAnnouncement Current();
  void Run();
  // Sleeps up to `duration`; false if Stop() came first.
  bool Sleep(std::chrono::milliseconds duration);

  etcd::EtcdClient& client_;
  const NodeAnnouncerOptions options_;
  const std::function<absl::StatusOr<StorageUsage>()> usage_;
  const int64_t started_unix_ms_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;                             // guarded by mu_
  std::unique_ptr<etcd::Registration> registration_;  // guarded by mu_; null until made
  std::thread thread_;
};

}  // namespace streamgrid::storage
