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
#include "content/testing/forwarding_content_service.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metadata/sqlite_video_metadata_service.h"
#include "transcode/ladder.h"
#include "transcode/live_playlists.h"
#include "transcode/probe.h"
#include "transcode/testing/test_media.h"
#include "transcode/testing/worker_pool_fixture.h"
#include "transcode/transcode_job.h"

namespace streamgrid {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Clock = std::chrono::steady_clock;
using pool_testing::InstrumentedMetadata;
using pool_testing::TranscodeWorkerPoolTest;
using pool_testing::WaitFor;
using std::chrono::milliseconds;

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
  // longer than the video (encoder priming), spills into a second. The
  // storyboard's sheet and track are stored beside them.
  EXPECT_THAT(Files(id), ElementsAre("chunk-0-00001.m4s", "chunk-1-00001.m4s", "chunk-1-00002.m4s",
                                     "init-0.m4s", "init-1.m4s", "manifest.mpd", "master.m3u8",
                                     "media_0.m3u8", "media_1.m3u8", "original", "storyboard.jpg",
                                     "storyboard.vtt", "thumbnail.jpg"));
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

TEST_F(TranscodeWorkerPoolTest, ReportsEachJobsOutcomeAndTimes) {
  std::mutex mu;
  std::vector<TranscodeJobTiming> done;
  TranscodeWorkerPoolOptions options = Options();
  options.workers = 1;
  options.on_job_done = [&](const TranscodeJobTiming& timing) {
    std::lock_guard lock(mu);
    done.push_back(timing);
  };
  const std::string good = NewUpload(Media("clip.mp4"));
  const std::string bad = NewUpload(Media("notes.txt"));
  TranscodeWorkerPool pool(*metadata_, *content_, std::move(options));
  pool.Enqueue(good);
  pool.Enqueue(bad);
  pool.Start();
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard lock(mu);
    return done.size() == 2;
  }));
  std::lock_guard lock(mu);
  EXPECT_EQ(done[0].outcome, JobOutcome::kReady);
  EXPECT_EQ(done[1].outcome, JobOutcome::kFailed);
  // The second waited at least while the first ran (one worker).
  EXPECT_GT(done[0].ran.count(), 0);
  EXPECT_GE(done[1].waited.count(), done[0].ran.count());
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
class RefusingContent : public testing::ForwardingContentService {
 public:
  RefusingContent(VideoContentService& inner, std::string refused)
      : ForwardingContentService(inner), refused_(std::move(refused)) {}
  absl::StatusOr<std::unique_ptr<ContentWriter>> OpenWriter(std::string_view video_id,
                                                            std::string_view name) override {
    if (name == refused_) return absl::PermissionDeniedError("disk says no");
    return ForwardingContentService::OpenWriter(video_id, name);
  }

 private:
  const std::string refused_;
};

bool IsSegment(const std::string& name) { return name.ends_with(".m4s"); }

TEST_F(TranscodeWorkerPoolTest, SegmentsAreStoredWhileFfmpegStillRuns) {
  const fs::path release = GateRelease();
  std::string id = NewUpload(Media("long.mp4"));
  std::unique_ptr<TranscodeWorkerPool> started = StartGatedPool();
  TranscodeWorkerPool& pool = *started;
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

TEST_F(TranscodeWorkerPoolTest, ARunTakingOverKeepsTheLongerLivePlaylistAnEarlierRunStored) {
  const fs::path release = GateRelease();
  std::string id = NewUpload(Media("long.mp4"));
  // Another server's run got further before it died: its EVENT playlist of
  // the first rung lists five segments. Players watching it must not be
  // handed a shorter one by this run.
  std::string earlier =
      "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:EVENT\n"
      "#EXT-X-MAP:URI=\"init-0.m4s\"\n";
  for (int k = 1; k <= 5; ++k)
    earlier += "#EXTINF:2.000,\nchunk-0-0000" + std::to_string(k) + ".m4s\n";
  const fs::path earlier_file = dir_.path() / "earlier.m3u8";
  ASSERT_TRUE(testing::WriteTestFile(earlier_file, earlier).ok());
  Store(id, "media_0.m3u8", earlier_file);
  std::unique_ptr<TranscodeWorkerPool> started = StartGatedPool();
  TranscodeWorkerPool& pool = *started;
  pool.Enqueue(id);

  // The encode is over (ffmpeg held): every segment of this run is stored
  // and the video playable, yet its live playlist (five segments at most)
  // never replaced the earlier one.
  ASSERT_TRUE(WaitFor([&] {
    std::vector<std::string> files = Files(id);
    return Record(id).playable &&
           std::find(files.begin(), files.end(), "chunk-0-00005.m4s") != files.end();
  }));
  EXPECT_EQ(ReadContent(id, "media_0.m3u8"), earlier);

  ASSERT_TRUE(testing::WriteTestFile(release, "go").ok());
  ASSERT_TRUE(WaitFor([&] { return Finished(id); }));
  EXPECT_EQ(Record(id).status, VideoStatus::kReady);
  // The final playlist replaces it, whatever its length.
  EXPECT_THAT(ReadContent(id, "media_0.m3u8"), HasSubstr("#EXT-X-ENDLIST"));
}

TEST_F(TranscodeWorkerPoolTest, StopAfterSegmentsWereStoredLeavesOnlyTheOriginal) {
  const fs::path release = GateRelease();
  std::string id = NewUpload(Media("long.mp4"));
  {
    std::unique_ptr<TranscodeWorkerPool> started = StartGatedPool();
    TranscodeWorkerPool& pool = *started;
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

}  // namespace
}  // namespace streamgrid
