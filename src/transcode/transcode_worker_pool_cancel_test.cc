// TranscodeWorkerPool::Cancel(): what deleting a video relies on.

#include <condition_variable>
#include <future>
#include <mutex>
#include <utility>

#include "content/testing/forwarding_content_service.h"
#include "transcode/testing/worker_pool_fixture.h"

namespace streamgrid {
namespace {

namespace fs = std::filesystem;
using pool_testing::TranscodeWorkerPoolTest;
using pool_testing::WaitFor;
using std::chrono::milliseconds;
using ::testing::ElementsAre;

// Forwards to a real service, counting the stores that ended, and holds the
// Commit() of one file name until Release(): a store in flight that cannot be
// abandoned (a Commit on a node may or may not land once begun).
class HoldingContent : public testing::ForwardingContentService {
 public:
  HoldingContent(VideoContentService& inner, std::string held)
      : ForwardingContentService(inner), held_(std::move(held)) {}

  bool holding() {
    std::lock_guard lock(mu_);
    return holding_;
  }
  int stores_ended() {
    std::lock_guard lock(mu_);
    return stores_ended_;
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

  absl::StatusOr<std::unique_ptr<ContentWriter>> OpenWriter(std::string_view video_id,
                                                            std::string_view name) override {
    absl::StatusOr<std::unique_ptr<ContentWriter>> inner =
        ForwardingContentService::OpenWriter(video_id, name);
    if (!inner.ok()) return inner.status();
    return std::make_unique<Writer>(*this, *std::move(inner), name == held_);
  }

 private:
  class Writer : public ContentWriter {
   public:
    Writer(HoldingContent& owner, std::unique_ptr<ContentWriter> inner, bool held)
        : owner_(owner), inner_(std::move(inner)), held_(held) {}
    absl::Status Append(std::span<const char> data) override { return inner_->Append(data); }
    absl::StatusOr<ContentInfo> Commit() override {
      if (held_) {
        std::unique_lock lock(owner_.mu_);
        owner_.holding_ = true;
        // Bounded, so that a failing test does not hang the suite.
        owner_.cv_.wait_for(lock, std::chrono::minutes(2), [&] { return owner_.released_; });
      }
      absl::StatusOr<ContentInfo> committed = inner_->Commit();
      std::lock_guard lock(owner_.mu_);
      ++owner_.stores_ended_;
      return committed;
    }
    void Cancel() override { inner_->Cancel(); }

   private:
    HoldingContent& owner_;
    std::unique_ptr<ContentWriter> inner_;
    const bool held_;
  };

  const std::string held_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool holding_ = false;
  bool released_ = false;
  int stores_ended_ = 0;
};

// A pool whose job stores through HoldingContent, holding its first segment.
class HeldStoreTest : public TranscodeWorkerPoolTest {
 protected:
  void TearDown() override {
    // A test that failed midway must not leave the job held until the pool's
    // destructor waits for it.
    if (held_ != nullptr) held_->Release();
    pool_.reset();
  }

  // Starts the job of a new upload; returns its id once the job's store of
  // the first segment is held.
  std::string StartHeldJob() {
    held_ = std::make_unique<HoldingContent>(*content_, "chunk-0-00001.m4s");
    pool_ = StartPool(Options(), held_.get());
    const std::string id = NewUpload(Media("long.mp4"));
    pool_->Enqueue(id);
    EXPECT_TRUE(WaitFor([&] { return held_->holding(); }));
    return id;
  }

  std::unique_ptr<HoldingContent> held_;  // outlives pool_
  std::unique_ptr<TranscodeWorkerPool> pool_;
};

TEST_F(HeldStoreTest, CancelReturnsOnlyOnceTheStoreInFlightEndedAndNothingLandsAfter) {
  const std::string id = StartHeldJob();
  HoldingContent& content = *held_;
  TranscodeWorkerPool* pool = pool_.get();

  struct AtReturn {
    absl::Status status;
    int stores_ended;
  };
  std::future<AtReturn> cancelled = std::async(std::launch::async, [&] {
    absl::Status status = pool->Cancel(id);
    return AtReturn{status, content.stores_ended()};
  });
  // However long it is given, Cancel() cannot return while the store is in
  // flight (its timeout, 20 s, is far off).
  EXPECT_EQ(cancelled.wait_for(milliseconds(500)), std::future_status::timeout);

  const int before_release = content.stores_ended();
  content.Release();
  AtReturn at_return = cancelled.get();
  EXPECT_TRUE(at_return.status.ok()) << at_return.status;
  EXPECT_EQ(at_return.stores_ended, before_release + 1) << "the held store ended first";
  // What the job stored it removed before Cancel() returned.
  EXPECT_THAT(Files(id), ElementsAre("original"));

  pool->Stop();
  EXPECT_EQ(content.stores_ended(), at_return.stores_ended) << "stored after Cancel() returned";
  EXPECT_THAT(Files(id), ElementsAre("original"));
  EXPECT_EQ(Record(id).status, VideoStatus::kProcessing) << "the record is left alone";
  EXPECT_EQ(pool->counts().interrupted, 1u);
}

TEST_F(HeldStoreTest, CancelGivesUpAtItsTimeoutWhileTheStoreIsStillHeld) {
  const std::string id = StartHeldJob();
  HoldingContent& content = *held_;
  TranscodeWorkerPool* pool = pool_.get();

  absl::Status status = pool->Cancel(id, milliseconds(200));
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_EQ(pool->running(), 1u);

  // The job still stops once its store returns, and removes what it stored.
  content.Release();
  ASSERT_TRUE(WaitFor([&] { return pool->running() == 0; }));
  EXPECT_THAT(Files(id), ElementsAre("original"));
  EXPECT_EQ(pool->counts().interrupted, 1u);
}

TEST_F(TranscodeWorkerPoolTest, CancelDropsAQueuedJobAndIgnoresUnknownVideos) {
  TranscodeWorkerPoolOptions options = Options(/*slow=*/true);
  options.workers = 1;
  std::unique_ptr<TranscodeWorkerPool> pool = StartPool(std::move(options));
  const std::string busy = NewUpload(Media("long.mp4"));
  const std::string waiting = NewUpload(Media("clip.mp4"));
  pool->Enqueue(busy);
  ASSERT_TRUE(WaitFor([&] { return pool->running() == 1; }));
  pool->Enqueue(waiting);
  ASSERT_EQ(pool->queued(), 1u);

  EXPECT_TRUE(pool->Cancel(waiting).ok());
  EXPECT_EQ(pool->queued(), 0u);
  EXPECT_TRUE(pool->Cancel(NewVideoId()).ok());

  EXPECT_TRUE(pool->Cancel(busy).ok());
  EXPECT_THAT(Files(busy), ElementsAre("original"));
  EXPECT_THAT(Files(waiting), ElementsAre("original"));
  EXPECT_EQ(Record(waiting).status, VideoStatus::kProcessing);
}

}  // namespace
}  // namespace streamgrid
