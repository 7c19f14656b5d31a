#include "content/caching_video_content_service.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "content/local_video_content_service.h"
#include "content/testing/forwarding_content_service.h"
#include "content/video_content_service_conformance.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace streamgrid {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kVid1 = "0123456789abcdefghjkmnpqrs";
constexpr std::string_view kVid2 = "0123456789abcdefghjkmnpqrt";
using namespace std::chrono_literals;

// A one-shot signal (what Notification does, without its library).
class Notification {
 public:
  void Notify() {
    std::lock_guard lock(mu_);
    done_ = true;
    cv_.notify_all();
  }
  void WaitForNotification() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return done_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
};

class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "sg_cache_XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Counts the calls that reach the wrapped service; OpenReader can be made to
// block until released, to hold a fill in flight.
class CountingService : public testing::ForwardingContentService {
 public:
  explicit CountingService(VideoContentService& inner) : ForwardingContentService(inner) {}

  absl::StatusOr<std::unique_ptr<ContentReader>> OpenReader(
      std::string_view video_id, std::string_view name, uint64_t offset,
      std::optional<uint64_t> length) override {
    ++opens;
    if (Notification* g = gate.load()) {
      entered.Notify();
      g->WaitForNotification();
    }
    return ForwardingContentService::OpenReader(video_id, name, offset, length);
  }
  absl::StatusOr<ContentInfo> Stat(std::string_view video_id, std::string_view name) override {
    ++stats;
    return ForwardingContentService::Stat(video_id, name);
  }

  std::atomic<int> opens{0};
  std::atomic<int> stats{0};
  std::atomic<Notification*> gate{nullptr};
  Notification entered;
};

// Every read of the conformance suite goes through Fetch first, so the suite's
// reads after writes, replacements and deletes are answered from the cache:
// it checks that this process's changes invalidate it.
class FillingCache : public CachingVideoContentService {
 public:
  using CachingVideoContentService::CachingVideoContentService;
  absl::StatusOr<std::unique_ptr<ContentReader>> OpenReader(
      std::string_view video_id, std::string_view name, uint64_t offset,
      std::optional<uint64_t> length) override {
    (void)Fetch(video_id, name);
    return CachingVideoContentService::OpenReader(video_id, name, offset, length);
  }
};

class CacheHarness : public ContentServiceHarness {
 public:
  // With `in_files`, cached files of 16 KiB or more go to unnamed files in a
  // directory rather than memfds.
  explicit CacheHarness(bool in_files = false) {
    auto opened = LocalVideoContentService::Open(dir_.path() / "root");
    if (!opened.ok()) throw std::runtime_error(opened.status().ToString());
    local_ = *std::move(opened);
    ContentCacheOptions options;
    if (in_files) {
      options.file_dir = (dir_.path() / "cache").string();
      std::filesystem::create_directories(options.file_dir);
    }
    cache_ = std::make_unique<FillingCache>(*local_, options);
  }
  VideoContentService& service() override { return *cache_; }

 private:
  TempDir dir_;
  std::unique_ptr<LocalVideoContentService> local_;
  std::unique_ptr<FillingCache> cache_;
};

INSTANTIATE_TEST_SUITE_P(
    CachedLocal, VideoContentServiceConformanceTest,
    ::testing::Values(ContentServiceFactory{"CachedLocal",
                                            [] { return std::make_unique<CacheHarness>(); }},
                      ContentServiceFactory{"CachedLocalInFiles",
                                            [] { return std::make_unique<CacheHarness>(true); }}),
    ContentServiceFactoryName);

class CachingVideoContentServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = LocalVideoContentService::Open(dir_.path() / "root");
    ASSERT_TRUE(opened.ok()) << opened.status();
    local_ = *std::move(opened);
    counting_ = std::make_unique<CountingService>(*local_);
  }
  // A cache over the counting service, with a clock the test moves.
  std::unique_ptr<CachingVideoContentService> MakeCache(ContentCacheOptions options = {}) {
    options.now = [this] { return now_; };
    options.fill_chunk_bytes = 1000;  // several reads per fill
    return std::make_unique<CachingVideoContentService>(*counting_, options);
  }
  void Write(std::string_view name, std::string_view data, std::string_view id = kVid1) {
    ASSERT_TRUE(WriteContent(*local_, id, name, data).ok());
  }

  TempDir dir_;
  std::unique_ptr<LocalVideoContentService> local_;
  std::unique_ptr<CountingService> counting_;
  std::chrono::steady_clock::time_point now_{};
};

TEST(IsImmutableContentNameTest, SegmentsAndTheStoryboardOnly) {
  for (const char* name : {"init-0.m4s", "chunk-1-00003.m4s", "storyboard.jpg", "storyboard.vtt"}) {
    EXPECT_TRUE(IsImmutableContentName(name)) << name;
  }
  for (const char* name : {"manifest.mpd", "master.m3u8", "media_0.m3u8", "thumbnail.jpg",
                           "original", "storyboard.jpg.tmp"}) {
    EXPECT_FALSE(IsImmutableContentName(name)) << name;
  }
}

TEST_F(CachingVideoContentServiceTest, FetchFillsThenLookupHitsWithoutIo) {
  const std::string data = TestBytes(5000, 1);
  Write("chunk-0-00001.m4s", data);
  auto cache = MakeCache();
  EXPECT_EQ(cache->Lookup(kVid1, "chunk-0-00001.m4s"), nullptr);

  auto fetched = cache->Fetch(kVid1, "chunk-0-00001.m4s");
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  ASSERT_NE(fetched->file, nullptr);
  EXPECT_EQ(fetched->reader, nullptr);
  EXPECT_EQ(fetched->file->data, data);
  EXPECT_EQ(fetched->info.size, 5000u);
  EXPECT_EQ(counting_->opens.load(), 1);

  auto hit = cache->Lookup(kVid1, "chunk-0-00001.m4s");
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit, fetched->file);
  auto again = cache->Fetch(kVid1, "chunk-0-00001.m4s");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->file, hit);
  EXPECT_EQ(counting_->opens.load(), 1);
  EXPECT_EQ(counting_->stats.load(), 0);

  ContentCacheStats stats = cache->stats();
  EXPECT_EQ(stats.bytes, 5000u);
  EXPECT_EQ(stats.entries, 1u);
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.fills, 1u);
}

// `file` holds a descriptor whose bytes (what sendfile sends) and whose
// `data` (what other readers copy) are both `bytes`.
void ExpectBytesThroughFdAndData(const CachedFile& file, const std::string& bytes) {
  ASSERT_GE(file.fd(), 0);
  std::string through_fd(bytes.size(), '\0');
  EXPECT_EQ(::pread(file.fd(), through_fd.data(), through_fd.size(), 0),
            static_cast<ssize_t>(bytes.size()));
  EXPECT_EQ(through_fd, bytes);
  EXPECT_EQ(file.data, bytes);
}

TEST_F(CachingVideoContentServiceTest, LargeEnoughFilesLiveInAMemfdWithinTheBudget) {
  const std::string big1 = TestBytes(5000, 2);
  const std::string big2 = TestBytes(6000, 3);
  Write("chunk-0-00001.m4s", big1);
  Write("chunk-0-00002.m4s", big2);
  Write("manifest.mpd", "<MPD/>");
  ContentCacheOptions options;
  options.memfd_min_bytes = 4096;
  options.memfd_max_files = 1;
  auto cache = MakeCache(options);
  std::shared_ptr<const CachedFile> first = cache->Fetch(kVid1, "chunk-0-00001.m4s")->file;
  std::shared_ptr<const CachedFile> second = cache->Fetch(kVid1, "chunk-0-00002.m4s")->file;
  std::shared_ptr<const CachedFile> small = cache->Fetch(kVid1, "manifest.mpd")->file;
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  ASSERT_NE(small, nullptr);
  // The first fits the budget of one descriptor: its bytes are readable
  // through it (what sendfile sends) and through `data` alike.
  ExpectBytesThroughFdAndData(*first, big1);
  // Over the budget, and too small: on the heap, same bytes.
  EXPECT_EQ(second->fd(), -1);
  EXPECT_EQ(second->data, big2);
  EXPECT_EQ(small->fd(), -1);
  EXPECT_EQ(small->data, "<MPD/>");
  EXPECT_EQ(cache->stats().memfd_files, 1u);

  // Dropped from the cache, the file stays valid while a response holds it;
  // its descriptor is released with the last holder.
  cache->InvalidateVideo(kVid1);
  EXPECT_EQ(cache->stats().memfd_files, 1u);
  EXPECT_EQ(first->data, big1);
  first.reset();
  EXPECT_EQ(cache->stats().memfd_files, 0u);
}

TEST_F(CachingVideoContentServiceTest, FilesUnderTheDirectoryAreUnnamedAndCountLikeMemfds) {
  const std::string big1 = TestBytes(5000, 2);
  const std::string big2 = TestBytes(6000, 3);
  Write("chunk-0-00001.m4s", big1);
  Write("chunk-0-00002.m4s", big2);
  const std::filesystem::path dir = dir_.path() / "cache";
  std::filesystem::create_directories(dir);
  ContentCacheOptions options;
  options.memfd_min_bytes = 4096;
  options.memfd_max_files = 1;
  options.file_dir = dir.string();
  auto cache = MakeCache(options);
  std::shared_ptr<const CachedFile> first = cache->Fetch(kVid1, "chunk-0-00001.m4s")->file;
  std::shared_ptr<const CachedFile> second = cache->Fetch(kVid1, "chunk-0-00002.m4s")->file;
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  // A file of the directory's file system, with no name in it (nothing to
  // clean up after a crash), holding the same bytes as `data`.
  ASSERT_GE(first->fd(), 0);
  struct stat st {};
  ASSERT_EQ(::fstat(first->fd(), &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), big1.size());
  EXPECT_TRUE(std::filesystem::is_empty(dir));
  ExpectBytesThroughFdAndData(*first, big1);
  // The descriptor budget is the memfds' budget.
  EXPECT_EQ(second->fd(), -1);
  EXPECT_EQ(second->data, big2);
  EXPECT_EQ(cache->stats().memfd_files, 1u);
  cache->InvalidateVideo(kVid1);
  first.reset();
  EXPECT_EQ(cache->stats().memfd_files, 0u);

  // A directory that cannot hold one: a memfd instead, same bytes.
  options.file_dir = (dir_.path() / "missing").string();
  auto fallback = MakeCache(options);
  std::shared_ptr<const CachedFile> again = fallback->Fetch(kVid1, "chunk-0-00001.m4s")->file;
  ASSERT_NE(again, nullptr);
  EXPECT_GE(again->fd(), 0);
  EXPECT_EQ(again->data, big1);
}

TEST_F(CachingVideoContentServiceTest, MissingFileIsNotFoundAndNotCached) {
  auto cache = MakeCache();
  auto fetched = cache->Fetch(kVid1, "nothing.m4s");
  EXPECT_TRUE(absl::IsNotFound(fetched.status())) << fetched.status();
  Write("nothing.m4s", "now here");
  fetched = cache->Fetch(kVid1, "nothing.m4s");
  ASSERT_TRUE(fetched.ok());
  EXPECT_EQ(fetched->file->data, "now here");
}

TEST_F(CachingVideoContentServiceTest, InvalidNamesPassTheInnerError) {
  auto cache = MakeCache();
  EXPECT_TRUE(absl::IsInvalidArgument(cache->Fetch(kVid1, "../x").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(cache->Fetch("..", "x.m4s").status()));
}

TEST_F(CachingVideoContentServiceTest, LargeFilesAndOriginalAreStreamedNotCached) {
  Write("big.m4s", TestBytes(3000, 2));
  Write("original", TestBytes(100, 3));
  ContentCacheOptions options;
  options.max_file_bytes = 2000;
  auto cache = MakeCache(options);
  for (const char* name : {"big.m4s", "original"}) {
    auto fetched = cache->Fetch(kVid1, name);
    ASSERT_TRUE(fetched.ok()) << fetched.status();
    EXPECT_EQ(fetched->file, nullptr) << name;
    ASSERT_NE(fetched->reader, nullptr) << name;
    std::string read(fetched->info.size, '\0');
    size_t got = 0;
    while (got < read.size()) {
      auto n = fetched->reader->Read(std::span(read.data() + got, read.size() - got));
      ASSERT_TRUE(n.ok() && *n > 0);
      got += *n;
    }
    EXPECT_EQ(read, *ReadContent(*local_, kVid1, name)) << name;
    EXPECT_EQ(cache->Lookup(kVid1, name), nullptr) << name;
  }
  EXPECT_EQ(cache->stats().entries, 0u);
  EXPECT_EQ(cache->stats().uncacheable, 2u);
}

TEST_F(CachingVideoContentServiceTest, EvictsLeastRecentlyUsedByBytes) {
  for (int i = 0; i < 4; ++i) Write("s" + std::to_string(i) + ".m4s", TestBytes(1000, i));
  ContentCacheOptions options;
  options.capacity_bytes = 3000;
  auto cache = MakeCache(options);
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(cache->Fetch(kVid1, "s" + std::to_string(i) + ".m4s").ok());
  ASSERT_NE(cache->Lookup(kVid1, "s0.m4s"), nullptr);  // s1 is now the oldest
  ASSERT_TRUE(cache->Fetch(kVid1, "s3.m4s").ok());
  EXPECT_NE(cache->Lookup(kVid1, "s0.m4s"), nullptr);
  EXPECT_EQ(cache->Lookup(kVid1, "s1.m4s"), nullptr);
  EXPECT_NE(cache->Lookup(kVid1, "s2.m4s"), nullptr);
  EXPECT_NE(cache->Lookup(kVid1, "s3.m4s"), nullptr);
  ContentCacheStats stats = cache->stats();
  EXPECT_EQ(stats.bytes, 3000u);
  EXPECT_EQ(stats.entries, 3u);
  EXPECT_EQ(stats.evictions, 1u);
}

TEST_F(CachingVideoContentServiceTest, ZeroCapacityDisablesCaching) {
  Write("a.m4s", "abc");
  ContentCacheOptions options;
  options.capacity_bytes = 0;
  auto cache = MakeCache(options);
  for (int i = 0; i < 2; ++i) {
    auto fetched = cache->Fetch(kVid1, "a.m4s");
    ASSERT_TRUE(fetched.ok());
    EXPECT_EQ(fetched->file, nullptr);
    ASSERT_NE(fetched->reader, nullptr);
  }
  EXPECT_EQ(counting_->opens.load(), 2);
  EXPECT_EQ(cache->Lookup(kVid1, "a.m4s"), nullptr);
}

TEST_F(CachingVideoContentServiceTest, MutableNamesAreRevalidatedAfterTheTtl) {
  Write("manifest.mpd", "v1");
  Write("chunk-0-00001.m4s", "seg");
  ContentCacheOptions options;
  options.mutable_ttl = 2s;
  auto cache = MakeCache(options);
  ASSERT_TRUE(cache->Fetch(kVid1, "manifest.mpd").ok());
  ASSERT_TRUE(cache->Fetch(kVid1, "chunk-0-00001.m4s").ok());
  now_ += 1s;
  EXPECT_NE(cache->Lookup(kVid1, "manifest.mpd"), nullptr);
  now_ += 1s;
  // Stale: a lookup misses; a fetch asks Stat, and unchanged costs no read.
  EXPECT_EQ(cache->Lookup(kVid1, "manifest.mpd"), nullptr);
  EXPECT_NE(cache->Lookup(kVid1, "chunk-0-00001.m4s"), nullptr);
  auto fetched = cache->Fetch(kVid1, "manifest.mpd");
  ASSERT_TRUE(fetched.ok());
  EXPECT_EQ(fetched->file->data, "v1");
  EXPECT_EQ(counting_->stats.load(), 1);
  EXPECT_EQ(counting_->opens.load(), 2);
  EXPECT_EQ(cache->stats().revalidations, 1u);
  EXPECT_NE(cache->Lookup(kVid1, "manifest.mpd"), nullptr);

  // Changed by someone else (written beside the cache): seen after the TTL.
  Write("manifest.mpd", "version 2");
  EXPECT_EQ(cache->Fetch(kVid1, "manifest.mpd")->file->data, "v1");
  now_ += 3s;
  EXPECT_EQ(cache->Fetch(kVid1, "manifest.mpd")->file->data, "version 2");
  EXPECT_EQ(counting_->opens.load(), 3);

  // Deleted by someone else: NOT_FOUND after the TTL, and the entry dropped.
  ASSERT_TRUE(local_->Delete(kVid1, "manifest.mpd").ok());
  now_ += 3s;
  EXPECT_TRUE(absl::IsNotFound(cache->Fetch(kVid1, "manifest.mpd").status()));
  EXPECT_EQ(cache->stats().entries, 1u);
}

TEST_F(CachingVideoContentServiceTest, StaleEntriesAreServedWhileOneRefreshRuns) {
  Write("manifest.mpd", "v1");
  ContentCacheOptions options;
  options.mutable_ttl = 2s;
  options.serve_stale_for = 10s;
  auto cache = MakeCache(options);
  ASSERT_TRUE(cache->Fetch(kVid1, "manifest.mpd").ok());
  // Fresh: served, nothing to refresh.
  CachingVideoContentService::Hit hit = cache->LookupOrStale(kVid1, "manifest.mpd");
  ASSERT_NE(hit.file, nullptr);
  EXPECT_FALSE(hit.refresh);

  Write("manifest.mpd", "version 2");  // changed elsewhere
  now_ += 3s;
  // Stale: still served, and exactly one caller is asked to refresh it.
  hit = cache->LookupOrStale(kVid1, "manifest.mpd");
  ASSERT_NE(hit.file, nullptr);
  EXPECT_EQ(hit.file->data, "v1");
  EXPECT_TRUE(hit.refresh);
  hit = cache->LookupOrStale(kVid1, "manifest.mpd");
  ASSERT_NE(hit.file, nullptr);
  EXPECT_FALSE(hit.refresh);
  EXPECT_EQ(counting_->opens.load(), 1);  // lookups do no I/O
  // The refresh reads the new version; later lookups get it, fresh.
  ASSERT_TRUE(cache->Fetch(kVid1, "manifest.mpd").ok());
  hit = cache->LookupOrStale(kVid1, "manifest.mpd");
  ASSERT_NE(hit.file, nullptr);
  EXPECT_EQ(hit.file->data, "version 2");
  EXPECT_FALSE(hit.refresh);

  // A refresh that never came (the store was away) is asked for again later.
  now_ += 3s;
  EXPECT_TRUE(cache->LookupOrStale(kVid1, "manifest.mpd").refresh);
  EXPECT_FALSE(cache->LookupOrStale(kVid1, "manifest.mpd").refresh);
  now_ += 2s;
  EXPECT_TRUE(cache->LookupOrStale(kVid1, "manifest.mpd").refresh);
  // Too stale to serve: a miss.
  now_ += 9s;
  EXPECT_EQ(cache->LookupOrStale(kVid1, "manifest.mpd").file, nullptr);
}

TEST_F(CachingVideoContentServiceTest, HitsARepeatingThreadServesItselfKeepTheCachesContract) {
  // LookupOrStale() answers a thread's repeated hits from that thread's own
  // memory of them; what it answers must not differ from the shared map's.
  for (int i = 0; i < 3; ++i) Write("s" + std::to_string(i) + ".m4s", TestBytes(1000, i));
  Write("manifest.mpd", "v1");
  ContentCacheOptions options;
  options.capacity_bytes = 2002;  // two segments and the manifest
  options.mutable_ttl = 2s;
  options.serve_stale_for = 10s;
  auto cache = MakeCache(options);
  ASSERT_TRUE(cache->Fetch(kVid1, "s0.m4s").ok());
  ASSERT_TRUE(cache->Fetch(kVid1, "manifest.mpd").ok());
  // Every hit is counted, whichever thread's memory answered it.
  const auto first = cache->LookupOrStale(kVid1, "s0.m4s").file;
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(cache->LookupOrStale(kVid1, "s0.m4s").file, first);
  EXPECT_EQ(cache->LookupOrStale(kVid1, "s0.m4s").file, first);
  std::thread([&] { EXPECT_EQ(cache->LookupOrStale(kVid1, "s0.m4s").file, first); }).join();
  EXPECT_EQ(cache->stats().hits, 4u);

  // A write through the cache is seen at once.
  ASSERT_TRUE(WriteContent(*cache, kVid1, "s0.m4s", TestBytes(1000, 9)).ok());
  EXPECT_EQ(cache->LookupOrStale(kVid1, "s0.m4s").file, nullptr);
  ASSERT_TRUE(cache->Fetch(kVid1, "s0.m4s").ok());
  EXPECT_EQ(cache->LookupOrStale(kVid1, "s0.m4s").file->data, TestBytes(1000, 9));

  // A mutable file past its TTL is stale, with one refresh asked for, even
  // when the thread has just been answering it.
  EXPECT_EQ(cache->LookupOrStale(kVid1, "manifest.mpd").file->data, "v1");
  EXPECT_FALSE(cache->LookupOrStale(kVid1, "manifest.mpd").refresh);
  now_ += 3s;
  EXPECT_TRUE(cache->LookupOrStale(kVid1, "manifest.mpd").refresh);
  EXPECT_FALSE(cache->LookupOrStale(kVid1, "manifest.mpd").refresh);

  // Recency reaches the LRU within a second of use. s0 is used first, so it
  // is the least recent; then used again, from the thread's memory, which
  // tells the LRU at most once a second: a second later it does, so s1, not
  // s0, makes room for s2.
  ASSERT_TRUE(cache->Fetch(kVid1, "manifest.mpd").ok());  // fresh again
  ASSERT_TRUE(cache->Fetch(kVid1, "s1.m4s").ok());
  EXPECT_NE(cache->LookupOrStale(kVid1, "s0.m4s").file, nullptr);
  EXPECT_NE(cache->LookupOrStale(kVid1, "s1.m4s").file, nullptr);
  EXPECT_NE(cache->LookupOrStale(kVid1, "manifest.mpd").file, nullptr);
  EXPECT_NE(cache->LookupOrStale(kVid1, "s0.m4s").file, nullptr);
  now_ += 1s;
  EXPECT_NE(cache->LookupOrStale(kVid1, "s0.m4s").file, nullptr);
  EXPECT_NE(cache->LookupOrStale(kVid1, "manifest.mpd").file, nullptr);
  ASSERT_TRUE(cache->Fetch(kVid1, "s2.m4s").ok());
  EXPECT_NE(cache->Lookup(kVid1, "s0.m4s"), nullptr);
  EXPECT_EQ(cache->Lookup(kVid1, "s1.m4s"), nullptr);
  EXPECT_NE(cache->Lookup(kVid1, "s2.m4s"), nullptr);
}

TEST_F(CachingVideoContentServiceTest, SegmentsDeletedElsewhereGoAfterTheLongTtl) {
  Write("chunk-0-00001.m4s", "seg");
  ContentCacheOptions options;
  options.mutable_ttl = 2s;
  options.immutable_ttl = 60s;
  auto cache = MakeCache(options);
  ASSERT_TRUE(cache->Fetch(kVid1, "chunk-0-00001.m4s").ok());
  now_ += 59s;
  EXPECT_NE(cache->Lookup(kVid1, "chunk-0-00001.m4s"), nullptr);
  ASSERT_TRUE(local_->DeleteVideo(kVid1).ok());  // another server deleted the video
  EXPECT_NE(cache->Lookup(kVid1, "chunk-0-00001.m4s"), nullptr);
  now_ += 1s;
  EXPECT_EQ(cache->Lookup(kVid1, "chunk-0-00001.m4s"), nullptr);
  EXPECT_TRUE(absl::IsNotFound(cache->Fetch(kVid1, "chunk-0-00001.m4s").status()));
  EXPECT_EQ(cache->stats().entries, 0u);
}

TEST_F(CachingVideoContentServiceTest, OwnWritesAndDeletesInvalidateAtOnce) {
  Write("chunk-0-00001.m4s", "old");
  Write("manifest.mpd", "m");
  Write("thumbnail.jpg", "t", kVid2);
  auto cache = MakeCache();
  ASSERT_TRUE(cache->Fetch(kVid1, "chunk-0-00001.m4s").ok());
  ASSERT_TRUE(cache->Fetch(kVid1, "manifest.mpd").ok());
  ASSERT_TRUE(cache->Fetch(kVid2, "thumbnail.jpg").ok());

  ASSERT_TRUE(WriteContent(*cache, kVid1, "chunk-0-00001.m4s", "new").ok());
  EXPECT_EQ(cache->Lookup(kVid1, "chunk-0-00001.m4s"), nullptr);
  EXPECT_EQ(cache->Fetch(kVid1, "chunk-0-00001.m4s")->file->data, "new");

  ASSERT_TRUE(cache->Delete(kVid1, "manifest.mpd").ok());
  EXPECT_EQ(cache->Lookup(kVid1, "manifest.mpd"), nullptr);
  EXPECT_TRUE(absl::IsNotFound(cache->Fetch(kVid1, "manifest.mpd").status()));

  ASSERT_TRUE(cache->DeleteVideo(kVid1).ok());
  EXPECT_EQ(cache->Lookup(kVid1, "chunk-0-00001.m4s"), nullptr);
  EXPECT_NE(cache->Lookup(kVid2, "thumbnail.jpg"), nullptr);
  EXPECT_EQ(cache->stats().entries, 1u);
  EXPECT_EQ(cache->stats().bytes, 1u);
}

TEST_F(CachingVideoContentServiceTest, ReadsThroughTheServiceInterfaceUseTheCache) {
  const std::string data = TestBytes(4000, 7);
  Write("chunk-1-00002.m4s", data);
  auto cache = MakeCache();
  ASSERT_TRUE(cache->Fetch(kVid1, "chunk-1-00002.m4s").ok());
  const int opens = counting_->opens.load();
  auto ranged = ReadContent(*cache, kVid1, "chunk-1-00002.m4s", 1000, 500);
  ASSERT_TRUE(ranged.ok());
  EXPECT_EQ(*ranged, data.substr(1000, 500));
  auto info = cache->Stat(kVid1, "chunk-1-00002.m4s");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->size, 4000u);
  EXPECT_TRUE(absl::IsOutOfRange(cache->OpenReader(kVid1, "chunk-1-00002.m4s", 4001).status()));
  EXPECT_EQ(counting_->opens.load(), opens);
  EXPECT_EQ(counting_->stats.load(), 0);
}

TEST_F(CachingVideoContentServiceTest, ConcurrentMissesShareOneRead) {
  const std::string data = TestBytes(10000, 9);
  Write("chunk-0-00003.m4s", data);
  auto cache = MakeCache();
  Notification gate;
  counting_->gate = &gate;
  std::vector<std::future<absl::StatusOr<CachingVideoContentService::Fetched>>> fetches;
  fetches.push_back(
      std::async(std::launch::async, [&] { return cache->Fetch(kVid1, "chunk-0-00003.m4s"); }));
  counting_->entered.WaitForNotification();  // the leader is reading
  for (int i = 0; i < 7; ++i) {
    fetches.push_back(
        std::async(std::launch::async, [&] { return cache->Fetch(kVid1, "chunk-0-00003.m4s"); }));
  }
  gate.Notify();
  for (auto& f : fetches) {
    auto fetched = f.get();
    ASSERT_TRUE(fetched.ok()) << fetched.status();
    ASSERT_NE(fetched->file, nullptr);
    EXPECT_EQ(fetched->file->data, data);
  }
  EXPECT_EQ(counting_->opens.load(), 1);
}

TEST_F(CachingVideoContentServiceTest, AWriteDuringAFillKeepsTheOldBytesOutOfTheCache) {
  Write("manifest.mpd", "old");
  auto cache = MakeCache();
  Notification gate;
  counting_->gate = &gate;
  auto fill = std::async(std::launch::async, [&] { return cache->Fetch(kVid1, "manifest.mpd"); });
  counting_->entered.WaitForNotification();
  // The fill has not opened the file yet; replace it through the cache and
  // let the fill go on (it reads the new bytes here, but must not cache
  // whatever it read, since it began before the write).
  counting_->gate = nullptr;
  ASSERT_TRUE(WriteContent(*cache, kVid1, "manifest.mpd", "new").ok());
  gate.Notify();
  ASSERT_TRUE(fill.get().ok());
  EXPECT_EQ(cache->Lookup(kVid1, "manifest.mpd"), nullptr);
  EXPECT_EQ(cache->stats().invalidations, 0u);
  EXPECT_EQ(cache->Fetch(kVid1, "manifest.mpd")->file->data, "new");
}

}  // namespace
}  // namespace streamgrid
