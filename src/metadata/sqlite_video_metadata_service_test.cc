#include "metadata/sqlite_video_metadata_service.h"

#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/ids.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace streamgrid {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

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

VideoRecord MakeRecord(int64_t created_at_ms, std::string title = "clip.mp4") {
  VideoRecord record;
  record.id = NewVideoIdAt(created_at_ms);
  record.title = std::move(title);
  record.created_at_ms = created_at_ms;
  record.updated_at_ms = created_at_ms;
  return record;
}

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

  // Every id List yields, following tokens until the last page.
  std::vector<std::string> ListAllIds(ListOptions options, int* pages = nullptr) {
    std::vector<std::string> ids;
    int count = 0;
    do {
      auto page = service_->List(options);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      ++count;
      for (const VideoRecord& record : page->videos) ids.push_back(record.id);
      options.page_token = page->next_page_token;
    } while (!options.page_token.empty());
    if (pages) *pages = count;
    return ids;
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

TEST_F(SqliteVideoMetadataServiceTest, CreateGetRoundTripsEveryField) {
  VideoRecord record = MakeRecord(1700000000123, "Mein \"Urlaub\" 2023 — ☀️.mov");
  record.status = VideoStatus::kFailed;
  record.progress = 42;
  record.duration_seconds = 3723.625;
  record.renditions = {{"1080p", 1920, 1080, 5'000'000}, {"360p", 640, 360, 800'000}};
  record.error = "ffmpeg exited with status 1";
  record.updated_at_ms = 1700000999999;
  ASSERT_TRUE(service_->Create(record).ok());

  auto got = service_->Get(record.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, record);
}

TEST_F(SqliteVideoMetadataServiceTest, DuplicateCreateIsAlreadyExistsAndKeepsOriginal) {
  VideoRecord record = MakeRecord(1000, "first");
  ASSERT_TRUE(service_->Create(record).ok());
  VideoRecord again = record;
  again.title = "second";
  EXPECT_EQ(service_->Create(again).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(service_->Get(record.id)->title, "first");
}

TEST_F(SqliteVideoMetadataServiceTest, CreateRejectsInvalidId) {
  VideoRecord record = MakeRecord(1000);
  for (const std::string& id :
       std::vector<std::string>{"", "..", "ABC", "not a video id", std::string(26, 'U')}) {
    record.id = id;
    EXPECT_EQ(service_->Create(record).code(), absl::StatusCode::kInvalidArgument) << id;
  }
  EXPECT_THAT(service_->List({})->videos, IsEmpty());
}

TEST_F(SqliteVideoMetadataServiceTest, MissingRecordsAreNotFound) {
  const std::string id = NewVideoIdAt(5000);
  EXPECT_EQ(service_->Get(id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(service_->Get("garbage").status().code(), absl::StatusCode::kNotFound);
  bool called = false;
  auto updated = service_->Update(id, [&](VideoRecord&) { called = true; });
  EXPECT_EQ(updated.status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(called);
  EXPECT_EQ(service_->Delete(id).code(), absl::StatusCode::kNotFound);
}

TEST_F(SqliteVideoMetadataServiceTest, DeleteRemovesOnlyThatRecord) {
  VideoRecord a = MakeRecord(1000), b = MakeRecord(2000);
  ASSERT_TRUE(service_->Create(a).ok());
  ASSERT_TRUE(service_->Create(b).ok());
  ASSERT_TRUE(service_->Delete(a.id).ok());
  EXPECT_EQ(service_->Get(a.id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(service_->Delete(a.id).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*service_->Get(b.id), b);
}

TEST_F(SqliteVideoMetadataServiceTest, PagesThroughEveryRecordOnceNewestFirst) {
  constexpr int kCount = 2500;
  std::vector<VideoRecord> records;
  for (int i = 0; i < kCount; ++i) records.push_back(MakeRecord(1600000000000 + i * 7));
  // Insertion order must not matter; only the ids' time order does.
  std::shuffle(records.begin(), records.end(), std::mt19937(12345));
  for (const VideoRecord& record : records) ASSERT_TRUE(service_->Create(record).ok());

  std::vector<std::string> expected;
  for (const VideoRecord& record : records) expected.push_back(record.id);
  std::sort(expected.rbegin(), expected.rend());

  ListOptions options;
  options.page_size = 100;
  int pages = 0;
  std::vector<std::string> ids = ListAllIds(options, &pages);
  EXPECT_EQ(pages, kCount / 100);
  EXPECT_EQ(ids, expected);
  auto newest = std::max_element(records.begin(), records.end(), [](const auto& a, const auto& b) {
    return a.created_at_ms < b.created_at_ms;
  });
  EXPECT_EQ(ids.front(), newest->id);

  // page_size is clamped into [1, 1000].
  for (int size : {0, -3}) {
    options = {};
    options.page_size = size;
    auto page = service_->List(options);
    ASSERT_TRUE(page.ok());
    EXPECT_THAT(page->videos, SizeIs(1));
    EXPECT_EQ(page->next_page_token, expected[0]);
  }
  options = {};
  options.page_size = 5000;
  auto big = service_->List(options);
  ASSERT_TRUE(big.ok());
  EXPECT_THAT(big->videos, SizeIs(1000));
  EXPECT_EQ(big->next_page_token, expected[999]);
}

TEST_F(SqliteVideoMetadataServiceTest, LastPageHasNoToken) {
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(service_->Create(MakeRecord(1000 + i)).ok());
  ListOptions options;
  options.page_size = 4;
  auto page = service_->List(options);
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(page->videos, SizeIs(4));
  EXPECT_EQ(page->next_page_token, "");

  options.page_size = 3;
  page = service_->List(options);
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(page->videos, SizeIs(3));
  options.page_token = page->next_page_token;
  page = service_->List(options);
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(page->videos, SizeIs(1));
  EXPECT_EQ(page->videos[0].created_at_ms, 1000);
  EXPECT_EQ(page->next_page_token, "");
}

TEST_F(SqliteVideoMetadataServiceTest, StatusFilterPagesOnlyMatchingRecords) {
  const VideoStatus statuses[] = {VideoStatus::kProcessing, VideoStatus::kReady,
                                  VideoStatus::kFailed};
  std::vector<std::string> ready;
  for (int i = 0; i < 30; ++i) {
    VideoRecord record = MakeRecord(2000 + i);
    record.status = statuses[i % 3];
    if (record.status == VideoStatus::kReady) ready.insert(ready.begin(), record.id);
    ASSERT_TRUE(service_->Create(record).ok());
  }
  ListOptions options;
  options.page_size = 4;
  options.status = VideoStatus::kReady;
  int pages = 0;
  EXPECT_EQ(ListAllIds(options, &pages), ready);
  EXPECT_EQ(pages, 3);

  auto first = service_->List(options);
  ASSERT_TRUE(first.ok());
  for (const VideoRecord& record : first->videos) EXPECT_EQ(record.status, VideoStatus::kReady);
}

TEST_F(SqliteVideoMetadataServiceTest, MalformedPageTokenIsInvalidArgument) {
  ASSERT_TRUE(service_->Create(MakeRecord(1000)).ok());
  for (const std::string& token : std::vector<std::string>{
           "x", "not-a-token", "' OR 1=1 --", std::string(26, '0') + "0", std::string(26, 'I'),
           std::string(13, '0') + '\0' + std::string(12, '0')}) {
    ListOptions options;
    options.page_token = token;
    EXPECT_EQ(service_->List(options).status().code(), absl::StatusCode::kInvalidArgument) << token;
  }
}

TEST_F(SqliteVideoMetadataServiceTest, UpdateKeepsIdentityAndSetsUpdatedAt) {
  VideoRecord record = MakeRecord(1000, "original.mp4");
  ASSERT_TRUE(service_->Create(record).ok());

  const int64_t before = NowMillis();
  auto updated = service_->Update(record.id, [](VideoRecord& r) {
    r.id = NewVideoIdAt(9999);
    r.title = "hijacked";
    r.created_at_ms = 1;
    r.updated_at_ms = 2;
    r.status = VideoStatus::kReady;
    r.progress = 100;
    r.duration_seconds = 12.5;
    r.renditions = {{"720p", 1280, 720, 2'500'000}};
  });
  const int64_t after = NowMillis();
  ASSERT_TRUE(updated.ok()) << updated.status();

  EXPECT_EQ(updated->id, record.id);
  EXPECT_EQ(updated->title, "original.mp4");
  EXPECT_EQ(updated->created_at_ms, 1000);
  EXPECT_GE(updated->updated_at_ms, before);
  EXPECT_LE(updated->updated_at_ms, after);
  EXPECT_EQ(updated->status, VideoStatus::kReady);
  EXPECT_EQ(updated->progress, 100);
  EXPECT_EQ(updated->duration_seconds, 12.5);
  EXPECT_THAT(updated->renditions, ElementsAre(Rendition{"720p", 1280, 720, 2'500'000}));
  EXPECT_EQ(*service_->Get(record.id), *updated);
  EXPECT_EQ(service_->Get(NewVideoIdAt(9999)).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SqliteVideoMetadataServiceTest, UpdateThatThrowsRollsBack) {
  VideoRecord record = MakeRecord(1000);
  ASSERT_TRUE(service_->Create(record).ok());
  EXPECT_THROW(service_
                   ->Update(record.id,
                            [](VideoRecord& r) {
                              r.progress = 50;
                              throw std::runtime_error("boom");
                            })
                   .IgnoreError(),
               std::runtime_error);
  EXPECT_EQ(*service_->Get(record.id), record);
  // The connection is not left inside a transaction.
  auto updated = service_->Update(record.id, [](VideoRecord& r) { r.progress = 7; });
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(service_->Get(record.id)->progress, 7);
}

TEST_F(SqliteVideoMetadataServiceTest, ConcurrentUpdatesLoseNothing) {
  constexpr int kThreads = 8;
  constexpr int kIncrements = 12;
  VideoRecord record = MakeRecord(1000);
  ASSERT_TRUE(service_->Create(record).ok());

  std::vector<std::thread> threads;
  std::atomic<int> failures = 0;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        auto updated = service_->Update(record.id, [](VideoRecord& r) {
          ++r.progress;
          r.duration_seconds += 0.5;
        });
        if (!updated.ok()) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures, 0);
  auto got = service_->Get(record.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->progress, kThreads * kIncrements);
  EXPECT_EQ(got->duration_seconds, kThreads * kIncrements * 0.5);
}

TEST_F(SqliteVideoMetadataServiceTest, ConcurrentCreatesAndListsAreConsistent) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        EXPECT_TRUE(service_->Create(MakeRecord(10000 + t * kPerThread + i)).ok());
        EXPECT_TRUE(service_->List({}).ok());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ListOptions options;
  options.page_size = 1000;
  EXPECT_THAT(service_->List(options)->videos, SizeIs(kThreads * kPerThread));
}

TEST_F(SqliteVideoMetadataServiceTest, ReopenKeepsData) {
  VideoRecord record = MakeRecord(1000);
  record.renditions = {{"480p", 854, 480, 1'200'000}};
  ASSERT_TRUE(service_->Create(record).ok());
  Reopen();
  auto got = service_->Get(record.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, record);
}

TEST_F(SqliteVideoMetadataServiceTest, NewerSchemaIsRefused) {
  service_.reset();
  RawExec(db_file_, "PRAGMA user_version = 99");
  auto opened = SqliteVideoMetadataService::Open(db_file_);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SqliteVideoMetadataServiceTest, CorruptRowIsInternal) {
  VideoRecord record = MakeRecord(1000);
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
