#include "transcode/output_publisher.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transcode/live_playlists.h"
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

TEST(CompletedWhileEncodingTest, ASegmentAPlaylistListsIsCompleteEvenIfLast) {
  EXPECT_THAT(CompletedWhileEncoding({"chunk-0-00001.m4s", "chunk-0-00002.m4s", "init-0.m4s"},
                                     {"chunk-0-00001.m4s", "chunk-0-00002.m4s"}),
              ElementsAre("chunk-0-00001.m4s", "chunk-0-00002.m4s", "init-0.m4s"));
  // Listed but not there (yet): nothing to store.
  EXPECT_THAT(CompletedWhileEncoding({"init-0.m4s"}, {"chunk-0-00001.m4s"}), IsEmpty());
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
  // The two at the end are stored together, in either order.
  std::vector<std::string> calls = store_.calls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0], "init-0.m4s");
  EXPECT_THAT(std::vector<std::string>(calls.begin() + 1, calls.end()),
              UnorderedElementsAre("chunk-0-00001.m4s", "init-0.m4s"));
  EXPECT_EQ(store_.stored()["init-0.m4s"], "init, rewritten at the end");
  EXPECT_THAT(publisher.attempted(), ElementsAre("init-0.m4s", "chunk-0-00001.m4s"));
}

TEST_F(OutputPublisherTest, FinishStoresAStageTogetherAndTheNextAfterIt) {
  // Each store of a segment waits until four are under way at once: stored
  // one after another, they would never get there (and time out).
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0, most = 0;
  std::vector<std::string> order;
  auto store = [&](const std::string& name, const fs::path& path) {
    std::unique_lock lock(mu);
    order.push_back(name);
    if (name.ends_with(".m4s")) {
      ++in_flight;
      most = std::max(most, in_flight);
      cv.notify_all();
      cv.wait_for(lock, std::chrono::seconds(30), [&] { return most >= 4; });
      --in_flight;
    }
    return absl::OkStatus();
  };
  OutputPublisher publisher(dir_.path(), store, milliseconds(5), nullptr);
  std::vector<std::string> files;
  for (int k = 1; k <= 6; ++k) files.push_back(absl::StrFormat("chunk-0-%05d.m4s", k));
  files.insert(files.end(), {"media_0.m3u8", "manifest.mpd", "master.m3u8"});
  for (const std::string& name : files) Write(name, name);
  ASSERT_TRUE(publisher.Finish(files).ok());
  EXPECT_EQ(most, 4);
  ASSERT_EQ(order.size(), files.size());
  // The media playlist and the DASH manifest (together: both name only
  // segments) only after every segment, the master after them.
  EXPECT_THAT(std::vector<std::string>(order.end() - 3, order.end() - 1),
              ::testing::UnorderedElementsAre("media_0.m3u8", "manifest.mpd"));
  EXPECT_EQ(order.back(), "master.m3u8");
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

std::string MediaPlaylist(int representation, int segments, bool ended) {
  std::string text =
      absl::StrCat("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:4\n",
                   "#EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-MAP:URI=\"init-", representation, ".m4s\"\n");
  for (int k = 1; k <= segments; ++k) {
    absl::StrAppend(&text, "#EXTINF:4.000000,\n",
                    "#EXT-X-PROGRAM-DATE-TIME:2026-12-05T05:39:29.000+0000\n",
                    absl::StrFormat("chunk-%d-%05d.m4s\n", representation, k));
  }
  if (ended) text += "#EXT-X-ENDLIST\n";
  return text;
}

TEST_F(OutputPublisherTest, LivePlaylistsNameOnlyStoredSegmentsAndTheMasterComesLast) {
  fs::path out = dir_.path() / "out";
  fs::create_directories(out);
  // Every playlist stored must name only what was stored before it.
  std::mutex violations_mu;
  std::vector<std::string> violations;
  std::atomic<int> playable = 0;
  auto store = [&](const std::string& name, const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::map<std::string, std::string> before = store_.stored();
    auto check = [&](const std::string& named) {
      std::lock_guard lock(violations_mu);
      if (!before.contains(named)) violations.push_back(name + " names " + named);
    };
    if (name.starts_with("media_")) {
      for (const std::string& segment : PlaylistSegments(text)) check(segment);
      check(name == "media_0.m3u8" ? "init-0.m4s" : "init-1.m4s");
    }
    if (name == "master.m3u8") {
      for (const std::string& uri : MasterPlaylistUris(text)) check(uri);
    }
    return store_.Store(name, path);
  };
  auto write = [&](const std::string& name, std::string_view bytes) {
    ASSERT_TRUE(testing::WriteTestFile(out / name, bytes).ok());
  };
  OutputPublisher publisher(out, store, milliseconds(5), nullptr);
  publisher.EnableLivePlaylists(dir_.path() / "live", [&] { ++playable; });
  publisher.Start();

  write("init-0.m4s", "init0");
  write("init-1.m4s", "init1");
  write("chunk-0-00001.m4s", "a1");
  write("media_0.m3u8", MediaPlaylist(0, 1, false));
  write("master.m3u8",
        "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",URI=\"media_1.m3u8\"\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"a\"\nmedia_0.m3u8\n");
  // The video stream lists a segment; the audio one nothing yet: no master.
  ASSERT_TRUE(WaitFor([&] { return store_.stored().contains("media_0.m3u8"); }));
  EXPECT_FALSE(store_.stored().contains("master.m3u8"));
  EXPECT_EQ(playable, 0);
  std::string live0 = store_.stored()["media_0.m3u8"];
  EXPECT_NE(live0.find("#EXT-X-PLAYLIST-TYPE:EVENT"), std::string::npos);
  EXPECT_EQ(live0.find("#EXT-X-ENDLIST"), std::string::npos);
  EXPECT_THAT(PlaylistSegments(live0), ElementsAre("chunk-0-00001.m4s"));

  write("chunk-1-00001.m4s", "b1");
  write("media_1.m3u8", MediaPlaylist(1, 1, false));
  ASSERT_TRUE(WaitFor([&] { return playable == 1; }));
  EXPECT_TRUE(store_.stored().contains("master.m3u8"));

  write("chunk-0-00002.m4s", "a2");
  write("media_0.m3u8", MediaPlaylist(0, 2, false));
  ASSERT_TRUE(
      WaitFor([&] { return PlaylistSegments(store_.stored()["media_0.m3u8"]).size() == 2; }));

  // ffmpeg has exited: the final (VOD) playlists replace the EVENT ones; the
  // master, unchanged, is not stored twice.
  write("media_0.m3u8", MediaPlaylist(0, 2, true));
  write("media_1.m3u8", MediaPlaylist(1, 1, true));
  ASSERT_TRUE(
      publisher
          .Finish({"chunk-0-00001.m4s", "chunk-0-00002.m4s", "chunk-1-00001.m4s", "init-0.m4s",
                   "init-1.m4s", "media_0.m3u8", "media_1.m3u8", "master.m3u8"})
          .ok());
  EXPECT_THAT(violations, IsEmpty());
  EXPECT_EQ(store_.stored()["media_0.m3u8"], MediaPlaylist(0, 2, true));
  EXPECT_EQ(store_.stored()["media_1.m3u8"], MediaPlaylist(1, 1, true));
  std::vector<std::string> calls = store_.calls();
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "master.m3u8"), 1);
  EXPECT_EQ(playable, 1);
}

TEST_F(OutputPublisherTest, ALivePlaylistAnEarlierRunStoredLongerIsNotReplacedByAShorterOne) {
  // Another server's interrupted run stored media_0.m3u8 listing three
  // segments; this run starts again from the first.
  fs::path out = dir_.path() / "out";
  fs::create_directories(out);
  auto write = [&](const std::string& name, std::string_view bytes) {
    ASSERT_TRUE(testing::WriteTestFile(out / name, bytes).ok());
  };
  std::vector<std::string> asked;
  OutputPublisher publisher(out, StoreFn(), milliseconds(5), nullptr);
  publisher.EnableLivePlaylists(dir_.path() / "live", nullptr, [&](const std::string& name) {
    asked.push_back(name);
    return name == "media_0.m3u8" ? size_t{3} : size_t{0};
  });
  publisher.Start();
  write("init-0.m4s", "init0");
  write("chunk-0-00001.m4s", "a1");
  write("chunk-0-00002.m4s", "a2");
  write("chunk-0-00003.m4s", "a3");
  write("media_0.m3u8", MediaPlaylist(0, 3, false));
  // Three segments stored by this run: still no more than the stored playlist.
  ASSERT_TRUE(WaitFor([&] { return store_.stored().contains("chunk-0-00003.m4s"); }));
  write("chunk-0-00004.m4s", "a4");
  write("media_0.m3u8", MediaPlaylist(0, 4, false));
  // Four: now it is stored, listing all four.
  ASSERT_TRUE(WaitFor([&] { return store_.stored().contains("media_0.m3u8"); }));
  EXPECT_THAT(PlaylistSegments(store_.stored()["media_0.m3u8"]),
              ElementsAre("chunk-0-00001.m4s", "chunk-0-00002.m4s", "chunk-0-00003.m4s",
                          "chunk-0-00004.m4s"));
  std::vector<std::string> calls = store_.calls();
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "media_0.m3u8"), 1);
  ASSERT_TRUE(publisher.Stop().ok());
  // The stored copy is asked about once per playlist.
  EXPECT_THAT(asked, ElementsAre("media_0.m3u8"));
}

// The nice value of the calling thread.
int ThisThreadNice() {
  return ::getpriority(PRIO_PROCESS, static_cast<pid_t>(::syscall(SYS_gettid)));
}

TEST_F(OutputPublisherTest, BackgroundStoresRunAtTheLoweredPriorityFinishAtTheCallers) {
  const int caller_nice = ThisThreadNice();
  const int low = std::min(caller_nice + 5, 19);
  std::mutex mu;
  std::map<std::string, int> nice_of;  // per stored name, the storing thread's nice value
  auto store = [&](const std::string& name, const fs::path& path) {
    std::lock_guard lock(mu);
    nice_of[name] = ThisThreadNice();
    return absl::OkStatus();
  };
  auto stored = [&](const std::string& name) {
    std::lock_guard lock(mu);
    return nice_of.contains(name);
  };
  OutputPublisher publisher(dir_.path(), store, milliseconds(5), nullptr);
  publisher.SetBackgroundNice(low);
  // Five complete files in one look: stored by the loop's thread and the
  // threads it starts for them.
  for (int i = 1; i <= 5; ++i) Write(absl::StrFormat("chunk-0-%05d.m4s", i), "segment");
  Write("init-0.m4s", "init");
  publisher.Start();
  ASSERT_TRUE(WaitFor([&] { return stored("chunk-0-00004.m4s") && stored("init-0.m4s"); }));
  Write("master.m3u8", "#EXTM3U\n");
  ASSERT_TRUE(publisher.Finish({"chunk-0-00005.m4s", "master.m3u8"}).ok());
  std::lock_guard lock(mu);
  EXPECT_EQ(nice_of.size(), 7u);
  for (const auto& [name, nice] : nice_of) {
    // After ffmpeg: on the caller's thread, at its priority (the way to ready).
    const bool at_finish = name == "chunk-0-00005.m4s" || name == "master.m3u8";
    EXPECT_EQ(nice, at_finish ? caller_nice : low) << name;
  }
  EXPECT_EQ(ThisThreadNice(), caller_nice);  // the caller's own thread untouched
}

TEST_F(OutputPublisherTest, WithoutABackgroundNiceStoresRunAtTheCallersPriority) {
  const int caller_nice = ThisThreadNice();
  std::atomic<int> seen = -100;
  OutputPublisher publisher(
      dir_.path(),
      [&](const std::string&, const fs::path&) {
        seen = ThisThreadNice();
        return absl::OkStatus();
      },
      milliseconds(5), nullptr);
  Write("init-0.m4s", "init");
  Write("chunk-0-00001.m4s", "one");
  Write("chunk-0-00002.m4s", "two");
  publisher.Start();
  ASSERT_TRUE(WaitFor([&] { return seen != -100; }));
  EXPECT_EQ(seen, caller_nice);
  ASSERT_TRUE(publisher.Stop().ok());
}

TEST_F(OutputPublisherTest, WithLivePlaylistsStoresAreLoweredOnlyOnceTheVideoIsPlayable) {
  const int caller_nice = ThisThreadNice();
  const int low = std::min(caller_nice + 5, 19);
  fs::path out = dir_.path() / "out";
  fs::create_directories(out);
  std::mutex mu;
  std::map<std::string, int> nice_of;  // per name, the nice value of its last store
  auto store = [&](const std::string& name, const fs::path& path) {
    {
      std::lock_guard lock(mu);
      nice_of[name] = ThisThreadNice();
    }
    return store_.Store(name, path);
  };
  auto nice = [&](const std::string& name) {
    std::lock_guard lock(mu);
    auto it = nice_of.find(name);
    return it == nice_of.end() ? -100 : it->second;
  };
  auto write = [&](const std::string& name, std::string_view bytes) {
    ASSERT_TRUE(testing::WriteTestFile(out / name, bytes).ok());
  };
  std::atomic<int> playable = 0;
  OutputPublisher publisher(out, store, milliseconds(5), nullptr);
  publisher.SetBackgroundNice(low);
  publisher.EnableLivePlaylists(dir_.path() / "live", [&] { ++playable; });
  publisher.Start();
  write("init-0.m4s", "init0");
  write("chunk-0-00001.m4s", "a1");
  write("media_0.m3u8", MediaPlaylist(0, 1, false));
  write("master.m3u8", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nmedia_0.m3u8\n");
  ASSERT_TRUE(WaitFor([&] { return playable == 1; }));
  // On the way to the first playable: the caller's priority.
  EXPECT_EQ(nice("chunk-0-00001.m4s"), caller_nice);
  EXPECT_EQ(nice("master.m3u8"), caller_nice);
  // Playable: what follows while ffmpeg runs has slack.
  write("chunk-0-00002.m4s", "a2");
  write("media_0.m3u8", MediaPlaylist(0, 2, false));
  ASSERT_TRUE(
      WaitFor([&] { return PlaylistSegments(store_.stored()["media_0.m3u8"]).size() == 2; }));
  EXPECT_EQ(nice("chunk-0-00002.m4s"), low);
  EXPECT_EQ(nice("media_0.m3u8"), low);
  ASSERT_TRUE(publisher.Stop().ok());
}

}  // namespace
}  // namespace streamgrid
