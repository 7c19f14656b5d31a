#include "metadata/sqlite_video_metadata_service.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/ids.h"
#include "common/names.h"
#include "nlohmann/json.hpp"

namespace streamgrid {
namespace {

// Long enough to ride out another process's checkpoint or short transaction.
constexpr int kBusyTimeoutMs = 5000;
constexpr int kMaxPageSize = 1000;

// kMigrations[v] takes a database from user_version v to v + 1, and records that
// itself so the version bump commits atomically with the change.
constexpr const char* kMigrations[] = {
    R"sql(
      CREATE TABLE videos (
        id TEXT PRIMARY KEY NOT NULL,
        title TEXT NOT NULL,
        status TEXT NOT NULL,
        progress INTEGER NOT NULL,
        duration_seconds REAL NOT NULL,
        renditions TEXT NOT NULL,  -- JSON array of {name, width, height, bitrate}
        error TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX videos_by_status ON videos (status, id);
      PRAGMA user_version = 1;
    )sql",
    R"sql(
      ALTER TABLE videos ADD COLUMN playable INTEGER NOT NULL DEFAULT 0;
      PRAGMA user_version = 2;
    )sql",
    R"sql(
      ALTER TABLE videos ADD COLUMN storyboard INTEGER NOT NULL DEFAULT 0;
      PRAGMA user_version = 3;
    )sql",
};
static_assert(std::size(kMigrations) == SqliteVideoMetadataService::kSchemaVersion);

// Column order ReadRecord() expects.
constexpr const char* kColumns =
    "id, title, status, progress, duration_seconds, renditions, error, created_at_ms, "
    "updated_at_ms, playable, storyboard";

// Debian's abseil is built with its own absl::string_view (not std::string_view),
// so std::string_view arguments to absl::StrCat need converting.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// `rc` must be the (extended) result code of the call that just failed on `db`,
// so that sqlite3_errmsg() describes it.
absl::Status SqliteError(sqlite3* db, int rc, std::string_view what) {
  std::string message = absl::StrCat(Sv(what), ": ", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) return absl::AlreadyExistsError(message);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

// Owns one prepared statement. Bind errors are remembered and reported by Step()
// so that call sites can bind a run of parameters without checking each.
class Statement {
 public:
  static absl::StatusOr<Statement> Prepare(sqlite3* db, std::string_view sql) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db, rc, absl::StrCat("prepare \"", Sv(sql), "\""));
    return Statement(db, stmt);
  }

  Statement(Statement&& other) noexcept
      : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)), status_(other.status_) {}
  Statement& operator=(Statement&&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  Statement& BindText(const char* param, std::string_view value) {
    if (int index = Index(param)) {
      Check(sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                              SQLITE_TRANSIENT),
            param);
    }
    return *this;
  }
  Statement& BindInt64(const char* param, int64_t value) {
    if (int index = Index(param)) Check(sqlite3_bind_int64(stmt_, index, value), param);
    return *this;
  }
  Statement& BindDouble(const char* param, double value) {
    if (int index = Index(param)) Check(sqlite3_bind_double(stmt_, index, value), param);
    return *this;
  }

  // True when a row is available, false when the statement has finished.
  absl::StatusOr<bool> Step() {
    if (!status_.ok()) return status_;
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteError(db_, rc, absl::StrCat("step \"", sqlite3_sql(stmt_), "\""));
  }

  std::string ColumnText(int column) const {
    // sqlite3_column_bytes() must follow sqlite3_column_text() for the length to
    // describe the text conversion.
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    int size = sqlite3_column_bytes(stmt_, column);
    return text ? std::string(text, static_cast<size_t>(size)) : std::string();
  }
  int64_t ColumnInt64(int column) const { return sqlite3_column_int64(stmt_, column); }
  double ColumnDouble(int column) const { return sqlite3_column_double(stmt_, column); }

 private:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}

  int Index(const char* param) {
    int index = sqlite3_bind_parameter_index(stmt_, param);
    if (index == 0 && status_.ok()) {
      status_ = absl::InternalError(
          absl::StrCat("no parameter ", param, " in \"", sqlite3_sql(stmt_), "\""));
    }
    return index;
  }
  void Check(int rc, const char* param) {
    if (rc != SQLITE_OK && status_.ok()) {
      status_ = SqliteError(db_, rc, absl::StrCat("bind ", param));
    }
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  absl::Status status_;
};

// Runs every statement of a constant, parameterless script, discarding rows.
absl::Status Exec(sqlite3* db, std::string_view script) {
  const char* next = script.data();
  const char* const end = script.data() + script.size();
  while (next < end) {
    sqlite3_stmt* stmt = nullptr;
    const char* tail = nullptr;
    int rc = sqlite3_prepare_v2(db, next, static_cast<int>(end - next), &stmt, &tail);
    if (rc != SQLITE_OK) return SqliteError(db, rc, "prepare script");
    next = tail;
    if (stmt == nullptr) continue;  // only whitespace or comments remained
    do {
      rc = sqlite3_step(stmt);
    } while (rc == SQLITE_ROW);
    if (rc != SQLITE_DONE) {
      absl::Status status = SqliteError(db, rc, absl::StrCat("exec \"", sqlite3_sql(stmt), "\""));
      sqlite3_finalize(stmt);
      return status;
    }
    sqlite3_finalize(stmt);
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> QueryInt(sqlite3* db, std::string_view sql) {
  absl::StatusOr<Statement> stmt = Statement::Prepare(db, sql);
  if (!stmt.ok()) return stmt.status();
  absl::StatusOr<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::InternalError(absl::StrCat("no result from \"", Sv(sql), "\""));
  return stmt->ColumnInt64(0);
}

// A write transaction that rolls back unless committed. IMMEDIATE takes the write
// lock up front, so a read-modify-write cannot be overtaken by another writer.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {}
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() {
    if (open_) Exec(db_, "ROLLBACK").IgnoreError();
  }

  absl::Status Begin() {
    absl::Status status = Exec(db_, "BEGIN IMMEDIATE");
    open_ = status.ok();
    return status;
  }
  absl::Status Commit() {
    absl::Status status = Exec(db_, "COMMIT");
    if (status.ok()) open_ = false;
    return status;
  }

 private:
  sqlite3* db_;
  bool open_ = false;
};

// A function of its own so the pragma's statement, which has a pending row, is
// finalized before any transaction needs to commit.
absl::Status EnableWal(sqlite3* db) {
  absl::StatusOr<Statement> stmt = Statement::Prepare(db, "PRAGMA journal_mode = WAL");
  if (!stmt.ok()) return stmt.status();
  absl::StatusOr<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row || stmt->ColumnText(0) != "wal") return absl::InternalError("cannot enable WAL mode");
  return absl::OkStatus();
}

absl::Status Migrate(sqlite3* db) {
  while (true) {
    Transaction txn(db);
    if (absl::Status s = txn.Begin(); !s.ok()) return s;
    // Read under the write lock: another process may have migrated meanwhile.
    absl::StatusOr<int64_t> version = QueryInt(db, "PRAGMA user_version");
    if (!version.ok()) return version.status();
    if (*version > SqliteVideoMetadataService::kSchemaVersion) {
      return absl::FailedPreconditionError(
          absl::StrCat("database schema version ", *version, " is newer than this build's ",
                       SqliteVideoMetadataService::kSchemaVersion));
    }
    if (*version == SqliteVideoMetadataService::kSchemaVersion) return absl::OkStatus();
    if (absl::Status s = Exec(db, kMigrations[*version]); !s.ok()) return s;
    if (absl::Status s = txn.Commit(); !s.ok()) return s;
  }
}

std::string RenditionsToJson(const std::vector<Rendition>& renditions) {
  nlohmann::json array = nlohmann::json::array();
  for (const Rendition& r : renditions) {
    array.push_back(
        {{"name", r.name}, {"width", r.width}, {"height", r.height}, {"bitrate", r.bitrate}});
  }
  // Replace rather than throw on invalid UTF-8: a mangled name beats a lost record.
  return array.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::StatusOr<std::vector<Rendition>> RenditionsFromJson(std::string_view text) {
  nlohmann::json array = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!array.is_array()) return absl::InternalError("corrupt renditions column: not an array");
  std::vector<Rendition> renditions;
  try {
    for (const nlohmann::json& item : array) {
      Rendition& r = renditions.emplace_back();
      r.name = item.at("name").get<std::string>();
      r.width = item.at("width").get<int>();
      r.height = item.at("height").get<int>();
      r.bitrate = item.at("bitrate").get<int64_t>();
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InternalError(absl::StrCat("corrupt renditions column: ", e.what()));
  }
  return renditions;
}

// Decodes the current row of a statement that selected kColumns.
absl::StatusOr<VideoRecord> ReadRecord(const Statement& stmt) {
  VideoRecord record;
  record.id = stmt.ColumnText(0);
  record.title = stmt.ColumnText(1);
  std::string status = stmt.ColumnText(2);
  std::optional<VideoStatus> parsed = ParseVideoStatus(status);
  if (!parsed) {
    return absl::InternalError(absl::StrCat("video ", record.id, " has unknown status ", status));
  }
  record.status = *parsed;
  record.progress = static_cast<int>(stmt.ColumnInt64(3));
  record.duration_seconds = stmt.ColumnDouble(4);
  absl::StatusOr<std::vector<Rendition>> renditions = RenditionsFromJson(stmt.ColumnText(5));
  if (!renditions.ok()) return renditions.status();
  record.renditions = *std::move(renditions);
  record.error = stmt.ColumnText(6);
  record.created_at_ms = stmt.ColumnInt64(7);
  record.updated_at_ms = stmt.ColumnInt64(8);
  record.playable = stmt.ColumnInt64(9) != 0;
  record.storyboard = stmt.ColumnInt64(10) != 0;
  return record;
}

// Binds the fields Update may change; Create binds the rest itself.
void BindMutableFields(Statement& stmt, const VideoRecord& record) {
  stmt.BindText(":status", VideoStatusName(record.status))
      .BindInt64(":progress", record.progress)
      .BindDouble(":duration_seconds", record.duration_seconds)
      .BindText(":renditions", RenditionsToJson(record.renditions))
      .BindText(":error", record.error)
      .BindInt64(":updated_at_ms", record.updated_at_ms)
      .BindInt64(":playable", record.playable ? 1 : 0)
      .BindInt64(":storyboard", record.storyboard ? 1 : 0);
}

// The record with `id` via `db`, or NOT_FOUND.
absl::StatusOr<VideoRecord> SelectRecord(sqlite3* db, std::string_view id) {
  absl::StatusOr<Statement> stmt =
      Statement::Prepare(db, absl::StrCat("SELECT ", kColumns, " FROM videos WHERE id = :id"));
  if (!stmt.ok()) return stmt.status();
  stmt->BindText(":id", id);
  absl::StatusOr<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::NotFoundError(absl::StrCat("no video ", Sv(id)));
  return ReadRecord(*stmt);
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteVideoMetadataService>> SqliteVideoMetadataService::Open(
    const std::filesystem::path& db_file) {
  if (db_file.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(db_file.parent_path(), ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("create ", db_file.parent_path().string(), ": ", ec.message()));
    }
  }
  sqlite3* db = nullptr;
  // NOMUTEX: the service's own mutex already serialises use of the connection.
  int rc =
      sqlite3_open_v2(db_file.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  // Own the handle at once: sqlite3_open_v2 allocates one even when it fails.
  std::unique_ptr<SqliteVideoMetadataService> service(new SqliteVideoMetadataService(db));
  if (rc != SQLITE_OK) return SqliteError(db, rc, absl::StrCat("open ", db_file.string()));
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);

  if (absl::Status s = EnableWal(db); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(db_file.string(), ": ", s.message()));
  }
  // FULL syncs the WAL on every commit, so an acknowledged write survives power
  // loss; NORMAL would only protect against process crashes.
  if (absl::Status s = Exec(db, "PRAGMA synchronous = FULL"); !s.ok()) return s;
  if (absl::Status s = Migrate(db); !s.ok()) return s;
  return service;
}

SqliteVideoMetadataService::~SqliteVideoMetadataService() { sqlite3_close_v2(db_); }

absl::Status SqliteVideoMetadataService::Create(const VideoRecord& record) {
  if (!IsValidVideoId(record.id)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid video id \"", record.id, "\""));
  }
  std::lock_guard lock(mu_);
  absl::StatusOr<Statement> stmt = Statement::Prepare(
      db_, absl::StrCat("INSERT INTO videos (", kColumns,
                        ") VALUES (:id, :title, :status, :progress, :duration_seconds, "
                        ":renditions, :error, :created_at_ms, :updated_at_ms, :playable, "
                        ":storyboard)"));
  if (!stmt.ok()) return stmt.status();
  stmt->BindText(":id", record.id)
      .BindText(":title", record.title)
      .BindInt64(":created_at_ms", record.created_at_ms);
  BindMutableFields(*stmt, record);
  absl::StatusOr<bool> row = stmt->Step();
  if (!row.ok()) {
    if (absl::IsAlreadyExists(row.status())) {
      return absl::AlreadyExistsError(absl::StrCat("video ", record.id, " already exists"));
    }
    return row.status();
  }
  // Told with mu_ held, so that subscribers hear of one record's changes in
  // the order they were made.
  changes_.Notify(record.id);
  return absl::OkStatus();
}

absl::StatusOr<VideoRecord> SqliteVideoMetadataService::Get(std::string_view id) {
  std::lock_guard lock(mu_);
  return SelectRecord(db_, id);
}

absl::StatusOr<VideoPage> SqliteVideoMetadataService::List(const ListOptions& options) {
  // The token is the last id already returned; ids are opaque to clients, and a
  // valid-id check is exactly what rejects anything we could not have issued.
  if (!options.page_token.empty() && !IsValidVideoId(options.page_token)) {
    return absl::InvalidArgumentError("malformed page token");
  }
  const int page_size = std::clamp(options.page_size, 1, kMaxPageSize);

  // Separate WHERE shapes (rather than "(:x IS NULL OR ...)") let SQLite pick the
  // primary key or the status index for each case.
  std::vector<const char*> conditions;
  if (options.status) conditions.push_back("status = :status");
  if (!options.page_token.empty()) conditions.push_back("id < :after");
  std::string sql = absl::StrCat("SELECT ", kColumns, " FROM videos");
  if (!conditions.empty()) absl::StrAppend(&sql, " WHERE ", absl::StrJoin(conditions, " AND "));
  absl::StrAppend(&sql, " ORDER BY id DESC LIMIT :limit");

  std::lock_guard lock(mu_);
  absl::StatusOr<Statement> stmt = Statement::Prepare(db_, sql);
  if (!stmt.ok()) return stmt.status();
  if (options.status) stmt->BindText(":status", VideoStatusName(*options.status));
  if (!options.page_token.empty()) stmt->BindText(":after", options.page_token);
  // One extra row tells whether another page follows without a second query.
  stmt->BindInt64(":limit", page_size + 1);

  VideoPage page;
  while (true) {
    absl::StatusOr<bool> row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (static_cast<int>(page.videos.size()) == page_size) {
      page.next_page_token = page.videos.back().id;
      break;
    }
    absl::StatusOr<VideoRecord> record = ReadRecord(*stmt);
    if (!record.ok()) return record.status();
    page.videos.push_back(*std::move(record));
  }
  return page;
}

absl::StatusOr<VideoRecord> SqliteVideoMetadataService::Update(
    std::string_view id, const std::function<void(VideoRecord&)>& mutate) {
  std::lock_guard lock(mu_);
  Transaction txn(db_);
  if (absl::Status s = txn.Begin(); !s.ok()) return s;
  absl::StatusOr<VideoRecord> current = SelectRecord(db_, id);
  if (!current.ok()) return current.status();

  VideoRecord next = *current;
  mutate(next);
  next.id = current->id;
  next.title = current->title;
  next.created_at_ms = current->created_at_ms;
  next.updated_at_ms = NowMillis();

  absl::StatusOr<Statement> stmt = Statement::Prepare(
      db_,
      "UPDATE videos SET status = :status, progress = :progress, "
      "duration_seconds = :duration_seconds, renditions = :renditions, error = :error, "
      "updated_at_ms = :updated_at_ms, playable = :playable, storyboard = :storyboard "
      "WHERE id = :id");
  if (!stmt.ok()) return stmt.status();
  stmt->BindText(":id", next.id);
  BindMutableFields(*stmt, next);
  if (absl::StatusOr<bool> row = stmt->Step(); !row.ok()) return row.status();
  if (absl::Status s = txn.Commit(); !s.ok()) return s;
  changes_.Notify(next.id);
  return next;
}

absl::Status SqliteVideoMetadataService::Delete(std::string_view id) {
  std::lock_guard lock(mu_);
  absl::StatusOr<Statement> stmt = Statement::Prepare(db_, "DELETE FROM videos WHERE id = :id");
  if (!stmt.ok()) return stmt.status();
  stmt->BindText(":id", id);
  if (absl::StatusOr<bool> row = stmt->Step(); !row.ok()) return row.status();
  if (sqlite3_changes(db_) == 0) return absl::NotFoundError(absl::StrCat("no video ", Sv(id)));
  changes_.Notify(id);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<RecordChangeHub::Subscription>>
SqliteVideoMetadataService::Subscribe(std::string_view id, std::function<void()> changed) {
  return changes_.Subscribe(std::string(id), std::move(changed));
}

}  // namespace streamgrid
