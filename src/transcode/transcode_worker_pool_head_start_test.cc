#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/ids.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transcode/early_job.h"
#include "transcode/live_playlists.h"
#include "transcode/probe.h"
#include "transcode/testing/test_media.h"
#include "transcode/testing/worker_pool_fixture.h"
#include "transcode/transcode_worker_pool.h"

namespace streamgrid {
namespace {

namespace fs = std::filesystem;
using pool_testing::TranscodeWorkerPoolTest;
using pool_testing::WaitFor;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

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
  const fs::path release = GateRelease();
  std::unique_ptr<TranscodeWorkerPool> started = StartGatedPool();
  TranscodeWorkerPool& pool = *started;
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
  const fs::path release = GateRelease();
  std::unique_ptr<TranscodeWorkerPool> started = StartGatedPool();
  TranscodeWorkerPool& pool = *started;
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
