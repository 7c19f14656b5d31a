#include "transcode/transcode_worker_pool.h"

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

namespace streamgrid {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Polls `condition` until it holds or `timeout` passes; returns its last value.
bool WaitFor(const std::function<bool()>& condition, milliseconds timeout = milliseconds(60'000)) {
  Clock::time_point end = Clock::now() + timeout;
  while (Clock::now() < end) {
    if (condition()) return true;
    std::this_thread::sleep_for(milliseconds(20));  // polling interval, not a fixed wait
  }
  return condition();
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

  void Store(const std::string& id, const std::string& name, const fs::path& file) {
    auto writer = content_->OpenWriter(id, name);
    ASSERT_TRUE(writer.ok()) << writer.status();
    std::ifstream in(file, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_TRUE((*writer)->Append(bytes).ok());
    ASSERT_TRUE((*writer)->Commit().ok());
  }

  // A video as the web layer leaves it: original stored, record processing.
  std::string NewUpload(const fs::path& original) {
    std::string id = NewVideoId();
    Store(id, "original", original);
    VideoRecord record;
    record.id = id;
    record.title = original.filename().string();
    record.status = VideoStatus::kProcessing;
    EXPECT_TRUE(metadata_->Create(record).ok());
    return id;
  }

  VideoRecord Record(const std::string& id) {
    absl::StatusOr<VideoRecord> record = metadata_->Get(id);
    EXPECT_TRUE(record.ok()) << record.status();
    return record.ok() ? *record : VideoRecord{};
  }

  bool Finished(const std::string& id) {
    absl::StatusOr<VideoRecord> record = metadata_->Get(id);
    return !record.ok() || record->status != VideoStatus::kProcessing;
  }

  std::vector<std::string> Files(const std::string& id) {
    std::vector<std::string> names;
    absl::StatusOr<std::vector<ContentInfo>> files = content_->List(id);
    EXPECT_TRUE(files.ok()) << files.status();
    if (files.ok()) {
      for (const ContentInfo& file : *files) names.push_back(file.name);
    }
    return names;
  }

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

  static testing::LazyMedia* media_;
  testing::TempDir dir_;
  std::unique_ptr<SqliteVideoMetadataService> sqlite_;
  std::unique_ptr<InstrumentedMetadata> metadata_;
  std::unique_ptr<LocalVideoContentService> content_;
};

testing::LazyMedia* TranscodeWorkerPoolTest::media_ = nullptr;

TEST_F(TranscodeWorkerPoolTest, TranscodesAnUploadToReady) {
  std::string id = NewUpload(Media("clip.mp4"));
  TranscodeWorkerPool pool(*metadata_, *content_, Options());
  pool.Start();
  pool.Enqueue(id);
  ASSERT_TRUE(WaitFor([&] { return Finished(id); }));

  VideoRecord record = Record(id);
  EXPECT_EQ(record.status, VideoStatus::kReady) << record.error;
  EXPECT_EQ(record.progress, 100);
  EXPECT_TRUE(record.error.empty());
  EXPECT_NEAR(record.duration_seconds, 2.0, 0.1);
  absl::StatusOr<MediaInfo> info = ProbeMedia(Media("clip.mp4"));
  ASSERT_TRUE(info.ok());
  std::vector<Rendition> expected;
  for (const Rung& rung : SelectLadder(*info)) {
    expected.push_back({rung.name, rung.width, rung.height, rung.bitrate});
  }
  EXPECT_EQ(record.renditions, expected);

  // A 2 s clip in 2 s segments: one video segment; the audio, a little
  // longer than the video (encoder priming), spills into a second.
  EXPECT_THAT(Files(id), ElementsAre("chunk-0-00001.m4s", "chunk-1-00001.m4s", "chunk-1-00002.m4s",
                                     "init-0.m4s", "init-1.m4s", "manifest.mpd", "master.m3u8",
                                     "media_0.m3u8", "media_1.m3u8", "original", "thumbnail.jpg"));
  // What was stored is what ffmpeg wrote: the playlists are already fixed up.
  auto reader = content_->OpenReader(id, "media_0.m3u8");
  ASSERT_TRUE(reader.ok());
  std::string playlist(4096, '\0');
  auto n = (*reader)->Read(playlist);
  ASSERT_TRUE(n.ok());
  playlist.resize(*n);
  EXPECT_THAT(playlist, HasSubstr("#EXT-X-PLAYLIST-TYPE:VOD"));

  ASSERT_TRUE(WaitFor([&] { return pool.running() == 0; }));
  EXPECT_THAT(WorkDirEntries(), IsEmpty());
}

TEST_F(TranscodeWorkerPoolTest, UsesAndConsumesTheLocalSource) {
  // The stored original is junk: only the local copy can make this succeed.
  std::string id = NewUpload(Media("notes.txt"));
  fs::path local = dir_.path() / "upload.tmp";
  fs::copy_file(Media("clip.mp4"), local);
  TranscodeWorkerPool pool(*metadata_, *content_, Options());
  pool.Start();
  pool.Enqueue(id, local);
  ASSERT_TRUE(WaitFor([&] { return Finished(id); }));
  EXPECT_EQ(Record(id).status, VideoStatus::kReady) << Record(id).error;
  EXPECT_FALSE(fs::exists(local));
}

TEST_F(TranscodeWorkerPoolTest, FailureMarksTheRecordAndLeavesOnlyTheOriginal) {
  std::string id = NewUpload(Media("notes.txt"));
  // Left over from an earlier, interrupted attempt.
  Store(id, "chunk-0-00001.m4s", Media("notes.txt"));
  TranscodeWorkerPool pool(*metadata_, *content_, Options());
  pool.Start();
  pool.Enqueue(id);
  ASSERT_TRUE(WaitFor([&] { return Finished(id); }));
  VideoRecord record = Record(id);
  EXPECT_EQ(record.status, VideoStatus::kFailed);
  EXPECT_THAT(record.error, HasSubstr("not a video"));
  EXPECT_THAT(Files(id), ElementsAre("original"));
}

TEST_F(TranscodeWorkerPoolTest, MissingOriginalFails) {
  std::string id = NewVideoId();
  VideoRecord record;
  record.id = id;
  record.title = "lost.mp4";
  ASSERT_TRUE(metadata_->Create(record).ok());
  TranscodeWorkerPool pool(*metadata_, *content_, Options());
  pool.Start();
  pool.Enqueue(id);
  ASSERT_TRUE(WaitFor([&] { return Finished(id); }));
  EXPECT_EQ(Record(id).status, VideoStatus::kFailed);
  EXPECT_THAT(Record(id).error, HasSubstr("missing"));
}

TEST_F(TranscodeWorkerPoolTest, SkipsRecordsThatAreGoneOrNotProcessing) {
  std::string ready = NewUpload(Media("clip.mp4"));
  ASSERT_TRUE(
      metadata_->Update(ready, [](VideoRecord& r) { r.status = VideoStatus::kReady; }).ok());
  absl::StatusOr<VideoRecord> before = metadata_->Get(ready);
  ASSERT_TRUE(before.ok());
  TranscodeWorkerPool pool(*metadata_, *content_, Options());
  pool.Start();
  pool.Enqueue(ready);
  pool.Enqueue(NewVideoId());  // no record at all
  ASSERT_TRUE(WaitFor([&] { return pool.queued() == 0 && pool.running() == 0; }));
  EXPECT_EQ(Record(ready), *before);
  EXPECT_THAT(Files(ready), ElementsAre("original"));
}

TEST_F(TranscodeWorkerPoolTest, RecoverPendingQueuesEveryProcessingRecord) {
  metadata_->set_single_record_pages(true);  // the listing must be paged through
  std::string first = NewUpload(Media("clip.mp4"));
  std::string second = NewUpload(Media("clip.mp4"));
  std::string done = NewUpload(Media("clip.mp4"));
  ASSERT_TRUE(metadata_->Update(done, [](VideoRecord& r) { r.status = VideoStatus::kReady; }).ok());

  TranscodeWorkerPool pool(*metadata_, *content_, Options());
  ASSERT_TRUE(pool.RecoverPending().ok());
  EXPECT_EQ(pool.queued(), 2u);
  pool.Start();
  ASSERT_TRUE(WaitFor([&] { return Finished(first) && Finished(second); }));
  EXPECT_EQ(Record(first).status, VideoStatus::kReady);
  EXPECT_EQ(Record(second).status, VideoStatus::kReady);
  EXPECT_THAT(Files(done), ElementsAre("original"));
}

TEST_F(TranscodeWorkerPoolTest, RecoverPendingGivesUpOnAListingThatDoesNotAdvance) {
  NewUpload(Media("clip.mp4"));
  NewUpload(Media("clip.mp4"));
  metadata_->set_repeat_first_page(true);
  TranscodeWorkerPool pool(*metadata_, *content_, Options());
  EXPECT_EQ(pool.RecoverPending().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(pool.queued(), 1u);
}

TEST_F(TranscodeWorkerPoolTest, StopLeavesARunningJobProcessingForTheNextStart) {
  std::string id = NewUpload(Media("clip.mp4"));
  {
    TranscodeWorkerPool pool(*metadata_, *content_, Options(/*slow=*/true));
    pool.Start();
    pool.Enqueue(id);
    ASSERT_TRUE(WaitFor([&] { return Record(id).progress > 0; }));
    Clock::time_point start = Clock::now();
    pool.Stop();
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
    EXPECT_EQ(pool.running(), 0u);
  }
  VideoRecord record = Record(id);
  EXPECT_EQ(record.status, VideoStatus::kProcessing);
  EXPECT_TRUE(record.error.empty());
  EXPECT_THAT(Files(id), ElementsAre("original"));
  EXPECT_THAT(WorkDirEntries(), IsEmpty());

  TranscodeWorkerPool next(*metadata_, *content_, Options());
  next.Start();
  ASSERT_TRUE(next.RecoverPending().ok());
  ASSERT_TRUE(WaitFor([&] { return Finished(id); }));
  EXPECT_EQ(Record(id).status, VideoStatus::kReady);
}

TEST_F(TranscodeWorkerPoolTest, ProgressWritesAreThrottledAndIncreasing) {
  std::string id = NewUpload(Media("clip.mp4"));
  TranscodeWorkerPoolOptions options = Options(/*slow=*/true);
  options.progress_interval = milliseconds(500);
  TranscodeWorkerPool pool(*metadata_, *content_, options);
  pool.Start();
  pool.Enqueue(id);
  ASSERT_TRUE(WaitFor([&] { return Finished(id); }));
  EXPECT_EQ(Record(id).status, VideoStatus::kReady);

  std::vector<InstrumentedMetadata::ProgressWrite> writes = metadata_->progress_writes();
  // A 2 s encode at real time, reported every 0.5 s by ffmpeg: a few writes.
  ASSERT_GE(writes.size(), 2u);
  for (size_t i = 1; i < writes.size(); ++i) {
    EXPECT_GT(writes[i].progress, writes[i - 1].progress);
    EXPECT_GE(writes[i].at - writes[i - 1].at, milliseconds(450));
  }
  EXPECT_LT(writes.back().progress, 100);
}

TEST_F(TranscodeWorkerPoolTest, RecordDeletedWhileEncodingStopsTheJob) {
  std::string id = NewUpload(Media("clip.mp4"));
  TranscodeWorkerPoolOptions options = Options(/*slow=*/true);
  options.progress_interval = milliseconds(100);
  TranscodeWorkerPool pool(*metadata_, *content_, options);
  pool.Start();
  pool.Enqueue(id);
  ASSERT_TRUE(WaitFor([&] { return Record(id).progress > 0; }));
  // What the web layer's DELETE does.
  ASSERT_TRUE(metadata_->Delete(id).ok());
  ASSERT_TRUE(content_->DeleteVideo(id).ok());
  ASSERT_TRUE(WaitFor([&] { return pool.running() == 0; }));
  EXPECT_THAT(Files(id), IsEmpty());
  EXPECT_FALSE(metadata_->Get(id).ok());
}

TEST_F(TranscodeWorkerPoolTest, RecordDeletedBeforeReadyRemovesTheUploads) {
  std::string id = NewUpload(Media("clip.mp4"));
  metadata_->set_delete_before_ready(true);
  TranscodeWorkerPool pool(*metadata_, *content_, Options());
  pool.Start();
  pool.Enqueue(id);
  ASSERT_TRUE(WaitFor([&] { return Finished(id) && pool.running() == 0; }));
  EXPECT_EQ(metadata_->Get(id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Files(id), ElementsAre("original"));
}

TEST_F(TranscodeWorkerPoolTest, DuplicatesAreDroppedAndTheirLocalSourcesDeleted) {
  std::string id = NewUpload(Media("clip.mp4"));
  fs::path first_local = dir_.path() / "first.tmp";
  fs::path second_local = dir_.path() / "second.tmp";
  fs::copy_file(Media("clip.mp4"), first_local);
  fs::copy_file(Media("clip.mp4"), second_local);
  {
    TranscodeWorkerPool pool(*metadata_, *content_, Options());
    pool.Enqueue(id);
    pool.Enqueue(id, first_local);   // adopted by the queued job
    pool.Enqueue(id, second_local);  // nothing left to adopt it
    pool.Enqueue("../../etc");       // not a video id
    EXPECT_EQ(pool.queued(), 1u);
    EXPECT_TRUE(fs::exists(first_local));
    EXPECT_FALSE(fs::exists(second_local));
  }
  // Never started: the queued job's local source goes with the pool.
  EXPECT_FALSE(fs::exists(first_local));
  EXPECT_EQ(Record(id).status, VideoStatus::kProcessing);
}

TEST_F(TranscodeWorkerPoolTest, NoSecondJobForAVideoBeingTranscoded) {
  std::string id = NewUpload(Media("clip.mp4"));
  TranscodeWorkerPool pool(*metadata_, *content_, Options(/*slow=*/true));
  pool.Start();
  pool.Enqueue(id);
  ASSERT_TRUE(WaitFor([&] { return pool.running() == 1; }));
  pool.Enqueue(id);
  EXPECT_EQ(pool.queued(), 0u);
  pool.Stop();
}

TEST_F(TranscodeWorkerPoolTest, StartClearsOnlyStaleJobDirectories) {
  fs::create_directories(dir_.path() / "work" / "job-stale" / "out");
  fs::create_directories(dir_.path() / "work" / "uploads");
  TranscodeWorkerPool pool(*metadata_, *content_, Options());
  pool.Start();
  EXPECT_THAT(WorkDirEntries(), ElementsAre("uploads"));
}

// Forwards to a real service, refusing to store one name.
class RefusingContent : public VideoContentService {
 public:
  RefusingContent(VideoContentService& inner, std::string refused)
      : inner_(inner), refused_(std::move(refused)) {}
  absl::StatusOr<std::unique_ptr<ContentWriter>> OpenWriter(std::string_view video_id,
                                                            std::string_view name) override {
    if (name == refused_) return absl::PermissionDeniedError("disk says no");
    return inner_.OpenWriter(video_id, name);
  }
  absl::StatusOr<std::unique_ptr<ContentReader>> OpenReader(
      std::string_view video_id, std::string_view name, uint64_t offset,
      std::optional<uint64_t> length) override {
    return inner_.OpenReader(video_id, name, offset, length);
  }
  absl::StatusOr<ContentInfo> Stat(std::string_view video_id, std::string_view name) override {
    return inner_.Stat(video_id, name);
  }
  absl::StatusOr<std::vector<ContentInfo>> List(std::string_view video_id) override {
    return inner_.List(video_id);
  }
  absl::Status Delete(std::string_view video_id, std::string_view name) override {
    return inner_.Delete(video_id, name);
  }
  absl::Status DeleteVideo(std::string_view video_id) override {
    return inner_.DeleteVideo(video_id);
  }

 private:
  VideoContentService& inner_;
  const std::string refused_;
};

bool IsSegment(const std::string& name) { return name.ends_with(".m4s"); }

TEST_F(TranscodeWorkerPoolTest, SegmentsAreStoredWhileFfmpegStillRuns) {
  const fs::path release = Media("gated-ffmpeg").parent_path() / "release";
  fs::remove(release);
  std::string id = NewUpload(Media("long.mp4"));
  TranscodeWorkerPoolOptions options = Options();
  options.transcode.ffmpeg = Media("gated-ffmpeg").string();
  TranscodeWorkerPool pool(*metadata_, *content_, options);
  pool.Start();
  pool.Enqueue(id);

  // ffmpeg has not exited as far as the job knows, yet the segments it has
  // finished are stored, with EVENT playlists naming only those and the
  // master playlist: the video plays from the start. The DASH manifest and
  // the thumbnail wait for the end.
  ASSERT_TRUE(WaitFor([&] { return Record(id).playable; }));
  std::vector<std::string> early = Files(id);
  EXPECT_THAT(early, Contains("init-0.m4s"));
  EXPECT_THAT(early, Contains("chunk-0-00001.m4s"));
  EXPECT_THAT(early, Contains("master.m3u8"));
  EXPECT_THAT(early, Contains("media_0.m3u8"));
  auto stored = [&](const std::string& name) {
    std::vector<std::string> files = Files(id);
    return std::find(files.begin(), files.end(), name) != files.end();
  };
  for (const std::string& name : early) {
    EXPECT_TRUE(name == "original" || IsSegment(name) || name.ends_with(".m3u8")) << name;
    if (!name.starts_with("media_")) continue;
    std::string playlist = ReadContent(id, name);
    EXPECT_THAT(playlist, HasSubstr("#EXT-X-PLAYLIST-TYPE:EVENT"));
    EXPECT_THAT(playlist, ::testing::Not(HasSubstr("#EXT-X-ENDLIST")));
    for (const std::string& segment : PlaylistSegments(playlist)) {
      EXPECT_TRUE(stored(segment)) << name << " names " << segment;
    }
  }
  for (const std::string& uri : MasterPlaylistUris(ReadContent(id, "master.m3u8"))) {
    EXPECT_TRUE(stored(uri)) << uri;
  }
  EXPECT_EQ(Record(id).status, VideoStatus::kProcessing);

  ASSERT_TRUE(testing::WriteTestFile(release, "go").ok());
  ASSERT_TRUE(WaitFor([&] { return Finished(id); }));
  VideoRecord record = Record(id);
  EXPECT_EQ(record.status, VideoStatus::kReady) << record.error;
  EXPECT_FALSE(record.playable);  // ready says it all
  EXPECT_NEAR(record.duration_seconds, 9.0, 0.2);
  EXPECT_THAT(ReadContent(id, "media_0.m3u8"), HasSubstr("#EXT-X-PLAYLIST-TYPE:VOD"));
  EXPECT_THAT(ReadContent(id, "media_0.m3u8"), HasSubstr("#EXT-X-ENDLIST"));
  std::vector<std::string> files = Files(id);
  EXPECT_THAT(files, Contains("chunk-0-00003.m4s"));
  EXPECT_THAT(files, Contains("manifest.mpd"));
  EXPECT_THAT(files, Contains("thumbnail.jpg"));
  // What was stored plays to the end, through the DASH manifest and HLS.
  for (const char* manifest : {"manifest.mpd", "master.m3u8"}) {
    EXPECT_TRUE(testing::RunFfmpegForTest(
                    {"-i", (dir_.path() / "content" / id / manifest).string(), "-f", "null", "-"})
                    .ok())
        << manifest;
  }
  ASSERT_TRUE(WaitFor([&] { return pool.running() == 0; }));
  EXPECT_THAT(WorkDirEntries(), IsEmpty());
}

TEST_F(TranscodeWorkerPoolTest, StopAfterSegmentsWereStoredLeavesOnlyTheOriginal) {
  const fs::path release = Media("gated-ffmpeg").parent_path() / "release";
  fs::remove(release);
  std::string id = NewUpload(Media("long.mp4"));
  TranscodeWorkerPoolOptions options = Options();
  options.transcode.ffmpeg = Media("gated-ffmpeg").string();
  {
    TranscodeWorkerPool pool(*metadata_, *content_, options);
    pool.Start();
    pool.Enqueue(id);
    ASSERT_TRUE(WaitFor([&] {
      std::vector<std::string> files = Files(id);
      return std::find(files.begin(), files.end(), "chunk-0-00001.m4s") != files.end();
    }));
    Clock::time_point start = Clock::now();
    pool.Stop();
    // ffmpeg's kill grace (2 s) plus the cleanup budget (2 s), on a loaded machine.
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
  }
  EXPECT_EQ(Record(id).status, VideoStatus::kProcessing);
  EXPECT_THAT(Files(id), ElementsAre("original"));
  EXPECT_THAT(WorkDirEntries(), IsEmpty());
}

TEST_F(TranscodeWorkerPoolTest, AFailedStoreFailsTheJobAndLeavesOnlyTheOriginal) {
  std::string id = NewUpload(Media("long.mp4"));
  RefusingContent content(*content_, "chunk-0-00001.m4s");
  TranscodeWorkerPool pool(*metadata_, content, Options());
  pool.Start();
  pool.Enqueue(id);
  ASSERT_TRUE(WaitFor([&] { return Finished(id); }));
  VideoRecord record = Record(id);
  EXPECT_EQ(record.status, VideoStatus::kFailed);
  EXPECT_THAT(record.error, HasSubstr("could not store"));
  EXPECT_THAT(Files(id), ElementsAre("original"));
  ASSERT_TRUE(WaitFor([&] { return pool.running() == 0; }));
  EXPECT_THAT(WorkDirEntries(), IsEmpty());
}

TEST_F(TranscodeWorkerPoolTest, AnEnqueuedDescriptionSparesTheProbe) {
  absl::StatusOr<MediaInfo> info = ProbeMedia(Media("clip.mp4"));
  ASSERT_TRUE(info.ok()) << info.status();
  std::string described = NewUpload(Media("clip.mp4"));
  std::string undescribed = NewUpload(Media("clip.mp4"));
  TranscodeWorkerPoolOptions options = Options();
  options.transcode.ffprobe = (dir_.path() / "no-such-ffprobe").string();
  TranscodeWorkerPool pool(*metadata_, *content_, options);
  pool.Start();
  pool.Enqueue(described, std::nullopt, *info);
  pool.Enqueue(undescribed);
  ASSERT_TRUE(WaitFor([&] { return Finished(described) && Finished(undescribed); }));
  EXPECT_EQ(Record(described).status, VideoStatus::kReady) << Record(described).error;
  // Without a description it needs ffprobe, which is missing here.
  EXPECT_EQ(Record(undescribed).status, VideoStatus::kFailed);
}

// Claims that say every video is held by another server.
class ClaimedElsewhere : public JobClaims {
 public:
  absl::StatusOr<std::unique_ptr<JobClaim>> TryClaim(std::string_view,
                                                     std::function<void()>) override {
    ++calls;
    return nullptr;
  }
  std::atomic<int> calls{0};
};

TEST_F(TranscodeWorkerPoolTest, AVideoClaimedElsewhereIsLeftAlone) {
  std::string id = NewUpload(Media("clip.mp4"));
  fs::path local = dir_.path() / "upload.tmp";
  fs::copy_file(Media("clip.mp4"), local);
  ClaimedElsewhere claims;
  TranscodeWorkerPoolOptions options = Options();
  options.claims = &claims;
  TranscodeWorkerPool pool(*metadata_, *content_, options);
  pool.Start();
  pool.Enqueue(id, local);
  ASSERT_TRUE(WaitFor([&] { return pool.counts().claimed_elsewhere == 1; }));
  EXPECT_EQ(pool.running(), 0u);
  EXPECT_EQ(pool.queued(), 0u);
  EXPECT_FALSE(fs::exists(local));  // the holder reads the stored original
  VideoRecord record = Record(id);
  EXPECT_EQ(record.status, VideoStatus::kProcessing);
  EXPECT_EQ(record.progress, 0);
  EXPECT_THAT(Files(id), ElementsAre("original"));
}

TEST_F(TranscodeWorkerPoolTest, RescanFindsVideosQueuedNowhere) {
  TranscodeWorkerPoolOptions options = Options();
  options.rescan_interval = milliseconds(100);
  TranscodeWorkerPool pool(*metadata_, *content_, options);
  pool.Start();
  // Uploaded through another server, which never ran it.
  std::string id = NewUpload(Media("clip.mp4"));
  ASSERT_TRUE(WaitFor([&] { return Finished(id); }));
  EXPECT_EQ(Record(id).status, VideoStatus::kReady) << Record(id).error;
  ASSERT_TRUE(WaitFor([&] { return pool.running() == 0; }));
  EXPECT_EQ(pool.counts().ready, 1u);
  // Stop() ends the rescan promptly.
  Clock::time_point start = Clock::now();
  pool.Stop();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
}

// A head start (StartEarly): what the upload path hands over before the
// original is stored and the record exists.
class HeadStartTest : public TranscodeWorkerPoolTest {
 protected:
  // The caller's spool file: a copy it keeps (the pool links its own name).
  fs::path Spool(const std::string& name) {
    fs::path spool = dir_.path() / "work" / "uploads" / "spool.upload";
    fs::create_directories(spool.parent_path());
    fs::copy_file(Media(name), spool, fs::copy_options::overwrite_existing);
    return spool;
  }
  MediaInfo Probe(const fs::path& path) {
    absl::StatusOr<MediaInfo> info = ProbeMedia(path, ProbeOptions{});
    EXPECT_TRUE(info.ok()) << info.status();
    return info.value_or(MediaInfo{});
  }
  // The manifest of the encode, in the job's scratch directory: ffmpeg has
  // written every output.
  bool EncodedInScratch() {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir_.path() / "work", ec)) {
      if (fs::exists(entry.path() / "out" / "manifest.mpd", ec)) return true;
    }
    return false;
  }
  void Accept(const std::string& id, const fs::path& original) {
    Store(id, "original", original);
    VideoRecord record;
    record.id = id;
    record.title = "head start";
    record.status = VideoStatus::kProcessing;
    ASSERT_TRUE(metadata_->Create(record).ok());
  }
};

TEST_F(HeadStartTest, EncodesBeforeTheVideoIsAcceptedAndPublishesOnlyAfterCommit) {
  const fs::path release = Media("gated-ffmpeg").parent_path() / "release";
  fs::remove(release);
  TranscodeWorkerPoolOptions options = Options();
  options.transcode.ffmpeg = Media("gated-ffmpeg").string();
  TranscodeWorkerPool pool(*metadata_, *content_, options);
  pool.Start();
  const fs::path spool = Spool("long.mp4");
  const std::string id = NewVideoId();
  std::unique_ptr<EarlyJob> early = pool.StartEarly(id, spool, Probe(spool));
  ASSERT_NE(early, nullptr);

  // The whole ladder is encoded while the video does not exist yet: nothing
  // stored under its id, no record, and the caller still has its file.
  ASSERT_TRUE(WaitFor([&] { return EncodedInScratch(); }));
  EXPECT_THAT(Files(id), IsEmpty());
  EXPECT_EQ(metadata_->Get(id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(fs::exists(spool));

  Accept(id, spool);
  EXPECT_TRUE(early->Commit());
  ASSERT_TRUE(testing::WriteTestFile(release, "go").ok());
  ASSERT_TRUE(WaitFor([&] { return Finished(id); }));
  VideoRecord record = Record(id);
  EXPECT_EQ(record.status, VideoStatus::kReady) << record.error;
  EXPECT_EQ(record.progress, 100);
  std::vector<std::string> files = Files(id);
  EXPECT_THAT(files, Contains("manifest.mpd"));
  EXPECT_THAT(files, Contains("master.m3u8"));
  EXPECT_THAT(files, Contains("thumbnail.jpg"));
  EXPECT_TRUE(
      testing::RunFfmpegForTest(
          {"-i", (dir_.path() / "content" / id / "master.m3u8").string(), "-f", "null", "-"})
          .ok());
  ASSERT_TRUE(WaitFor([&] { return pool.running() == 0; }));
  EXPECT_EQ(pool.counts().ready, 1u);
  // Only the caller's own file is left in the work dir (the job's is gone).
  EXPECT_THAT(WorkDirEntries(), ElementsAre("uploads"));
}

TEST_F(HeadStartTest, AnAbortedHeadStartIsKilledAndLeavesNothing) {
  const fs::path release = Media("gated-ffmpeg").parent_path() / "release";
  fs::remove(release);
  TranscodeWorkerPoolOptions options = Options();
  options.transcode.ffmpeg = Media("gated-ffmpeg").string();
  TranscodeWorkerPool pool(*metadata_, *content_, options);
  pool.Start();
  const fs::path spool = Spool("long.mp4");
  const std::string id = NewVideoId();
  std::unique_ptr<EarlyJob> early = pool.StartEarly(id, spool, Probe(spool));
  ASSERT_NE(early, nullptr);
  ASSERT_TRUE(WaitFor([&] { return pool.running() == 1; }));

  // Storing the original failed: the handle goes without a commit. The
  // encode is killed (the gated ffmpeg would wait two minutes otherwise).
  early.reset();
  ASSERT_TRUE(WaitFor([&] { return pool.running() == 0; }));
  EXPECT_THAT(Files(id), IsEmpty());
  EXPECT_EQ(metadata_->Get(id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(WorkDirEntries(), ElementsAre("uploads"));
  EXPECT_TRUE(fs::exists(spool));
  TranscodeWorkerPool::JobCounts counts = pool.counts();
  EXPECT_EQ(counts.ready + counts.failed + counts.interrupted + counts.skipped, 0u);
}

TEST_F(HeadStartTest, NoHeadStartWithoutAnIdleWorker) {
  TranscodeWorkerPoolOptions options = Options(/*slow=*/true);
  options.workers = 1;
  TranscodeWorkerPool pool(*metadata_, *content_, options);
  const fs::path spool = Spool("clip.mp4");
  const MediaInfo media = Probe(spool);
  EXPECT_EQ(pool.StartEarly(NewVideoId(), spool, media), nullptr) << "not started";
  pool.Start();
  std::string busy = NewUpload(Media("long.mp4"));
  pool.Enqueue(busy);
  ASSERT_TRUE(WaitFor([&] { return pool.running() == 1; }));
  EXPECT_EQ(pool.StartEarly(NewVideoId(), spool, media), nullptr);
  EXPECT_TRUE(fs::exists(spool));
}

TEST_F(HeadStartTest, AHeadStartThePoolDroppedIsNotCommitted) {
  TranscodeWorkerPoolOptions options = Options(/*slow=*/true);
  TranscodeWorkerPool pool(*metadata_, *content_, options);
  pool.Start();
  const fs::path spool = Spool("long.mp4");
  const std::string id = NewVideoId();
  std::unique_ptr<EarlyJob> early = pool.StartEarly(id, spool, Probe(spool));
  ASSERT_NE(early, nullptr);
  ASSERT_TRUE(WaitFor([&] { return pool.running() == 1; }));
  pool.Stop();
  // The caller then queues the accepted video as usual.
  Accept(id, spool);
  EXPECT_FALSE(early->Commit());
  EXPECT_THAT(Files(id), ElementsAre("original"));
  EXPECT_THAT(WorkDirEntries(), ElementsAre("uploads"));
}

}  // namespace
}  // namespace streamgrid
