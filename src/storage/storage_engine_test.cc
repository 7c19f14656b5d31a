#include "storage/storage_engine.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/ids.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ring/placement.h"
#include "storage/sha256.h"
#include "storage/test_util.h"

namespace streamgrid::storage {
namespace {

namespace fs = std::filesystem;

using ::testing::IsEmpty;
using testing::Pattern;
using ::testing::SizeIs;
using testing::TempDir;
using testing::TempFiles;

constexpr size_t kChunk = 256 * 1024;

void WriteRaw(const fs::path& path, const std::string& data) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

class StorageEngineTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    engine_.reset();
    auto opened = StorageEngine::Open(dir_.path() / "data");
    ASSERT_TRUE(opened.ok()) << opened.status();
    engine_ = *std::move(opened);
  }

  fs::path DataDir() const { return dir_.path() / "data"; }

  // Uploads `data` in chunks; commits with `sha256` or the data's own digest.
  absl::StatusOr<StoredFile> Put(const std::string& video_id, const std::string& name,
                                 const std::string& data,
                                 std::optional<std::string> sha256 = std::nullopt,
                                 std::optional<uint64_t> size = std::nullopt) {
    auto upload = engine_->StartUpload(video_id, name, size);
    if (!upload.ok()) return upload.status();
    for (size_t at = 0; at < data.size(); at += kChunk) {
      std::string_view chunk = std::string_view(data).substr(at, kChunk);
      if (absl::Status s = (*upload)->Append(chunk); !s.ok()) return s;
    }
    return (*upload)->Commit(sha256.value_or(Sha256::HexOf(data)));
  }

  absl::StatusOr<std::string> Read(const std::string& video_id, const std::string& name,
                                   uint64_t offset = 0,
                                   std::optional<uint64_t> length = std::nullopt) {
    auto reader = engine_->OpenReader(video_id, name, offset, length);
    if (!reader.ok()) return reader.status();
    std::string out, buffer(100 * 1024, '\0');
    while (true) {
      absl::StatusOr<size_t> n = (*reader)->Read(buffer);
      if (!n.ok()) return n.status();
      if (*n == 0) return out;
      out.append(buffer.data(), *n);
    }
  }

  std::vector<StoredFile> ListAll(const std::string& video_id, size_t page_size, int* pages) {
    std::vector<StoredFile> all;
    std::string token;
    *pages = 0;
    do {
      auto page = engine_->List(video_id, token, page_size);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      ++*pages;
      EXPECT_LE(page->files.size(), page_size);
      all.insert(all.end(), page->files.begin(), page->files.end());
      token = page->next_page_token;
    } while (!token.empty());
    return all;
  }

  // Every page of the listing `options` describes (its page_token ignored),
  // checking each page's bounds. Counts the pages, and the empty ones that
  // still carried a token.
  std::vector<StoredFile> ListAll(ListOptions options, size_t scan_limit, int* pages,
                                  int* empty_pages = nullptr) {
    std::vector<StoredFile> all;
    options.page_token.clear();
    *pages = 0;
    if (empty_pages) *empty_pages = 0;
    const size_t page_size =
        options.page_size == 0 ? StorageEngine::kMaxPageSize : options.page_size;
    do {
      auto page = engine_->List(options, scan_limit);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      ++*pages;
      EXPECT_LE(page->files.size(), std::min(page_size, scan_limit));
      if (page->files.empty() && !page->next_page_token.empty() && empty_pages) ++*empty_pages;
      all.insert(all.end(), page->files.begin(), page->files.end());
      options.page_token = page->next_page_token;
      EXPECT_LE(*pages, 100000) << "listing does not end";
      if (*pages > 100000) break;
    } while (!options.page_token.empty());
    return all;
  }

  // Writes `per_video` files into each of `videos` new videos behind the
  // engine's back (durable uploads of many files would take seconds of fsyncs)
  // and reopens as an upgrade of a store of the first layout; returns their (video_id, name) keys
  // in listing order.
  std::vector<std::pair<std::string, std::string>> WriteMany(int videos, int per_video) {
    std::vector<std::pair<std::string, std::string>> keys;
    engine_.reset();
    for (int v = 0; v < videos; ++v) {
      const std::string video = NewVideoId();
      for (int i = 0; i < per_video; ++i) {
        const std::string name = "chunk-" + std::to_string(i) + ".m4s";
        WriteRaw(DataDir() / "content" / video / name, name);
        keys.emplace_back(video, name);
      }
    }
    // Without its format marker the store is taken for one of the first
    // layout, whose records Open() recomputes (a fast way to get many files).
    fs::remove(DataDir() / "FORMAT");
    Reopen();
    std::sort(keys.begin(), keys.end());
    return keys;
  }

  TempDir dir_;
  std::unique_ptr<StorageEngine> engine_;
};

using Keys = std::vector<std::pair<std::string, std::string>>;

Keys KeysOf(const std::vector<StoredFile>& files) {
  Keys keys;
  for (const StoredFile& file : files) keys.emplace_back(file.video_id, file.name);
  return keys;
}

// The placement's partition of a key, at the placement's own 12 bits.
uint32_t RingPartition(const std::pair<std::string, std::string>& key) {
  return Placement::PartitionOfKey(key.first + "/" + key.second);
}

// The most consecutive `keys` outside `wanted` between two inside it.
size_t LongestGap(const Keys& keys, const std::set<uint32_t>& wanted) {
  size_t longest = 0, run = 0;
  bool seen = false;
  for (const auto& key : keys) {
    if (!wanted.contains(RingPartition(key))) {
      ++run;
      continue;
    }
    if (seen) longest = std::max(longest, run);
    seen = true;
    run = 0;
  }
  return longest;
}

TEST_F(StorageEngineTest, FilesSurviveReopenWithTheirChecksums) {
  const std::string video = NewVideoId();
  const std::string big = Pattern(3 * 1024 * 1024 + 17, 1);
  const std::string small = "#EXTM3U\n";
  auto put_big = Put(video, "original", big, std::nullopt, big.size());
  ASSERT_TRUE(put_big.ok()) << put_big.status();
  EXPECT_EQ(put_big->size, big.size());
  EXPECT_EQ(put_big->sha256, Sha256::HexOf(big));
  ASSERT_TRUE(Put(video, "master.m3u8", small).ok());
  ASSERT_TRUE(Put(video, "empty", "").ok());

  Reopen();
  int pages = 0;
  std::vector<StoredFile> listed = ListAll(video, 10, &pages);
  ASSERT_THAT(listed, SizeIs(3));
  EXPECT_EQ(listed[0].name, "empty");
  EXPECT_EQ(listed[0].sha256, Sha256::HexOf(""));
  EXPECT_EQ(listed[1].name, "master.m3u8");
  EXPECT_EQ(listed[1].sha256, Sha256::HexOf(small));
  EXPECT_EQ(listed[2], *put_big);

  auto stat = engine_->Stat(video, "original");
  ASSERT_TRUE(stat.ok()) << stat.status();
  EXPECT_EQ(*stat, *put_big);
  EXPECT_EQ(Read(video, "original").value(), big);
  auto reader = engine_->OpenReader(video, "original", 10, 5);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->file(), *put_big);
  auto usage = engine_->Usage();
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->files, 3u);
  EXPECT_EQ(usage->bytes_used, big.size() + small.size());
  EXPECT_GT(usage->total_bytes, 0u);
}

TEST_F(StorageEngineTest, RangesAreClippedAndCheckedLikeTheContentService) {
  const std::string video = NewVideoId();
  const std::string data = Pattern(1000, 2);
  ASSERT_TRUE(Put(video, "seg", data).ok());
  EXPECT_EQ(Read(video, "seg", 100, 50).value(), data.substr(100, 50));
  EXPECT_EQ(Read(video, "seg", 990, 50).value(), data.substr(990));
  EXPECT_EQ(Read(video, "seg", 1000).value(), "");
  EXPECT_EQ(Read(video, "seg", 1001).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Read(video, "nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(engine_->Stat(video, "nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(StorageEngineTest, BadIdsAndNamesAreInvalidArguments) {
  const std::string video = NewVideoId();
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"../../etc", "passwd"},
      {video, "../escape"},
      {video, ".hidden"},
      {video, "a/b"},
      {"", "x"},
      {video, ""},
      {"UPPERCASEID0000000000000000", "x"}};
  for (const auto& [id, name] : bad) {
    SCOPED_TRACE(id + "/" + name);
    EXPECT_EQ(engine_->StartUpload(id, name).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(engine_->OpenReader(id, name).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(engine_->Stat(id, name).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(engine_->Delete(id, name).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(engine_->DeleteVideo("..").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_->List("..", "").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_->List("", "garbage").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_->List("", video + "/../x").status().code(), absl::StatusCode::kInvalidArgument);
  // Nothing was created anywhere, inside the data directory or next to it.
  EXPECT_THAT(TempFiles(dir_.path()), IsEmpty());
  EXPECT_FALSE(fs::exists(dir_.path() / "escape"));
}

TEST_F(StorageEngineTest, ChecksumMismatchStoresNothing) {
  const std::string video = NewVideoId();
  const std::string data = Pattern(600 * 1024, 3);
  auto put = Put(video, "seg", data, Sha256::HexOf("something else"));
  EXPECT_EQ(put.status().code(), absl::StatusCode::kDataLoss) << put.status();
  EXPECT_EQ(engine_->Stat(video, "seg").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(TempFiles(DataDir()), IsEmpty());

  // A failed replacement leaves the earlier version in place.
  ASSERT_TRUE(Put(video, "seg", "v1").ok());
  EXPECT_EQ(Put(video, "seg", data, Sha256::HexOf("v1")).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(Read(video, "seg").value(), "v1");
  EXPECT_EQ(engine_->Stat(video, "seg")->sha256, Sha256::HexOf("v1"));
  EXPECT_EQ(engine_->Usage()->files, 1u);
  EXPECT_THAT(TempFiles(DataDir()), IsEmpty());

  EXPECT_EQ(Put(video, "bad", "x", "not-a-checksum").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_->Stat(video, "bad").status().code(), absl::StatusCode::kNotFound);
}

// The SHA-256 digests of `data`'s kChecksumBlockBytes blocks, as a sender
// before XXH3-128 computes them (block_checksum_test.cc covers both).
std::vector<Sha256::Digest> BlockDigests(const std::string& data) {
  std::vector<Sha256::Digest> blocks;
  for (size_t at = 0; at < data.size(); at += kChecksumBlockBytes) {
    Sha256 hasher;
    hasher.Update(std::string_view(data).substr(at, kChecksumBlockBytes));
    blocks.push_back(hasher.Finish());
  }
  return blocks;
}

TEST_F(StorageEngineTest, WithTheSendersBlockDigestsTheWholeFileIsNotHashedAgain) {
  const std::string video = NewVideoId();
  for (size_t size : {size_t{0}, size_t{1000}, size_t{kChecksumBlockBytes},
                      size_t{2 * kChecksumBlockBytes + 12345}}) {
    SCOPED_TRACE(size);
    const std::string data = Pattern(size, 11);
    // SHA-256 block digests, as a sender before XXH3-128 sends them.
    auto upload = engine_->StartUpload(video, "file", std::nullopt, /*sender_block_digests=*/true,
                                       BlockAlgorithm::kSha256);
    ASSERT_TRUE(upload.ok()) << upload.status();
    for (size_t at = 0; at < data.size(); at += kChunk) {
      ASSERT_TRUE((*upload)->Append(std::string_view(data).substr(at, kChunk)).ok());
    }
    auto stored = (*upload)->Commit(Sha256::HexOf(data), BlockDigests(data));
    ASSERT_TRUE(stored.ok()) << stored.status();
    EXPECT_EQ(stored->sha256, Sha256::HexOf(data));
    EXPECT_EQ(stored->size, size);
    // Read back through the recorded block checksums, and scrubbed whole.
    EXPECT_EQ(Read(video, "file").value(), data);
    auto scrubbed = engine_->ScrubFile(video, "file", [](uint64_t) { return true; });
    ASSERT_TRUE(scrubbed.ok()) << scrubbed.status();
    EXPECT_FALSE(scrubbed->damaged);
  }
}

TEST_F(StorageEngineTest, AWrongSenderBlockDigestFailsTheUploadAndLeavesNothing) {
  const std::string video = NewVideoId();
  const std::string data = Pattern(3 * kChecksumBlockBytes + 7, 12);
  const std::string sha = Sha256::HexOf(data);
  ASSERT_TRUE(Put(video, "kept", "earlier version").ok());
  auto attempt = [&](const std::string& name, std::string_view payload,
                     std::vector<Sha256::Digest> blocks, const std::string& expected) {
    auto upload = engine_->StartUpload(video, name, std::nullopt, true, BlockAlgorithm::kSha256);
    EXPECT_TRUE(upload.ok()) << upload.status();
    if (!upload.ok()) return upload.status();
    EXPECT_TRUE((*upload)->Append(payload).ok());
    return (*upload)->Commit(expected, blocks).status();
  };
  std::vector<Sha256::Digest> wrong = BlockDigests(data);
  wrong[2][0] ^= 1;
  std::vector<Sha256::Digest> short_list = BlockDigests(data);
  short_list.pop_back();
  // A damaged block in transit: the node's digest of it differs from the sender's.
  std::string damaged = data;
  damaged[kChecksumBlockBytes + 5] ^= 0x40;
  EXPECT_EQ(attempt("new", data, wrong, sha).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(attempt("new", data, short_list, sha).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(attempt("new", data, {}, sha).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(attempt("new", damaged, BlockDigests(data), sha).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(attempt("kept", damaged, BlockDigests(data), sha).code(), absl::StatusCode::kDataLoss);
  // One block: its digest is the whole file's, so a wrong whole digest shows.
  const std::string small = "one small block";
  EXPECT_EQ(attempt("new", small, BlockDigests(small), Sha256::HexOf("other")).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(engine_->Stat(video, "new").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Read(video, "kept").value(), "earlier version");
  EXPECT_EQ(engine_->Usage()->files, 1u);
  EXPECT_THAT(TempFiles(DataDir()), IsEmpty());
}

TEST_F(StorageEngineTest, SizeOtherThanAnnouncedStoresNothing) {
  const std::string video = NewVideoId();
  EXPECT_EQ(Put(video, "short", "abc", std::nullopt, 4).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(Put(video, "long", "abcde", std::nullopt, 4).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(engine_->StartUpload(video, "huge", uint64_t{1} << 62).status().code(),
            absl::StatusCode::kResourceExhausted);
  int pages = 0;
  EXPECT_THAT(ListAll(video, 10, &pages), IsEmpty());
  EXPECT_THAT(TempFiles(DataDir()), IsEmpty());
}

TEST_F(StorageEngineTest, AbandonedUploadLeavesNoTrace) {
  const std::string video = NewVideoId();
  {
    auto upload = engine_->StartUpload(video, "seg");
    ASSERT_TRUE(upload.ok());
    ASSERT_TRUE((*upload)->Append(Pattern(kChunk, 4)).ok());
    EXPECT_THAT(TempFiles(DataDir()), SizeIs(1));
  }
  EXPECT_THAT(TempFiles(DataDir()), IsEmpty());
  EXPECT_EQ(engine_->Stat(video, "seg").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(StorageEngineTest, ReopenRemovesTempFilesAndRecordsWithoutDataAreDamage) {
  const std::string video = NewVideoId();
  ASSERT_TRUE(Put(video, "keep", "kept").ok());
  ASSERT_TRUE(Put(video, "gone", "data removed behind the engine's back").ok());
  engine_.reset();
  // What a crash mid-upload leaves behind (temp files no record names).
  WriteRaw(DataDir() / "content" / video / ".tmp-up-seg.0123456789abcdef", "partial");
  WriteRaw(DataDir() / "content" / video / ".tmp-seg.0123456789abcdef", "partial");
  WriteRaw(DataDir() / "checksums" / video / ".tmp-seg.0123456789abcdef", "partial");
  fs::remove(DataDir() / "content" / video / "gone");
  Reopen();
  EXPECT_THAT(TempFiles(DataDir()), IsEmpty());
  EXPECT_EQ(Read(video, "keep").value(), "kept");
  // The record outlived its data: not a crash window, so damage.
  EXPECT_EQ(engine_->Stat(video, "gone").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(engine_->Stat(video, "gone").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(DataDir() / "checksums" / video / "gone"));
  EXPECT_EQ(engine_->Usage()->files, 1u);
}

TEST_F(StorageEngineTest, StoreOfTheFirstLayoutIsUpgradedAtOpen) {
  const std::string video = NewVideoId();
  ASSERT_TRUE(Put(video, "a", "first a").ok());
  ASSERT_TRUE(Put(video, "b", "first b").ok());
  const std::string big = Pattern(3 * kChecksumBlockBytes + 5, 7);
  ASSERT_TRUE(Put(video, "big", big).ok());
  ASSERT_TRUE(Put(video, "orphan", "its data goes").ok());
  engine_.reset();
  // The first layout renamed the data in before writing the record, so a
  // crash left the record missing (a) or describing the previous version (b);
  // its records had no block checksums (big).
  fs::remove(DataDir() / "FORMAT");
  fs::remove(DataDir() / "checksums" / video / "a");
  fs::path b = DataDir() / "content" / video / "b";
  WriteRaw(b.string() + ".new", "second b, longer");
  fs::rename(b.string() + ".new", b);
  WriteRaw(DataDir() / "checksums" / video / "big",
           "v1 " + Sha256::HexOf(big) + " 1 \"ignored\"\n");
  fs::remove(DataDir() / "content" / video / "orphan");
  Reopen();
  EXPECT_EQ(engine_->Stat(video, "a")->sha256, Sha256::HexOf("first a"));
  EXPECT_EQ(engine_->Stat(video, "b")->sha256, Sha256::HexOf("second b, longer"));
  EXPECT_EQ(Read(video, "big", kChecksumBlockBytes + 3, 10).value(),
            big.substr(kChecksumBlockBytes + 3, 10));
  EXPECT_EQ(engine_->Stat(video, "orphan").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(fs::exists(DataDir() / "checksums" / video / "a"));
  EXPECT_TRUE(fs::exists(DataDir() / "FORMAT"));
  EXPECT_EQ(engine_->Usage()->bytes_used, std::string("first a").size() + 16 + big.size());
}

TEST_F(StorageEngineTest, ReplacingAFileKeepsCountsRight) {
  const std::string video = NewVideoId();
  ASSERT_TRUE(Put(video, "seg", "12345").ok());
  auto second = Put(video, "seg", "123");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->sha256, Sha256::HexOf("123"));
  EXPECT_EQ(Read(video, "seg").value(), "123");
  auto usage = engine_->Usage();
  EXPECT_EQ(usage->files, 1u);
  EXPECT_EQ(usage->bytes_used, 3u);
}

TEST_F(StorageEngineTest, DeleteAndDeleteVideo) {
  const std::string video = NewVideoId();
  const std::string other = NewVideoId();
  ASSERT_TRUE(Put(video, "a", "aa").ok());
  ASSERT_TRUE(Put(video, "b", "bbb").ok());
  ASSERT_TRUE(Put(other, "c", "c").ok());

  EXPECT_TRUE(engine_->Delete(video, "a").ok());
  EXPECT_EQ(engine_->Delete(video, "a").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(engine_->Stat(video, "a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(engine_->Usage()->files, 2u);

  EXPECT_EQ(engine_->DeleteVideo(video).value(), 1u);
  EXPECT_EQ(engine_->DeleteVideo(video).value(), 0u);
  EXPECT_EQ(engine_->Stat(video, "b").status().code(), absl::StatusCode::kNotFound);
  auto usage = engine_->Usage();
  EXPECT_EQ(usage->files, 1u);
  EXPECT_EQ(usage->bytes_used, 1u);

  Reopen();
  int pages = 0;
  std::vector<StoredFile> all = ListAll("", 10, &pages);
  ASSERT_THAT(all, SizeIs(1));
  EXPECT_EQ(all[0].video_id, other);
  EXPECT_EQ(engine_->Usage()->files, 1u);
}

TEST_F(StorageEngineTest, ListsThousandsOfFilesInBoundedPages) {
  constexpr int kVideos = 5, kPerVideo = 500;
  std::set<std::pair<std::string, std::string>> expected;
  std::string first_video;
  // Written behind the engine's back (thousands of durable uploads would take
  // seconds of fsyncs), so reopening also checksums them all.
  engine_.reset();
  for (int v = 0; v < kVideos; ++v) {
    const std::string video = NewVideoId();
    if (v == 0) first_video = video;
    for (int i = 0; i < kPerVideo; ++i) {
      const std::string name = "chunk-" + std::to_string(i) + ".m4s";
      WriteRaw(DataDir() / "content" / video / name, name);
      expected.emplace(video, name);
    }
  }
  // Taken for a store of the first layout: Open() checksums them all.
  fs::remove(DataDir() / "FORMAT");
  Reopen();
  EXPECT_EQ(engine_->Usage()->files, expected.size());
  int pages = 0;
  std::vector<StoredFile> all = ListAll("", 1000, &pages);
  EXPECT_EQ(pages, 3);
  ASSERT_THAT(all, SizeIs(kVideos * kPerVideo));
  std::set<std::pair<std::string, std::string>> seen;
  for (size_t i = 0; i < all.size(); ++i) {
    seen.emplace(all[i].video_id, all[i].name);
    EXPECT_EQ(all[i].sha256, Sha256::HexOf(all[i].name));
    if (i > 0) {
      EXPECT_LT(std::tie(all[i - 1].video_id, all[i - 1].name),
                std::tie(all[i].video_id, all[i].name));
    }
  }
  EXPECT_EQ(seen, expected);

  std::vector<StoredFile> one = ListAll(first_video, 200, &pages);
  EXPECT_EQ(pages, 3);
  EXPECT_THAT(one, SizeIs(kPerVideo));
  // A page size of 0 or above the cap means the cap.
  auto page = engine_->List("", "", 0);
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(page->files, SizeIs(StorageEngine::kMaxPageSize));
  // A token is only good for the listing that made it.
  EXPECT_EQ(engine_->List(NewVideoId(), page->next_page_token).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(StorageEngineTest, FilteredListHasExactlyTheFilesOfThePartitions) {
  const Keys keys = WriteMany(3, 200);
  // Partitions of every fifth file, plus some that may hold nothing.
  std::set<uint32_t> wanted = {0, 1, 4095};
  for (size_t i = 0; i < keys.size(); i += 5) wanted.insert(RingPartition(keys[i]));
  Keys expected;
  for (const auto& key : keys) {
    if (wanted.contains(RingPartition(key))) expected.push_back(key);
  }
  ASSERT_GE(expected.size(), keys.size() / 5);
  ASSERT_LT(expected.size(), keys.size());

  ListOptions options{.partitions = {wanted.begin(), wanted.end()}, .partition_bits = 12};
  int pages = 0;
  std::vector<StoredFile> files = ListAll(options, StorageEngine::kDefaultListScanLimit, &pages);
  EXPECT_EQ(pages, 1);
  EXPECT_EQ(KeysOf(files), expected);
  for (const StoredFile& file : files) EXPECT_EQ(file.sha256, Sha256::HexOf(file.name));

  // Other widths agree with the placement's position too; repeats are harmless.
  for (int bits : {1, 5, 16}) {
    SCOPED_TRACE(bits);
    const uint32_t partition =
        static_cast<uint32_t>(Placement::KeyPosition(keys[7].first, keys[7].second) >> (64 - bits));
    Keys same;
    for (const auto& key : keys) {
      if (Placement::KeyPosition(key.first, key.second) >> (64 - bits) == partition) {
        same.push_back(key);
      }
    }
    ListOptions one{.partitions = {partition, partition}, .partition_bits = bits};
    EXPECT_EQ(KeysOf(ListAll(one, StorageEngine::kDefaultListScanLimit, &pages)), same);
  }

  // Only one video's files when it is given.
  ListOptions one_video = options;
  one_video.video_id = keys.back().first;
  Keys expected_one;
  for (const auto& key : expected) {
    if (key.first == one_video.video_id) expected_one.push_back(key);
  }
  EXPECT_EQ(KeysOf(ListAll(one_video, StorageEngine::kDefaultListScanLimit, &pages)), expected_one);
}

TEST_F(StorageEngineTest, FilteredPagesAreBoundedAndListEachFileOnce) {
  const Keys keys = WriteMany(5, 60);
  std::set<uint32_t> wanted = {RingPartition(keys.back())};
  for (size_t i = 0; i < keys.size(); i += 9) wanted.insert(RingPartition(keys[i]));
  const size_t longest_gap = LongestGap(keys, wanted);
  Keys expected;
  for (const auto& key : keys) {
    if (wanted.contains(RingPartition(key))) expected.push_back(key);
  }
  const ListOptions filtered{.partitions = {wanted.begin(), wanted.end()}, .partition_bits = 12};
  ASSERT_GE(longest_gap, 2u);  // some page of 1 or 2 files must come out empty

  for (uint32_t page_size : {1u, 2u, 3u, 1000u}) {
    for (size_t scan_limit :
         {size_t{1}, size_t{4}, size_t{7}, size_t{59}, size_t{60}, size_t{1000}}) {
      SCOPED_TRACE(::testing::Message()
                   << "page size " << page_size << ", scan limit " << scan_limit);
      ListOptions options = filtered;
      options.page_size = page_size;
      int pages = 0, empty_pages = 0;
      EXPECT_EQ(KeysOf(ListAll(options, scan_limit, &pages, &empty_pages)), expected);
      // Every page but the last examines scan_limit files or fills up.
      EXPECT_GE(static_cast<size_t>(pages), keys.size() / scan_limit);
      // A gap this long holds a whole page, however the pages fall.
      if (longest_gap >= 2 * scan_limit - 1) {
        EXPECT_GT(empty_pages, 0);
      }

      // Unfiltered, the scan limit bounds pages the same way.
      ListOptions all{.page_size = page_size};
      EXPECT_EQ(KeysOf(ListAll(all, scan_limit, &pages)), keys);
    }
  }

  // A page stopped by the scan limit resumes right after the last file it
  // examined, whether or not that one matched.
  ListOptions options = filtered;
  auto page = engine_->List(options, 10);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->next_page_token, keys[9].first + "/" + keys[9].second);
  // A limit of 0 still makes progress.
  page = engine_->List(ListOptions{.page_size = 5}, 0);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(KeysOf(page->files), Keys(keys.begin(), keys.begin() + 1));
}

TEST_F(StorageEngineTest, BadPartitionFiltersAreRejected) {
  const std::string video = NewVideoId();
  ASSERT_TRUE(Put(video, "a", "a").ok());
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  for (const auto& [partitions, bits] :
       std::vector<std::pair<std::vector<uint32_t>, int>>{{{0}, 0},
                                                          {{0}, -1},
                                                          {{0}, 17},
                                                          {{0}, 64},
                                                          {{4096}, 12},
                                                          {{0, 1, 2}, 1},
                                                          {{65536}, 16},
                                                          {{0xffffffffu}, 16}}) {
    SCOPED_TRACE(::testing::Message() << "bits " << bits << ", partition " << partitions.back());
    auto page = engine_->List(ListOptions{.partitions = partitions, .partition_bits = bits});
    EXPECT_EQ(page.status().code(), kInvalid) << page.status();
  }
  // The widest and narrowest filters, and a width without partitions (no filter).
  EXPECT_TRUE(engine_->List(ListOptions{.partitions = {65535}, .partition_bits = 16}).ok());
  EXPECT_TRUE(engine_->List(ListOptions{.partitions = {0, 1}, .partition_bits = 1}).ok());
  auto unfiltered = engine_->List(ListOptions{.partition_bits = 99});
  ASSERT_TRUE(unfiltered.ok()) << unfiltered.status();
  EXPECT_THAT(unfiltered->files, SizeIs(1));
  // The other arguments are still checked with a filter.
  EXPECT_EQ(engine_->List(ListOptions{.video_id = "..", .partitions = {0}, .partition_bits = 1})
                .status()
                .code(),
            kInvalid);
  EXPECT_EQ(
      engine_->List(ListOptions{.page_token = "garbage", .partitions = {0}, .partition_bits = 1})
          .status()
          .code(),
      kInvalid);
}

TEST_F(StorageEngineTest, ReadersAlwaysGetAVersionWithItsOwnChecksum) {
  const std::string video = NewVideoId();
  ASSERT_TRUE(Put(video, "manifest.mpd", "v0").ok());
  std::atomic<bool> stop = false;
  std::atomic<int> mismatches = 0, reads = 0;
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < 40; ++i) {
        // Different sizes, so a version mix-up would show in the checksum.
        EXPECT_TRUE(Put(video, "manifest.mpd", Pattern(1000 + 97 * i + w, i * 2 + w)).ok());
      }
    });
  }
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&] {
      while (!stop) {
        auto reader = engine_->OpenReader(video, "manifest.mpd");
        ASSERT_TRUE(reader.ok()) << reader.status();
        std::string data, buffer(4096, '\0');
        while (true) {
          absl::StatusOr<size_t> n = (*reader)->Read(buffer);
          ASSERT_TRUE(n.ok()) << n.status();
          if (*n == 0) break;
          data.append(buffer.data(), *n);
        }
        if (Sha256::HexOf(data) != (*reader)->file().sha256) ++mismatches;
        ++reads;
      }
    });
  }
  threads[0].join();
  threads[1].join();
  stop = true;
  threads[2].join();
  threads[3].join();
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(engine_->Usage()->files, 1u);
  EXPECT_THAT(TempFiles(DataDir()), IsEmpty());
}

TEST_F(StorageEngineTest, ListOfAnEmptyStoreOrUnknownVideoIsEmpty) {
  auto all = engine_->List("", "");
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(all->files, IsEmpty());
  EXPECT_EQ(all->next_page_token, "");
  auto one = engine_->List(NewVideoId(), "");
  ASSERT_TRUE(one.ok());
  EXPECT_THAT(one->files, IsEmpty());
}

}  // namespace
}  // namespace streamgrid::storage
