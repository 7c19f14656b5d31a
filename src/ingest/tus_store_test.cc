#include "ingest/tus_store.h"

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace streamgrid::ingest {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class TusStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "tus-store-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override { fs::remove_all(root_); }

  TusStoreOptions Options() {
    return {.dir = root_ / "tus",
            .max_length = 1000,
            .expiry = std::chrono::hours(1),
            .max_uploads = 4,
            .now_ms = [this] { return now_ms_.load(); }};
  }

  static std::string ReadAll(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  static absl::Status Write(TusStore& store, const std::string& id, uint64_t offset,
                            std::string_view bytes) {
    auto write = store.BeginWrite(id, offset);
    if (!write.ok()) return write.status();
    if (absl::Status s = (*write)->Append(std::span(bytes.data(), bytes.size())); !s.ok()) return s;
    return (*write)->Sync().status();
  }

  fs::path root_;
  std::atomic<int64_t> now_ms_{1'700'000'000'000};
};

TEST_F(TusStoreTest, CreateWriteInPiecesAndRead) {
  TusStore store(Options());
  ASSERT_TRUE(store.Open().ok());
  EXPECT_FALSE(fs::exists(root_ / "tus")) << "made only when needed";
  auto created = store.Create(10, "clip.mp4", "clip.mp4");
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->offset, 0u);
  EXPECT_EQ(created->expires_at_ms, now_ms_ + 3'600'000);

  ASSERT_TRUE(Write(store, created->id, 0, "01234").ok());
  EXPECT_EQ(store.Get(created->id)->offset, 5u);
  ASSERT_TRUE(Write(store, created->id, 5, "56789").ok());
  auto info = store.Get(created->id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->offset, 10u);
  EXPECT_EQ(info->filename, "clip.mp4");
  EXPECT_EQ(ReadAll(root_ / "tus" / (created->id + ".part")), "0123456789");
}

TEST_F(TusStoreTest, WrongOffsetIsAConflictNamingTheRightOne) {
  TusStore store(Options());
  ASSERT_TRUE(store.Open().ok());
  auto created = store.Create(10, "a", "a");
  ASSERT_TRUE(Write(store, created->id, 0, "abc").ok());
  for (uint64_t offset : {0u, 2u, 4u, 10u}) {
    auto write = store.BeginWrite(created->id, offset);
    EXPECT_TRUE(absl::IsFailedPrecondition(write.status())) << offset;
    EXPECT_THAT(write.status().message(), HasSubstr("offset 3"));
  }
}

TEST_F(TusStoreTest, OneWriterAtATime) {
  TusStore store(Options());
  ASSERT_TRUE(store.Open().ok());
  auto created = store.Create(10, "a", "a");
  auto first = store.BeginWrite(created->id, 0);
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(absl::IsAborted(store.BeginWrite(created->id, 0).status()));
  EXPECT_TRUE(absl::IsAborted(store.Delete(created->id)));
  first->reset();
  EXPECT_TRUE(store.BeginWrite(created->id, 0).ok());
}

TEST_F(TusStoreTest, BytesPastTheLengthAreRefusedAndRolledBack) {
  TusStore store(Options());
  ASSERT_TRUE(store.Open().ok());
  auto created = store.Create(6, "a", "a");
  auto write = store.BeginWrite(created->id, 0);
  ASSERT_TRUE(write.ok());
  ASSERT_TRUE((*write)->Append(std::span("abcd", 4)).ok());
  absl::Status over = (*write)->Append(std::span("efg", 3));
  EXPECT_TRUE(absl::IsOutOfRange(over)) << over;
  ASSERT_TRUE((*write)->Rollback().ok());
  ASSERT_TRUE((*write)->Sync().ok());
  write->reset();
  EXPECT_EQ(store.Get(created->id)->offset, 0u);
  EXPECT_EQ(ReadAll(root_ / "tus" / (created->id + ".part")), "");
}

TEST_F(TusStoreTest, UnsyncedBytesAreDroppedByTheNextWriter) {
  TusStore store(Options());
  ASSERT_TRUE(store.Open().ok());
  auto created = store.Create(10, "a", "a");
  ASSERT_TRUE(Write(store, created->id, 0, "abc").ok());
  {
    auto write = store.BeginWrite(created->id, 3);
    ASSERT_TRUE(write.ok());
    ASSERT_TRUE((*write)->Append(std::span("xyz", 3)).ok());
    // Destroyed without Sync(): never acknowledged.
  }
  EXPECT_EQ(store.Get(created->id)->offset, 3u);
  ASSERT_TRUE(Write(store, created->id, 3, "defghij").ok());
  EXPECT_EQ(ReadAll(root_ / "tus" / (created->id + ".part")), "abcdefghij");
}

TEST_F(TusStoreTest, ARestartResumesAtTheDurableSize) {
  std::string id;
  {
    TusStore store(Options());
    ASSERT_TRUE(store.Open().ok());
    auto created = store.Create(10, "clip.webm", "My clip");
    id = created->id;
    ASSERT_TRUE(Write(store, id, 0, "hello").ok());
  }
  // Leftovers that belong to no upload go.
  std::ofstream(root_ / "tus" / "0123456789abcdef0123456789abcdef.part") << "orphan";
  std::ofstream(root_ / "tus" / (id + ".tmp")) << "{";
  std::ofstream(root_ / "tus" / "junk") << "x";

  TusStore again(Options());
  ASSERT_TRUE(again.Open().ok());
  auto info = again.Get(id);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->offset, 5u);
  EXPECT_EQ(info->length, 10u);
  EXPECT_EQ(info->filename, "clip.webm");
  EXPECT_EQ(info->title, "My clip");
  EXPECT_GT(info->expires_at_ms, 0);
  ASSERT_TRUE(Write(again, id, 5, "world").ok());
  EXPECT_EQ(ReadAll(root_ / "tus" / (id + ".part")), "helloworld");
  EXPECT_FALSE(fs::exists(root_ / "tus" / "0123456789abcdef0123456789abcdef.part"));
  EXPECT_FALSE(fs::exists(root_ / "tus" / (id + ".tmp")));
  EXPECT_FALSE(fs::exists(root_ / "tus" / "junk"));
}

TEST_F(TusStoreTest, AcceptedUploadsKeepTheirVideoIdButNotTheirBytes) {
  std::string id;
  {
    TusStore store(Options());
    ASSERT_TRUE(store.Open().ok());
    auto created = store.Create(3, "a", "a");
    id = created->id;
    auto write = store.BeginWrite(id, 0);
    ASSERT_TRUE((*write)->Append(std::span("abc", 3)).ok());
    ASSERT_TRUE((*write)->Sync().ok());
    ASSERT_TRUE((*write)->MarkAccepted("video123").ok());
    write->reset();
    EXPECT_FALSE(fs::exists(root_ / "tus" / (id + ".part")));
    EXPECT_EQ(store.Get(id)->video_id, "video123");
  }
  TusStore again(Options());
  ASSERT_TRUE(again.Open().ok());
  auto info = again.Get(id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->video_id, "video123");
  EXPECT_EQ(info->offset, 3u);
  // A repeated final request finds it at its end.
  auto write = again.BeginWrite(id, 3);
  ASSERT_TRUE(write.ok());
  EXPECT_EQ((*write)->info().video_id, "video123");
}

TEST_F(TusStoreTest, DiscardAndDeleteRemoveEverything) {
  TusStore store(Options());
  ASSERT_TRUE(store.Open().ok());
  auto a = store.Create(3, "a", "a");
  auto b = store.Create(3, "b", "b");
  ASSERT_TRUE(Write(store, a->id, 0, "ab").ok());
  ASSERT_TRUE(store.Delete(a->id).ok());
  EXPECT_TRUE(absl::IsNotFound(store.Get(a->id).status()));
  EXPECT_TRUE(absl::IsNotFound(store.Delete(a->id)));
  {
    auto write = store.BeginWrite(b->id, 0);
    (*write)->Discard();
  }
  EXPECT_TRUE(absl::IsNotFound(store.Get(b->id).status()));
  EXPECT_TRUE(fs::is_empty(root_ / "tus"));
}

TEST_F(TusStoreTest, LimitsOnLengthAndCount) {
  TusStore store(Options());
  ASSERT_TRUE(store.Open().ok());
  EXPECT_TRUE(absl::IsOutOfRange(store.Create(1001, "a", "a").status()));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(store.Create(1, "a", "a").ok());
  EXPECT_TRUE(absl::IsUnavailable(store.Create(1, "a", "a").status()));
}

TEST_F(TusStoreTest, UnknownAndMalformedIdsAreNotFound) {
  TusStore store(Options());
  ASSERT_TRUE(store.Open().ok());
  EXPECT_TRUE(absl::IsNotFound(store.Get("0123456789abcdef0123456789abcdef").status()));
  EXPECT_TRUE(absl::IsNotFound(store.Get("../x").status()));
  EXPECT_TRUE(absl::IsNotFound(store.BeginWrite("../x", 0).status()));
}

TEST_F(TusStoreTest, ExpiryCountsFromTheLastWrite) {
  TusStore store(Options());
  ASSERT_TRUE(store.Open().ok());
  auto idle = store.Create(10, "a", "a");
  auto active = store.Create(10, "b", "b");
  auto busy = store.Create(10, "c", "c");
  now_ms_ += 3'000'000;
  ASSERT_TRUE(Write(store, active->id, 0, "abc").ok());  // restarts its hour
  auto writing = store.BeginWrite(busy->id, 0);
  ASSERT_TRUE(writing.ok());
  now_ms_ += 700'000;  // idle and busy are past their hour, active is not

  EXPECT_TRUE(absl::IsNotFound(store.Get(idle->id).status()));  // even before the sweep
  EXPECT_EQ(store.SweepExpired(), 1);                           // idle; busy is being written
  EXPECT_FALSE(fs::exists(root_ / "tus" / (idle->id + ".part")));
  EXPECT_FALSE(fs::exists(root_ / "tus" / (idle->id + ".json")));
  EXPECT_TRUE(store.Get(active->id).ok());
  writing->reset();
  EXPECT_EQ(store.SweepExpired(), 1);  // now busy goes too
  now_ms_ += 3'600'000;
  EXPECT_EQ(store.SweepExpired(), 1);
  EXPECT_TRUE(fs::is_empty(root_ / "tus"));
}

TEST_F(TusStoreTest, TheSweepRunsInTheBackgroundAndStopsPromptly) {
  TusStoreOptions options = Options();
  options.sweep_interval = std::chrono::milliseconds(20);
  TusStore store(options);
  ASSERT_TRUE(store.Open().ok());
  auto created = store.Create(10, "a", "a");
  store.StartSweep();
  now_ms_ += 4'000'000;
  const fs::path info = root_ / "tus" / (created->id + ".json");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (fs::exists(info) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(fs::exists(info));
  // Joins although the interval would be long.
  store.Stop();
}

}  // namespace
}  // namespace streamgrid::ingest
