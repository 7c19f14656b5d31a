#include "transcode/output_publisher.h"

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transcode/testing/test_media.h"

namespace streamgrid {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

bool WaitFor(const std::function<bool()>& condition, milliseconds timeout = milliseconds(30'000)) {
  Clock::time_point end = Clock::now() + timeout;
  while (Clock::now() < end) {
    if (condition()) return true;
    std::this_thread::sleep_for(milliseconds(10));  // polling interval, not a fixed wait
  }
  return condition();
}

TEST(CompletedWhileEncodingTest, EverySegmentButTheLastOfEachRepresentation) {
  EXPECT_THAT(
      CompletedWhileEncoding({"chunk-0-00001.m4s", "chunk-0-00002.m4s", "chunk-0-00003.m4s",
                              "chunk-1-00001.m4s", "init-0.m4s", "init-1.m4s", "init-2.m4s"}),
      ElementsAre("chunk-0-00001.m4s", "chunk-0-00002.m4s", "init-0.m4s", "init-1.m4s"));
  // Numbers compare as numbers, past the five digits of the pattern too.
  EXPECT_THAT(CompletedWhileEncoding({"chunk-3-99999.m4s", "chunk-3-100000.m4s"}),
              ElementsAre("chunk-3-99999.m4s"));
}

TEST(CompletedWhileEncodingTest, InitSegmentOnceItsRepresentationHasAMediaSegment) {
  EXPECT_THAT(CompletedWhileEncoding({"init-0.m4s"}), IsEmpty());
  EXPECT_THAT(CompletedWhileEncoding({"chunk-0-00001.m4s", "init-0.m4s"}),
              ElementsAre("init-0.m4s"));
  EXPECT_THAT(CompletedWhileEncoding({"chunk-1-00001.m4s", "init-0.m4s"}), IsEmpty());
}

TEST(CompletedWhileEncodingTest, NeverManifestsPlaylistsOrTemporaryFiles) {
  EXPECT_THAT(CompletedWhileEncoding({"chunk-0-00001.m4s", "chunk-0-00002.m4s.tmp", "manifest.mpd",
                                      "master.m3u8", "media_0.m3u8", "thumbnail.jpg",
                                      "chunk-0-x.m4s", "chunk-00001.m4s", "init-.m4s",
                                      "chunk-0-00000.m4s", "chunk-a-00002.m4s"}),
              IsEmpty());
}

// Records what it is asked to store, with the bytes at that moment.
class FakeStore {
 public:
  absl::Status Store(const std::string& name, const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::lock_guard lock(mu_);
    calls_.push_back(name);
    if (name == fail_name_) return absl::UnavailableError("node down");
    stored_[name] = bytes;
    return absl::OkStatus();
  }
  std::vector<std::string> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  std::map<std::string, std::string> stored() {
    std::lock_guard lock(mu_);
    return stored_;
  }
  void FailOn(std::string name) {
    std::lock_guard lock(mu_);
    fail_name_ = std::move(name);
  }

 private:
  std::mutex mu_;
  std::vector<std::string> calls_;
  std::map<std::string, std::string> stored_;
  std::string fail_name_;
};

class OutputPublisherTest : public ::testing::Test {
 protected:
  void Write(const std::string& name, std::string_view bytes) {
    ASSERT_TRUE(testing::WriteTestFile(dir_.path() / name, bytes).ok());
  }
  OutputPublisher::StoreFn StoreFn() {
    return
        [this](const std::string& name, const fs::path& path) { return store_.Store(name, path); };
  }

  testing::TempDir dir_;
  FakeStore store_;
};

TEST_F(OutputPublisherTest, StoresSegmentsAsTheyCompleteAndTheRestAtFinish) {
  OutputPublisher publisher(dir_.path(), StoreFn(), milliseconds(5), nullptr);
  publisher.Start();
  Write("init-0.m4s", "init");
  Write("chunk-0-00001.m4s", "one");
  Write("manifest.mpd", "partial manifest");
  ASSERT_TRUE(WaitFor([&] { return store_.calls().size() == 1; }));
  EXPECT_THAT(store_.calls(), ElementsAre("init-0.m4s"));

  Write("chunk-0-00002.m4s", "two");
  ASSERT_TRUE(WaitFor([&] { return store_.calls().size() == 2; }));
  EXPECT_THAT(store_.calls(), ElementsAre("init-0.m4s", "chunk-0-00001.m4s"));

  // ffmpeg has exited: the last segment, then the manifest, in the order given.
  Write("manifest.mpd", "final manifest");
  ASSERT_TRUE(
      publisher.Finish({"chunk-0-00001.m4s", "chunk-0-00002.m4s", "init-0.m4s", "manifest.mpd"})
          .ok());
  EXPECT_THAT(store_.calls(),
              ElementsAre("init-0.m4s", "chunk-0-00001.m4s", "chunk-0-00002.m4s", "manifest.mpd"));
  EXPECT_EQ(store_.stored()["manifest.mpd"], "final manifest");
  EXPECT_EQ(store_.stored()["chunk-0-00002.m4s"], "two");
  EXPECT_THAT(publisher.attempted(),
              ElementsAre("init-0.m4s", "chunk-0-00001.m4s", "chunk-0-00002.m4s", "manifest.mpd"));
}

TEST_F(OutputPublisherTest, AFileChangedAfterItWasStoredIsStoredAgain) {
  OutputPublisher publisher(dir_.path(), StoreFn(), milliseconds(5), nullptr);
  publisher.Start();
  Write("init-0.m4s", "init");
  Write("chunk-0-00001.m4s", "one");
  ASSERT_TRUE(WaitFor([&] { return store_.calls().size() == 1; }));
  ASSERT_TRUE(publisher.Stop().ok());
  // Rewritten with a different size: no stamp can match.
  Write("init-0.m4s", "init, rewritten at the end");
  ASSERT_TRUE(publisher.Finish({"chunk-0-00001.m4s", "init-0.m4s"}).ok());
  EXPECT_THAT(store_.calls(), ElementsAre("init-0.m4s", "chunk-0-00001.m4s", "init-0.m4s"));
  EXPECT_EQ(store_.stored()["init-0.m4s"], "init, rewritten at the end");
  EXPECT_THAT(publisher.attempted(), ElementsAre("init-0.m4s", "chunk-0-00001.m4s"));
}

TEST_F(OutputPublisherTest, AFailedStoreIsReportedOnceAndStopsPublishing) {
  store_.FailOn("init-0.m4s");
  std::atomic<int> errors = 0;
  OutputPublisher publisher(dir_.path(), StoreFn(), milliseconds(5),
                            [&](const absl::Status& status) {
                              EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
                              ++errors;
                            });
  publisher.Start();
  Write("init-0.m4s", "init");
  Write("chunk-0-00001.m4s", "one");
  ASSERT_TRUE(WaitFor([&] { return errors == 1; }));
  Write("chunk-0-00002.m4s", "two");
  absl::Status finished = publisher.Finish({"chunk-0-00001.m4s", "chunk-0-00002.m4s"});
  EXPECT_EQ(finished.code(), absl::StatusCode::kUnavailable);
  // Nothing after the failure: the caller undoes what was attempted.
  EXPECT_THAT(store_.calls(), ElementsAre("init-0.m4s"));
  EXPECT_THAT(publisher.attempted(), ElementsAre("init-0.m4s"));
  EXPECT_EQ(errors, 1);
}

TEST_F(OutputPublisherTest, FinishStopsAtTheFirstError) {
  store_.FailOn("media_0.m3u8");
  OutputPublisher publisher(dir_.path(), StoreFn(), milliseconds(5), nullptr);
  Write("chunk-0-00001.m4s", "one");
  Write("media_0.m3u8", "#EXTM3U");
  Write("manifest.mpd", "manifest");
  absl::Status finished = publisher.Finish({"chunk-0-00001.m4s", "media_0.m3u8", "manifest.mpd"});
  EXPECT_EQ(finished.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(store_.calls(), ElementsAre("chunk-0-00001.m4s", "media_0.m3u8"));
}

TEST_F(OutputPublisherTest, StopIsPromptWithALongPollInterval) {
  OutputPublisher publisher(dir_.path() / "not-yet", StoreFn(), milliseconds(60'000), nullptr);
  publisher.Start();
  Clock::time_point start = Clock::now();
  EXPECT_TRUE(publisher.Stop().ok());
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_THAT(store_.calls(), IsEmpty());
}

TEST_F(OutputPublisherTest, AMissingDirectoryIsWaitedFor) {
  fs::path out = dir_.path() / "out";
  OutputPublisher publisher(out, StoreFn(), milliseconds(5), nullptr);
  publisher.Start();
  fs::create_directories(out);
  ASSERT_TRUE(testing::WriteTestFile(out / "chunk-2-00001.m4s", "a").ok());
  ASSERT_TRUE(testing::WriteTestFile(out / "chunk-2-00002.m4s", "b").ok());
  ASSERT_TRUE(WaitFor([&] { return store_.calls().size() == 1; }));
  EXPECT_THAT(store_.calls(), UnorderedElementsAre("chunk-2-00001.m4s"));
}

}  // namespace
}  // namespace streamgrid
