#include "metadata/video_metadata_service_conformance.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/ids.h"
#include "gmock/gmock.h"

namespace streamgrid {

std::string MetadataServiceFactoryName(
    const ::testing::TestParamInfo<MetadataServiceFactory>& info) {
  return info.param.name;
}

VideoRecord MakeTestRecord(int64_t created_at_ms, std::string title) {
  VideoRecord record;
  record.id = NewVideoIdAt(created_at_ms);
  record.title = std::move(title);
  record.created_at_ms = created_at_ms;
  record.updated_at_ms = created_at_ms;
  return record;
}

absl::Status CreateAll(VideoMetadataService& service, const std::vector<VideoRecord>& records,
                       int threads) {
  threads = std::max(1, threads);
  std::mutex mu;
  absl::Status first_error;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (size_t i = t; i < records.size(); i += threads) {
        absl::Status status = service.Create(records[i]);
        if (!status.ok()) {
          std::lock_guard lock(mu);
          if (first_error.ok()) first_error = status;
          return;
        }
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  return first_error;
}

std::vector<std::string> ListAllIds(VideoMetadataService& service, ListOptions options,
                                    int* pages) {
  std::vector<std::string> ids;
  int count = 0;
  do {
    auto page = service.List(options);
    EXPECT_TRUE(page.ok()) << page.status();
    if (!page.ok()) break;
    ++count;
    for (const VideoRecord& record : page->videos) ids.push_back(record.id);
    options.page_token = page->next_page_token;
  } while (!options.page_token.empty());
  if (pages) *pages = count;
  return ids;
}

void VideoMetadataServiceConformanceTest::SetUp() {
  harness_ = GetParam().make();
  ASSERT_NE(harness_, nullptr);
}

namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

TEST_P(VideoMetadataServiceConformanceTest, CreateGetRoundTripsEveryField) {
  VideoRecord record = MakeTestRecord(1700000000123, "Mein \"Urlaub\" 2023 — ☀️.mov");
  record.status = VideoStatus::kFailed;
  record.progress = 42;
  record.duration_seconds = 3723.625;
  record.renditions = {{"1080p", 1920, 1080, 5'000'000}, {"360p", 640, 360, 800'000}};
  record.error = "ffmpeg exited with status 1";
  record.updated_at_ms = 1700000999999;
  ASSERT_TRUE(service().Create(record).ok());

  auto got = service().Get(record.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, record);
}

TEST_P(VideoMetadataServiceConformanceTest, PlayableRoundTripsThroughCreateAndUpdate) {
  VideoRecord record = MakeTestRecord(1000);
  ASSERT_TRUE(service().Create(record).ok());
  EXPECT_FALSE(service().Get(record.id)->playable);
  auto updated = service().Update(record.id, [](VideoRecord& r) { r.playable = true; });
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_TRUE(updated->playable);
  EXPECT_TRUE(service().Get(record.id)->playable);
  ASSERT_TRUE(service().Update(record.id, [](VideoRecord& r) { r.playable = false; }).ok());
  EXPECT_FALSE(service().Get(record.id)->playable);

  VideoRecord created = MakeTestRecord(2000);
  created.playable = true;
  ASSERT_TRUE(service().Create(created).ok());
  EXPECT_EQ(*service().Get(created.id), created);
}

TEST_P(VideoMetadataServiceConformanceTest, StoryboardRoundTripsThroughCreateAndUpdate) {
  VideoRecord record = MakeTestRecord(1000);
  ASSERT_TRUE(service().Create(record).ok());
  EXPECT_FALSE(service().Get(record.id)->storyboard);
  auto updated = service().Update(record.id, [](VideoRecord& r) { r.storyboard = true; });
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_TRUE(updated->storyboard);
  EXPECT_TRUE(service().Get(record.id)->storyboard);

  VideoRecord created = MakeTestRecord(2000);
  created.storyboard = true;
  ASSERT_TRUE(service().Create(created).ok());
  EXPECT_EQ(*service().Get(created.id), created);
}

TEST_P(VideoMetadataServiceConformanceTest, DuplicateCreateIsAlreadyExistsAndKeepsOriginal) {
  VideoRecord record = MakeTestRecord(1000, "first");
  ASSERT_TRUE(service().Create(record).ok());
  VideoRecord again = record;
  again.title = "second";
  EXPECT_EQ(service().Create(again).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(service().Get(record.id)->title, "first");
}

TEST_P(VideoMetadataServiceConformanceTest, CreateRejectsInvalidId) {
  VideoRecord record = MakeTestRecord(1000);
  for (const std::string& id :
       std::vector<std::string>{"", "..", "ABC", "not a video id", std::string(26, 'U')}) {
    record.id = id;
    EXPECT_EQ(service().Create(record).code(), absl::StatusCode::kInvalidArgument) << id;
  }
  EXPECT_THAT(service().List({})->videos, IsEmpty());
}

TEST_P(VideoMetadataServiceConformanceTest, MissingRecordsAreNotFound) {
  const std::string id = NewVideoIdAt(5000);
  EXPECT_EQ(service().Get(id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(service().Get("garbage").status().code(), absl::StatusCode::kNotFound);
  bool called = false;
  auto updated = service().Update(id, [&](VideoRecord&) { called = true; });
  EXPECT_EQ(updated.status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(called);
  EXPECT_EQ(service().Delete(id).code(), absl::StatusCode::kNotFound);
}

TEST_P(VideoMetadataServiceConformanceTest, DeleteRemovesOnlyThatRecord) {
  VideoRecord a = MakeTestRecord(1000), b = MakeTestRecord(2000);
  ASSERT_TRUE(service().Create(a).ok());
  ASSERT_TRUE(service().Create(b).ok());
  ASSERT_TRUE(service().Delete(a.id).ok());
  EXPECT_EQ(service().Get(a.id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(service().Delete(a.id).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*service().Get(b.id), b);
}

TEST_P(VideoMetadataServiceConformanceTest, PagesThroughEveryRecordOnceNewestFirst) {
  constexpr int kCount = 2500;
  std::vector<VideoRecord> records;
  for (int i = 0; i < kCount; ++i) records.push_back(MakeTestRecord(1600000000000 + i * 7));
  // Insertion order must not matter; only the ids' time order does.
  std::shuffle(records.begin(), records.end(), std::mt19937(12345));
  absl::Status created = CreateAll(service(), records);
  ASSERT_TRUE(created.ok()) << created;

  std::vector<std::string> expected;
  for (const VideoRecord& record : records) expected.push_back(record.id);
  std::sort(expected.rbegin(), expected.rend());

  ListOptions options;
  options.page_size = 100;
  int pages = 0;
  std::vector<std::string> ids = ListAllIds(service(), options, &pages);
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
    auto page = service().List(options);
    ASSERT_TRUE(page.ok());
    EXPECT_THAT(page->videos, SizeIs(1));
    EXPECT_EQ(page->next_page_token, expected[0]);
  }
  options = {};
  options.page_size = 5000;
  auto big = service().List(options);
  ASSERT_TRUE(big.ok());
  EXPECT_THAT(big->videos, SizeIs(1000));
  EXPECT_EQ(big->next_page_token, expected[999]);
}

TEST_P(VideoMetadataServiceConformanceTest, LastPageHasNoToken) {
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(service().Create(MakeTestRecord(1000 + i)).ok());
  ListOptions options;
  options.page_size = 4;
  auto page = service().List(options);
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(page->videos, SizeIs(4));
  EXPECT_EQ(page->next_page_token, "");

  options.page_size = 3;
  page = service().List(options);
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(page->videos, SizeIs(3));
  options.page_token = page->next_page_token;
  page = service().List(options);
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(page->videos, SizeIs(1));
  EXPECT_EQ(page->videos[0].created_at_ms, 1000);
  EXPECT_EQ(page->next_page_token, "");
}

TEST_P(VideoMetadataServiceConformanceTest, StatusFilterPagesOnlyMatchingRecords) {
  const VideoStatus statuses[] = {VideoStatus::kProcessing, VideoStatus::kReady,
                                  VideoStatus::kFailed};
  std::vector<std::string> ready;
  for (int i = 0; i < 30; ++i) {
    VideoRecord record = MakeTestRecord(2000 + i);
    record.status = statuses[i % 3];
    if (record.status == VideoStatus::kReady) ready.insert(ready.begin(), record.id);
    ASSERT_TRUE(service().Create(record).ok());
  }
  ListOptions options;
  options.page_size = 4;
  options.status = VideoStatus::kReady;
  int pages = 0;
  EXPECT_EQ(ListAllIds(service(), options, &pages), ready);
  EXPECT_EQ(pages, 3);

  auto first = service().List(options);
  ASSERT_TRUE(first.ok());
  for (const VideoRecord& record : first->videos) EXPECT_EQ(record.status, VideoStatus::kReady);
}

TEST_P(VideoMetadataServiceConformanceTest, MalformedPageTokenIsInvalidArgument) {
  ASSERT_TRUE(service().Create(MakeTestRecord(1000)).ok());
  for (const std::string& token : std::vector<std::string>{
           "x", "not-a-token", "' OR 1=1 --", std::string(26, '0') + "0", std::string(26, 'I'),
           std::string(13, '0') + '\0' + std::string(12, '0')}) {
    ListOptions options;
    options.page_token = token;
    EXPECT_EQ(service().List(options).status().code(), absl::StatusCode::kInvalidArgument) << token;
  }
}

TEST_P(VideoMetadataServiceConformanceTest, UpdateKeepsIdentityAndSetsUpdatedAt) {
  VideoRecord record = MakeTestRecord(1000, "original.mp4");
  ASSERT_TRUE(service().Create(record).ok());

  const int64_t before = NowMillis();
  auto updated = service().Update(record.id, [](VideoRecord& r) {
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
  EXPECT_EQ(*service().Get(record.id), *updated);
  EXPECT_EQ(service().Get(NewVideoIdAt(9999)).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(VideoMetadataServiceConformanceTest, UpdateThatThrowsRollsBack) {
  VideoRecord record = MakeTestRecord(1000);
  ASSERT_TRUE(service().Create(record).ok());
  EXPECT_THROW(service()
                   .Update(record.id,
                           [](VideoRecord& r) {
                             r.progress = 50;
                             throw std::runtime_error("boom");
                           })
                   .IgnoreError(),
               std::runtime_error);
  EXPECT_EQ(*service().Get(record.id), record);
  // Nothing is left half-done (an open transaction, a held lock).
  auto updated = service().Update(record.id, [](VideoRecord& r) { r.progress = 7; });
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(service().Get(record.id)->progress, 7);
}

TEST_P(VideoMetadataServiceConformanceTest, ConcurrentUpdatesLoseNothing) {
  constexpr int kThreads = 8;
  constexpr int kIncrements = 12;
  VideoRecord record = MakeTestRecord(1000);
  ASSERT_TRUE(service().Create(record).ok());

  std::vector<std::thread> threads;
  std::atomic<int> failures = 0;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        auto updated = service().Update(record.id, [](VideoRecord& r) {
          ++r.progress;
          r.duration_seconds += 0.5;
        });
        if (!updated.ok()) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures, 0);
  auto got = service().Get(record.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->progress, kThreads * kIncrements);
  EXPECT_EQ(got->duration_seconds, kThreads * kIncrements * 0.5);
}

TEST_P(VideoMetadataServiceConformanceTest, ConcurrentCreatesAndListsAreConsistent) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        EXPECT_TRUE(service().Create(MakeTestRecord(10000 + t * kPerThread + i)).ok());
        EXPECT_TRUE(service().List({}).ok());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ListOptions options;
  options.page_size = 1000;
  EXPECT_THAT(service().List(options)->videos, SizeIs(kThreads * kPerThread));
}

// Counts a subscription's calls; waits for the count to pass a mark.
class CallCounter {
 public:
  std::function<void()> Callback() {
    return [this] {
      std::lock_guard lock(mu_);
      ++calls_;
      cv_.notify_all();
    };
  }
  int calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  // Whether the count passed `mark` within 20 s (a watch may be slow to
  // deliver on a loaded machine, never this slow).
  bool WaitPast(int mark) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(20), [&] { return calls_ > mark; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int calls_ = 0;
};

TEST_P(VideoMetadataServiceConformanceTest, SubscribersHearOfEveryChangeToTheirRecord) {
  VideoRecord record = MakeTestRecord(1000);
  CallCounter counter;
  auto subscription = service().Subscribe(record.id, counter.Callback());
  ASSERT_TRUE(subscription.ok()) << subscription.status();

  int mark = counter.calls();
  ASSERT_TRUE(service().Create(record).ok());
  EXPECT_TRUE(counter.WaitPast(mark)) << "no call for the create";
  for (int progress : {10, 20, 30}) {
    mark = counter.calls();
    ASSERT_TRUE(service().Update(record.id, [&](VideoRecord& r) { r.progress = progress; }).ok());
    EXPECT_TRUE(counter.WaitPast(mark)) << "no call for progress " << progress;
  }
  mark = counter.calls();
  ASSERT_TRUE(service().Delete(record.id).ok());
  EXPECT_TRUE(counter.WaitPast(mark)) << "no call for the delete";
}

TEST_P(VideoMetadataServiceConformanceTest, NoCallsOnceTheSubscriptionIsGone) {
  VideoRecord record = MakeTestRecord(1000);
  CallCounter gone, kept;
  auto first = service().Subscribe(record.id, gone.Callback());
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = service().Subscribe(record.id, kept.Callback());
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE(service().Create(record).ok());
  ASSERT_TRUE(gone.WaitPast(0));
  ASSERT_TRUE(kept.WaitPast(0));

  first->reset();
  const int gone_calls = gone.calls();
  const int mark = kept.calls();
  ASSERT_TRUE(service().Update(record.id, [](VideoRecord& r) { r.progress = 50; }).ok());
  // Both subscribers of a record hear of a change together: once the kept
  // one has, the other would have too.
  ASSERT_TRUE(kept.WaitPast(mark));
  EXPECT_EQ(gone.calls(), gone_calls);
}

}  // namespace
}  // namespace streamgrid
