#pragma once

// The fixture of the TranscodeWorkerPool tests (a SQLite metadata store and a
// local content service in a temp dir, generated media, ffmpeg wrappers),
// shared by the test files of the pool. Test-only.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "common/ids.h"
#include "content/local_video_content_service.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metadata/sqlite_video_metadata_service.h"
#include "transcode/ladder.h"
#include "transcode/live_playlists.h"
#include "transcode/probe.h"
#include "transcode/testing/test_media.h"
#include "transcode/transcode_worker_pool.h"

namespace streamgrid::pool_testing {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Polls `condition` until it holds or `timeout` passes; returns its last value.
inline bool WaitFor(const std::function<bool()>& condition,
                    milliseconds timeout = milliseconds(60'000)) {
  Clock::time_point end = Clock::now() + timeout;
  while (Clock::now() < end) {
    if (condition()) return true;
    std::this_thread::sleep_for(milliseconds(20));  // polling interval, not a fixed wait
  }
  return condition();
}

// A video as the web layer leaves it: `original` stored, record processing.
inline std::string NewUploadIn(VideoMetadataService& metadata, VideoContentService& content,
                               const fs::path& original) {
  std::string id = NewVideoId();
  auto writer = content.OpenWriter(id, "original");
  EXPECT_TRUE(writer.ok()) << writer.status();
  if (writer.ok()) {
    std::ifstream in(original, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_TRUE((*writer)->Append(bytes).ok());
    EXPECT_TRUE((*writer)->Commit().ok());
  }
  VideoRecord record;
  record.id = id;
  record.title = original.filename().string();
  record.status = VideoStatus::kProcessing;
  EXPECT_TRUE(metadata.Create(record).ok());
  return id;
}

// The names of the files `content` holds for `id`.
inline std::vector<std::string> FileNames(VideoContentService& content, const std::string& id) {
  std::vector<std::string> names;
  absl::StatusOr<std::vector<ContentInfo>> files = content.List(id);
  EXPECT_TRUE(files.ok()) << files.status();
  if (files.ok()) {
    for (const ContentInfo& file : *files) names.push_back(file.name);
  }
  return names;
}

// The record of `id` (an empty one, and a test failure, if it cannot be read).
inline VideoRecord RecordOf(VideoMetadataService& metadata, const std::string& id) {
  absl::StatusOr<VideoRecord> record = metadata.Get(id);
  EXPECT_TRUE(record.ok()) << record.status();
  return record.ok() ? *record : VideoRecord{};
}

// Forwards to a real service, remembering progress writes and able to list in
// pages of one and to make a record vanish just before it would become ready.
class InstrumentedMetadata : public VideoMetadataService {
 public:
  explicit InstrumentedMetadata(VideoMetadataService& inner) : inner_(inner) {}

  struct ProgressWrite {
    Clock::time_point at;
    int progress;
  };

  std::vector<ProgressWrite> progress_writes() {
    std::lock_guard lock(mu_);
    return progress_writes_;
  }
  void set_single_record_pages(bool on) { single_record_pages_ = on; }
  void set_delete_before_ready(bool on) { delete_before_ready_ = on; }
  void set_repeat_first_page(bool on) { repeat_first_page_ = on; }

  absl::Status Create(const VideoRecord& record) override { return inner_.Create(record); }
  absl::StatusOr<VideoRecord> Get(std::string_view id) override { return inner_.Get(id); }
  absl::StatusOr<std::unique_ptr<RecordChangeHub::Subscription>> Subscribe(
      std::string_view id, std::function<void()> changed) override {
    return inner_.Subscribe(id, std::move(changed));
  }
  absl::StatusOr<VideoPage> List(const ListOptions& options) override {
    if (repeat_first_page_) {
      // A broken service that never advances.
      ListOptions first;
      first.page_size = 1;
      absl::StatusOr<VideoPage> page = inner_.List(first);
      if (page.ok() && !page->videos.empty()) page->next_page_token = page->videos[0].id;
      return page;
    }
    if (!single_record_pages_) return inner_.List(options);
    // Pages of one record, the token being the last id returned, cut from one
    // big listing: this tests the caller's paging, not the service's.
    ListOptions everything = options;
    everything.page_size = 1000;
    everything.page_token.clear();
    absl::StatusOr<VideoPage> all = inner_.List(everything);
    if (!all.ok()) return all.status();
    auto it = all->videos.begin();
    if (!options.page_token.empty()) {
      it = std::find_if(all->videos.begin(), all->videos.end(),
                        [&](const VideoRecord& r) { return r.id == options.page_token; });
      if (it == all->videos.end()) return absl::InvalidArgumentError("unknown page token");
      ++it;
    }
    VideoPage page;
    if (it != all->videos.end()) page.videos.push_back(*it);
    if (it != all->videos.end() && it + 1 != all->videos.end()) page.next_page_token = it->id;
    return page;
  }
  absl::StatusOr<VideoRecord> Update(std::string_view id,
                                     const std::function<void(VideoRecord&)>& mutate) override {
    absl::StatusOr<VideoRecord> before = inner_.Get(id);
    if (before.ok()) {
      VideoRecord after = *before;
      mutate(after);
      if (delete_before_ready_ && after.status == VideoStatus::kReady) {
        EXPECT_TRUE(inner_.Delete(id).ok());
      }
      if (after.status == VideoStatus::kProcessing && after.progress != before->progress) {
        std::lock_guard lock(mu_);
        progress_writes_.push_back({Clock::now(), after.progress});
      }
    }
    return inner_.Update(id, mutate);
  }
  absl::Status Delete(std::string_view id) override { return inner_.Delete(id); }

 private:
  VideoMetadataService& inner_;
  std::mutex mu_;
  std::vector<ProgressWrite> progress_writes_;
  std::atomic<bool> single_record_pages_{false};
  std::atomic<bool> delete_before_ready_{false};
  std::atomic<bool> repeat_first_page_{false};
};

class TranscodeWorkerPoolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    media_ = new testing::LazyMedia({
        {"clip.mp4",
         [](const fs::path& p) {
           return testing::MakeTestVideo(
               p, testing::TestVideoSpec{.width = 320, .height = 240, .seconds = 2});
         }},
        {"notes.txt", [](const fs::path& p) { return testing::WriteTestFile(p, "not a video\n"); }},
        {"slow-ffmpeg", testing::WriteSlowFfmpeg},
        // Five 2 s segments per stream.
        {"long.mp4",
         [](const fs::path& p) {
           return testing::MakeTestVideo(
               p, testing::TestVideoSpec{.width = 192, .height = 108, .seconds = 9});
         }},
        // The real ffmpeg, but after the ladder encode it waits (at most two
        // minutes) for a file named "release" beside it before exiting: while it
        // waits, a job can only have stored what it stored during the encode.
        {"gated-ffmpeg",
         [](const fs::path& p) {
           absl::Status status = testing::WriteTestFile(
               p,
               "#!/bin/sh\n"
               "ffmpeg \"$@\"; rc=$?\n"
               "case \"$*\" in *manifest.mpd*)\n"
               "  i=0; while [ ! -e \"$(dirname \"$0\")/release\" ] && [ $i -lt 1200 ]; do\n"
               "    sleep 0.1; i=$((i+1)); done ;;\n"
               "esac\n"
               "exit $rc\n");
           if (status.ok()) fs::permissions(p, fs::perms::owner_all);
           return status;
         }},
    });
  }
  static void TearDownTestSuite() {
    delete media_;
    media_ = nullptr;
  }
  static fs::path Media(const std::string& name) {
    absl::StatusOr<fs::path> path = media_->Get(name);
    EXPECT_TRUE(path.ok()) << path.status();
    return path.value_or(media_->dir() / name);
  }

  void SetUp() override {
    auto metadata = SqliteVideoMetadataService::Open(dir_.path() / "meta.db");
    ASSERT_TRUE(metadata.ok()) << metadata.status();
    sqlite_ = *std::move(metadata);
    metadata_ = std::make_unique<InstrumentedMetadata>(*sqlite_);
    auto content = LocalVideoContentService::Open(dir_.path() / "content");
    ASSERT_TRUE(content.ok()) << content.status();
    content_ = *std::move(content);
  }

  TranscodeWorkerPoolOptions Options(bool slow = false) {
    TranscodeWorkerPoolOptions options;
    options.work_dir = dir_.path() / "work";
    options.workers = 2;
    if (slow) options.transcode.ffmpeg = Media("slow-ffmpeg").string();
    return options;
  }

  // A started pool over the fixture's metadata and `content` (the fixture's
  // own content service when null).
  std::unique_ptr<TranscodeWorkerPool> StartPool(TranscodeWorkerPoolOptions options,
                                                 VideoContentService* content = nullptr) {
    auto pool = std::make_unique<TranscodeWorkerPool>(
        *metadata_, content != nullptr ? *content : *content_, std::move(options));
    pool->Start();
    return pool;
  }

  // The file whose creation lets the gated ffmpeg exit; removed here, so that
  // it waits (its encode done) until the test writes it.
  fs::path GateRelease() {
    fs::path release = Media("gated-ffmpeg").parent_path() / "release";
    fs::remove(release);
    return release;
  }

  // A started pool whose ffmpeg, once its encode is done, waits for
  // GateRelease()'s file before it exits.
  std::unique_ptr<TranscodeWorkerPool> StartGatedPool(VideoContentService* content = nullptr) {
    TranscodeWorkerPoolOptions options = Options();
    options.transcode.ffmpeg = Media("gated-ffmpeg").string();
    return StartPool(std::move(options), content);
  }

  void Store(const std::string& id, const std::string& name, const fs::path& file) {
    auto writer = content_->OpenWriter(id, name);
    ASSERT_TRUE(writer.ok()) << writer.status();
    std::ifstream in(file, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_TRUE((*writer)->Append(bytes).ok());
    ASSERT_TRUE((*writer)->Commit().ok());
  }

  std::string NewUpload(const fs::path& original) {
    return NewUploadIn(*metadata_, *content_, original);
  }

  VideoRecord Record(const std::string& id) { return RecordOf(*metadata_, id); }

  bool Finished(const std::string& id) {
    absl::StatusOr<VideoRecord> record = metadata_->Get(id);
    return !record.ok() || record->status != VideoStatus::kProcessing;
  }

  std::vector<std::string> Files(const std::string& id) { return FileNames(*content_, id); }

  std::string ReadContent(const std::string& id, const std::string& name) {
    auto reader = content_->OpenReader(id, name);
    EXPECT_TRUE(reader.ok()) << name << ": " << reader.status();
    if (!reader.ok()) return "";
    std::string text(1 << 16, '\0');
    auto n = (*reader)->Read(text);
    EXPECT_TRUE(n.ok());
    text.resize(n.ok() ? *n : 0);
    return text;
  }

  std::vector<std::string> WorkDirEntries() {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir_.path() / "work", ec)) {
      names.push_back(entry.path().filename().string());
    }
    return names;
  }

  inline static testing::LazyMedia* media_ = nullptr;
  testing::TempDir dir_;
  std::unique_ptr<SqliteVideoMetadataService> sqlite_;
  std::unique_ptr<InstrumentedMetadata> metadata_;
  std::unique_ptr<LocalVideoContentService> content_;
};

}  // namespace streamgrid::pool_testing
