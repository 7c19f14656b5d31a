#include "cluster/sqlite_cluster_state_store.h"

#include <sqlite3.h>

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace streamgrid {
namespace {

// Long enough to ride out another process's checkpoint or short transaction.
constexpr int kBusyTimeoutMs = 5000;

absl::Status SqliteError(sqlite3* db, int rc, const char* what) {
  std::string message = absl::StrCat("cluster state store: ", what, ": ", sqlite3_errmsg(db));
  if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
    return absl::UnavailableError(message);
  }
  return absl::InternalError(message);
}

absl::Status Exec(sqlite3* db, const char* sql) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? absl::OkStatus() : SqliteError(db, rc, sql);
}

// One prepared statement, finalized on scope exit.
struct Statement {
  sqlite3_stmt* stmt = nullptr;
  ~Statement() { sqlite3_finalize(stmt); }
};

// The stored (revision, json), or revision 0 when there is no row.
absl::Status ReadRow(sqlite3* db, uint64_t& revision, std::string& json) {
  Statement s;
  int rc = sqlite3_prepare_v2(db, "SELECT revision, state FROM cluster_state WHERE id = 1", -1,
                              &s.stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db, rc, "prepare select");
  rc = sqlite3_step(s.stmt);
  if (rc == SQLITE_DONE) {
    revision = 0;
    return absl::OkStatus();
  }
  if (rc != SQLITE_ROW) return SqliteError(db, rc, "select");
  revision = static_cast<uint64_t>(sqlite3_column_int64(s.stmt, 0));
  const unsigned char* text = sqlite3_column_text(s.stmt, 1);
  json.assign(text ? reinterpret_cast<const char*>(text) : "",
              static_cast<size_t>(sqlite3_column_bytes(s.stmt, 1)));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteClusterStateStore>> SqliteClusterStateStore::Open(
    const std::filesystem::path& db_file) {
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(db_file.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  // Own the handle at once: sqlite3_open_v2 allocates one even when it fails.
  std::unique_ptr<SqliteClusterStateStore> store(new SqliteClusterStateStore(db));
  if (rc != SQLITE_OK) return SqliteError(db, rc, "open");
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  if (absl::Status s = Exec(db, "PRAGMA journal_mode = WAL"); !s.ok()) return s;
  if (absl::Status s = Exec(db, "PRAGMA synchronous = FULL"); !s.ok()) return s;
  if (absl::Status s = Exec(db,
                            "CREATE TABLE IF NOT EXISTS cluster_state ("
                            "  id INTEGER PRIMARY KEY CHECK (id = 1),"
                            "  revision INTEGER NOT NULL,"
                            "  state TEXT NOT NULL)");
      !s.ok()) {
    return s;
  }
  return store;
}

SqliteClusterStateStore::~SqliteClusterStateStore() { sqlite3_close_v2(db_); }

absl::StatusOr<std::optional<ClusterState>> SqliteClusterStateStore::Load() {
  std::lock_guard lock(mu_);
  uint64_t revision = 0;
  std::string json;
  if (absl::Status s = ReadRow(db_, revision, json); !s.ok()) return s;
  if (revision == 0) return std::nullopt;
  absl::StatusOr<ClusterState> state = ClusterStateFromJson(json);
  if (!state.ok()) {
    return absl::DataLossError(
        absl::StrCat("stored cluster state is unreadable: ", state.status().message()));
  }
  state->revision = revision;
  return std::optional<ClusterState>(*std::move(state));
}

absl::StatusOr<uint64_t> SqliteClusterStateStore::Save(const ClusterState& state,
                                                       uint64_t expected_revision) {
  std::lock_guard lock(mu_);
  // IMMEDIATE takes the write lock up front, so the compare and the write are
  // one step for every process sharing the file.
  if (absl::Status s = Exec(db_, "BEGIN IMMEDIATE"); !s.ok()) return s;
  auto rollback = [&](absl::Status status) {
    Exec(db_, "ROLLBACK").IgnoreError();
    return status;
  };
  uint64_t stored = 0;
  std::string unused;
  if (absl::Status s = ReadRow(db_, stored, unused); !s.ok()) return rollback(s);
  if (stored != expected_revision) {
    return rollback(absl::AbortedError(
        absl::StrCat("cluster state revision is ", stored, ", expected ", expected_revision)));
  }
  const uint64_t revision = stored + 1;
  ClusterState copy = state;
  copy.revision = revision;
  const std::string json = ClusterStateToJson(copy);
  Statement s;
  int rc = sqlite3_prepare_v2(
      db_, "INSERT OR REPLACE INTO cluster_state (id, revision, state) VALUES (1, ?, ?)", -1,
      &s.stmt, nullptr);
  if (rc != SQLITE_OK) return rollback(SqliteError(db_, rc, "prepare insert"));
  sqlite3_bind_int64(s.stmt, 1, static_cast<sqlite3_int64>(revision));
  sqlite3_bind_text(s.stmt, 2, json.data(), static_cast<int>(json.size()), SQLITE_TRANSIENT);
  rc = sqlite3_step(s.stmt);
  if (rc != SQLITE_DONE) return rollback(SqliteError(db_, rc, "insert"));
  if (absl::Status st = Exec(db_, "COMMIT"); !st.ok()) return rollback(st);
  return revision;
}

}  // namespace streamgrid
