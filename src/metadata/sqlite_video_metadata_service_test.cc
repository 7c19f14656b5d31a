#include "metadata/sqlite_video_metadata_service.h"

#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "metadata/video_metadata_service_conformance.h"

namespace streamgrid {
namespace {

// A fresh directory for one test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "sg_metadata_XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// The conformance suite's harness: a fresh database in a temp directory.
class SqliteHarness : public MetadataServiceHarness {
 public:
  SqliteHarness() {
    auto opened = SqliteVideoMetadataService::Open(dir_.path() / "metadata.db");
    if (!opened.ok()) throw std::runtime_error(opened.status().ToString());
    service_ = *std::move(opened);
  }
  VideoMetadataService& service() override { return *service_; }

 private:
  TempDir dir_;
  std::unique_ptr<SqliteVideoMetadataService> service_;
};

INSTANTIATE_TEST_SUITE_P(Sqlite, VideoMetadataServiceConformanceTest,
                         ::testing::Values(MetadataServiceFactory{
                             "Sqlite", [] { return std::make_unique<SqliteHarness>(); }}),
                         MetadataServiceFactoryName);

// Runs a parameterless statement on a second, raw connection to the database.
void RawExec(const std::filesystem::path& db_file, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_file.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  std::string message = error ? error : "";
  sqlite3_free(error);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << message;
}

std::string RawQueryText(const std::filesystem::path& db_file, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(db_file.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  std::string result;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    result = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return result;
}

class SqliteVideoMetadataServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_file_ = dir_.path() / "nested" / "dirs" / "metadata.db";
    Reopen();
  }

  void Reopen() {
    service_.reset();
    auto opened = SqliteVideoMetadataService::Open(db_file_);
    ASSERT_TRUE(opened.ok()) << opened.status();
    service_ = *std::move(opened);
  }

  TempDir dir_;
  std::filesystem::path db_file_;
  std::unique_ptr<SqliteVideoMetadataService> service_;
};

TEST(VideoStatusTest, NamesRoundTrip) {
  EXPECT_EQ(VideoStatusName(VideoStatus::kProcessing), "processing");
  EXPECT_EQ(VideoStatusName(VideoStatus::kReady), "ready");
  EXPECT_EQ(VideoStatusName(VideoStatus::kFailed), "failed");
  for (VideoStatus status : {VideoStatus::kProcessing, VideoStatus::kReady, VideoStatus::kFailed}) {
    EXPECT_EQ(ParseVideoStatus(VideoStatusName(status)), status);
  }
  EXPECT_EQ(ParseVideoStatus(""), std::nullopt);
  EXPECT_EQ(ParseVideoStatus("Ready"), std::nullopt);
  EXPECT_EQ(ParseVideoStatus("ready "), std::nullopt);
}

TEST_F(SqliteVideoMetadataServiceTest, OpenCreatesParentsSchemaAndWal) {
  EXPECT_TRUE(std::filesystem::exists(db_file_));
  EXPECT_EQ(RawQueryText(db_file_, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(RawQueryText(db_file_, "PRAGMA user_version"),
            std::to_string(SqliteVideoMetadataService::kSchemaVersion));
}

TEST_F(SqliteVideoMetadataServiceTest, ReopenKeepsData) {
  VideoRecord record = MakeTestRecord(1000);
  record.renditions = {{"480p", 854, 480, 1'200'000}};
  ASSERT_TRUE(service_->Create(record).ok());
  Reopen();
  auto got = service_->Get(record.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, record);
}

TEST_F(SqliteVideoMetadataServiceTest, AVersion1DatabaseGainsPlayableAndKeepsItsRecords) {
  VideoRecord record = MakeTestRecord(1000);
  ASSERT_TRUE(service_->Create(record).ok());
  service_.reset();
  // What a build before the playable column left behind.
  RawExec(db_file_,
          "ALTER TABLE videos DROP COLUMN storyboard; ALTER TABLE videos DROP COLUMN playable; "
          "PRAGMA user_version = 1");
  Reopen();
  EXPECT_EQ(RawQueryText(db_file_, "PRAGMA user_version"), "3");
  auto got = service_->Get(record.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, record);
  EXPECT_FALSE(got->playable);
  EXPECT_FALSE(got->storyboard);
}

TEST_F(SqliteVideoMetadataServiceTest, NewerSchemaIsRefused) {
  service_.reset();
  RawExec(db_file_, "PRAGMA user_version = 99");
  auto opened = SqliteVideoMetadataService::Open(db_file_);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SqliteVideoMetadataServiceTest, CorruptRowIsInternal) {
  VideoRecord record = MakeTestRecord(1000);
  ASSERT_TRUE(service_->Create(record).ok());
  RawExec(db_file_, "UPDATE videos SET status = 'exploded'");
  EXPECT_EQ(service_->Get(record.id).status().code(), absl::StatusCode::kInternal);
  RawExec(db_file_, "UPDATE videos SET status = 'ready', renditions = '{not json'");
  EXPECT_EQ(service_->Get(record.id).status().code(), absl::StatusCode::kInternal);
  RawExec(db_file_, "UPDATE videos SET renditions = '[{\"name\": 3}]'");
  EXPECT_EQ(service_->List({}).status().code(), absl::StatusCode::kInternal);
}

TEST(SqliteVideoMetadataServiceOpenTest, UnopenablePathIsAnError) {
  TempDir dir;
  // A directory where the database file should be.
  std::filesystem::create_directories(dir.path() / "db");
  auto opened = SqliteVideoMetadataService::Open(dir.path() / "db");
  EXPECT_FALSE(opened.ok());
}

}  // namespace
}  // namespace streamgrid
