#pragma once

#include <filesystem>
#include <memory>
#include <mutex>

#include "cluster/cluster_state_store.h"

struct sqlite3;

namespace streamgrid {

// A ClusterStateStore in one row of table `cluster_state` of an SQLite file,
// which may be shared with other tables and processes (WAL, busy timeout).
class SqliteClusterStateStore : public ClusterStateStore {
 public:
  // Opens (creating if needed) `db_file` and the table.
  static absl::StatusOr<std::unique_ptr<SqliteClusterStateStore>> Open(
      const std::filesystem::path& db_file);
  ~SqliteClusterStateStore() override;

  absl::StatusOr<std::optional<ClusterState>> Load() override;
  absl::StatusOr<uint64_t> Save(const ClusterState& state, uint64_t expected_revision) override;

 private:
  explicit SqliteClusterStateStore(sqlite3* db) : db_(db) {}

  std::mutex mu_;  // one connection: serialize its use
  sqlite3* db_;
};

}  // namespace streamgrid
