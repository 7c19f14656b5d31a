#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "metadata/video_metadata_service.h"

struct sqlite3;

namespace streamgrid {

// VideoMetadataService backed by one SQLite database file (WAL mode). Calls are
// serialised on a single connection. Several processes may share the file;
// SQLite's locking plus a busy timeout arbitrates between them.
//
// Errors: ALREADY_EXISTS / NOT_FOUND as the interface says, UNAVAILABLE when the
// database stayed locked by another process past the busy timeout, INTERNAL with
// SQLite's message for anything else (including corrupt rows).
class SqliteVideoMetadataService : public VideoMetadataService {
 public:
  // The schema version this build writes; stored in `PRAGMA user_version`.
  static constexpr int kSchemaVersion = 3;

  // Opens (creating it and its parent directories if needed) the database at
  // `db_file` and brings its schema up to kSchemaVersion. FAILED_PRECONDITION if
  // the file was written by a newer schema than this build knows.
  static absl::StatusOr<std::unique_ptr<SqliteVideoMetadataService>> Open(
      const std::filesystem::path& db_file);

  ~SqliteVideoMetadataService() override;
  SqliteVideoMetadataService(const SqliteVideoMetadataService&) = delete;
  SqliteVideoMetadataService& operator=(const SqliteVideoMetadataService&) = delete;

  // Also INVALID_ARGUMENT when `record.id` is not a valid video ID, since such a
  // record could never be paged past.
  absl::Status Create(const VideoRecord& record) override;
  absl::StatusOr<VideoRecord> Get(std::string_view id) override;
  absl::StatusOr<VideoPage> List(const ListOptions& options) override;
  // Runs `mutate` exactly once, inside a write transaction that holds the
  // service's lock, so `mutate` must not call back into the service.
  absl::StatusOr<VideoRecord> Update(std::string_view id,
                                     const std::function<void(VideoRecord&)>& mutate) override;
  absl::Status Delete(std::string_view id) override;
  // Follows the changes made through this object only: another process
  // sharing the file changes records unseen.
  absl::StatusOr<std::unique_ptr<RecordChangeHub::Subscription>> Subscribe(
      std::string_view id, std::function<void()> changed) override;

 private:
  explicit SqliteVideoMetadataService(sqlite3* db) : db_(db) {}

  RecordChangeHub changes_;
  std::mutex mu_;
  sqlite3* const db_;  // guarded by mu_
};

}  // namespace streamgrid
