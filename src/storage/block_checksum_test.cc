// Block checksum algorithms: the hasher, checksum records of either
// algorithm, and verified reads, scrubbing and uploads of files of each.
#include "storage/block_checksum.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/ids.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/checksum_store.h"
#include "storage/scrubber.h"
#include "storage/sha256.h"
#include "storage/storage_engine.h"
#include "storage/test_util.h"
#include "storage/testing/bit_rot.h"

namespace streamgrid::storage {
namespace {

namespace fs = std::filesystem;

using testing::FlipBitKeepingMtime;
using testing::Pattern;
using ::testing::SizeIs;
using testing::TempDir;
using testing::WaitFor;

constexpr uint64_t kBlock = kChecksumBlockBytes;

std::vector<BlockDigest> BlocksOf(BlockAlgorithm algorithm, const std::string& data) {
  std::vector<BlockDigest> blocks;
  for (uint64_t at = 0; at < data.size(); at += kBlock) {
    const std::string_view block = std::string_view(data).substr(at, kBlock);
    blocks.push_back(BlockHasher::Of(algorithm, block));
  }
  return blocks;
}

std::string ReadText(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(BlockHasherTest, Xxh3DigestsAreSixteenBytesAndMatchTheOneShotForm) {
  const std::string data = Pattern(3 * 1000 + 7, 1);
  BlockHasher hasher(BlockAlgorithm::kXxh3_128);
  hasher.Update(std::string_view(data).substr(0, 1000));
  hasher.Update(std::string_view(data).substr(1000));
  const BlockDigest digest = hasher.Finish();
  EXPECT_EQ(digest, BlockHasher::Of(BlockAlgorithm::kXxh3_128, data));
  // Only the first 16 bytes are the digest.
  for (size_t i = DigestBytes(BlockAlgorithm::kXxh3_128); i < digest.size(); ++i) {
    EXPECT_EQ(digest[i], 0) << i;
  }
  EXPECT_THAT(BlockDigestHex(BlockAlgorithm::kXxh3_128, digest), SizeIs(32));
  // Finish() starts the next block: the same bytes hash the same again.
  hasher.Update(data);
  EXPECT_EQ(hasher.Finish(), digest);
  // Another byte, another digest.
  std::string changed = data;
  changed[500] ^= 1;
  EXPECT_NE(BlockHasher::Of(BlockAlgorithm::kXxh3_128, changed), digest);
}

TEST(BlockHasherTest, Sha256BlocksAreSha256) {
  const std::string data = Pattern(5000, 2);
  EXPECT_EQ(BlockDigestHex(BlockAlgorithm::kSha256, BlockHasher::Of(BlockAlgorithm::kSha256, data)),
            Sha256::HexOf(data));
  BlockHasher hasher(BlockAlgorithm::kSha256);
  hasher.Update(data);
  EXPECT_EQ(hasher.Finish(), BlockHasher::Of(BlockAlgorithm::kSha256, data));
  hasher.Update(data);
  EXPECT_EQ(hasher.Finish(), BlockHasher::Of(BlockAlgorithm::kSha256, data));
}

TEST(BlockHasherTest, NamesRoundTrip) {
  for (BlockAlgorithm a : {BlockAlgorithm::kSha256, BlockAlgorithm::kXxh3_128}) {
    EXPECT_EQ(ParseBlockAlgorithm(BlockAlgorithmName(a)), a);
  }
  EXPECT_EQ(ParseBlockAlgorithm("crc32c"), std::nullopt);
}

class ChecksumRecordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = ChecksumStore::Open(*Env::Default(), dir_.path());
    ASSERT_TRUE(store.ok()) << store.status();
    store_.emplace(*std::move(store));
  }

  TempDir dir_;
  std::optional<ChecksumStore> store_;
};

TEST_F(ChecksumRecordTest, BothAlgorithmsRoundTrip) {
  const std::string video = NewVideoId();
  for (BlockAlgorithm algorithm : {BlockAlgorithm::kSha256, BlockAlgorithm::kXxh3_128}) {
    // Several blocks, one block, and none.
    for (uint64_t size : {3 * kBlock + 5, uint64_t{700}, uint64_t{0}}) {
      const std::string data = Pattern(size, 3);
      ChecksumRecord record{.sha256 = Sha256::HexOf(data),
                            .mtime_unix_nanos = 1234567890123,
                            .etag = "\"1-2-3\"",
                            .size = size,
                            .block_algorithm = algorithm,
                            .blocks = BlocksOf(algorithm, data)};
      // SHA-256 records leave out a single block's digest (the whole file's).
      if (algorithm == BlockAlgorithm::kSha256 && record.blocks.size() <= 1) record.blocks.clear();
      ASSERT_TRUE(store_->Write(video, "f", record).ok());
      auto read = store_->Read(video, "f");
      ASSERT_TRUE(read.ok()) << read.status();
      ASSERT_TRUE(read->has_value());
      EXPECT_EQ(**read, record) << BlockAlgorithmName(algorithm) << " " << size;
    }
  }
}

TEST_F(ChecksumRecordTest, Sha256RecordsKeepTheSecondFormatAndOthersNameTheirAlgorithm) {
  const std::string video = NewVideoId();
  const std::string data = Pattern(2 * kBlock, 4);
  ChecksumRecord record{.sha256 = Sha256::HexOf(data),
                        .mtime_unix_nanos = 5,
                        .etag = "\"e\"",
                        .size = data.size(),
                        .blocks = BlocksOf(BlockAlgorithm::kSha256, data)};
  ASSERT_TRUE(store_->Write(video, "old", record).ok());
  EXPECT_TRUE(ReadText(dir_.path() / video / "old").starts_with("v2 " + record.sha256 + " 5 "));
  record.block_algorithm = BlockAlgorithm::kXxh3_128;
  record.blocks = BlocksOf(BlockAlgorithm::kXxh3_128, data);
  ASSERT_TRUE(store_->Write(video, "new", record).ok());
  const std::string text = ReadText(dir_.path() / video / "new");
  EXPECT_THAT(text, ::testing::HasSubstr(" xxh3-128 2 "));
  // 32 hex digits per block.
  EXPECT_THAT(text, ::testing::EndsWith(
                        " " + BlockDigestHex(BlockAlgorithm::kXxh3_128, record.blocks[0]) +
                        BlockDigestHex(BlockAlgorithm::kXxh3_128, record.blocks[1]) + "\n"));
}

TEST_F(ChecksumRecordTest, ARecordWrittenBeforeXxh3ReadsAsSha256Blocks) {
  const std::string video = NewVideoId();
  const std::string data = Pattern(2 * kBlock + 1, 5);
  const std::vector<BlockDigest> blocks = BlocksOf(BlockAlgorithm::kSha256, data);
  std::string hex;
  for (const BlockDigest& b : blocks) hex += BlockDigestHex(BlockAlgorithm::kSha256, b);
  // Exactly what a node of the previous version wrote.
  fs::create_directories(dir_.path() / video);
  std::ofstream(dir_.path() / video / "f")
      << "v2 " << Sha256::HexOf(data) << " 77 \"x\" " << data.size() << " 3 " << hex << "\n";
  std::ofstream(dir_.path() / video / "one")
      << "v2 " << Sha256::HexOf("abc") << " 77 \"y\" 3 0 -\n";
  auto read = store_->Read(video, "f");
  ASSERT_TRUE(read.ok() && read->has_value()) << read.status();
  EXPECT_EQ((*read)->block_algorithm, BlockAlgorithm::kSha256);
  EXPECT_EQ((*read)->blocks, blocks);
  read = store_->Read(video, "one");
  ASSERT_TRUE(read.ok() && read->has_value()) << read.status();
  EXPECT_EQ((*read)->block_algorithm, BlockAlgorithm::kSha256);
  EXPECT_TRUE((*read)->blocks.empty());
}

TEST_F(ChecksumRecordTest, MalformedThirdFormatRecordsAreDataLoss) {
  const std::string video = NewVideoId();
  const std::string sha = Sha256::HexOf("abc");
  const std::string d = std::string(32, 'a');
  fs::create_directories(dir_.path() / video);
  const std::vector<std::string> bad = {
      "v3 " + sha + " 1 e 3 crc32 1 " + d + "\n",          // unknown algorithm
      "v3 " + sha + " 1 e 3 sha256 0 -\n",                 // SHA-256 stays v2
      "v3 " + sha + " 1 e 3 xxh3-128 0 -\n",               // its one block left out
      "v3 " + sha + " 1 e 3 xxh3-128 1 " + d + "aa\n",     // digest of the wrong size
      "v3 " + sha + " 1 e 3 xxh3-128 1 " + d + " more\n",  // a field too many
  };
  for (const std::string& text : bad) {
    std::ofstream(dir_.path() / video / "f", std::ios::trunc) << text;
    EXPECT_EQ(store_->Read(video, "f").status().code(), absl::StatusCode::kDataLoss) << text;
  }
}

class BlockAlgorithmEngineTest : public ::testing::TestWithParam<BlockAlgorithm> {
 protected:
  void SetUp() override {
    auto opened = StorageEngine::Open(DataDir());
    ASSERT_TRUE(opened.ok()) << opened.status();
    engine_ = *std::move(opened);
  }

  fs::path DataDir() const { return dir_.path() / "data"; }
  fs::path DataPath(const std::string& video, const std::string& name) const {
    return DataDir() / "content" / video / name;
  }

  // An upload as a sender of GetParam() digests sends it.
  absl::StatusOr<StoredFile> PutWithDigests(const std::string& video, const std::string& name,
                                            const std::string& data) {
    auto upload =
        engine_->StartUpload(video, name, data.size(), /*sender_block_digests=*/true, GetParam());
    if (!upload.ok()) return upload.status();
    if (absl::Status s = (*upload)->Append(data); !s.ok()) return s;
    return (*upload)->Commit(Sha256::HexOf(data), BlocksOf(GetParam(), data));
  }

  absl::StatusOr<std::string> ReadAll(const std::string& video, const std::string& name) {
    auto reader = engine_->OpenReader(video, name, 0, std::nullopt);
    if (!reader.ok()) return reader.status();
    std::string got, buffer(100 * 1024, '\0');
    while (true) {
      absl::StatusOr<size_t> n = (*reader)->Read(buffer);
      if (!n.ok()) return n.status();
      if (*n == 0) return got;
      got.append(buffer.data(), *n);
    }
  }

  TempDir dir_;
  std::unique_ptr<StorageEngine> engine_;
};

TEST_P(BlockAlgorithmEngineTest, TheFileKeepsItsAlgorithmAndServesItsDigests) {
  const std::string video = NewVideoId();
  const std::string big = Pattern(2 * kBlock + 10, 6);
  const std::string small = Pattern(900, 7);
  ASSERT_TRUE(PutWithDigests(video, "big", big).ok());
  ASSERT_TRUE(PutWithDigests(video, "small", small).ok());
  // Across a restart too.
  engine_.reset();
  SetUp();
  for (const auto& [name, data] : {std::pair{"big", big}, std::pair{"small", small}}) {
    auto reader = engine_->OpenReader(video, name, 0, std::nullopt);
    ASSERT_TRUE(reader.ok()) << reader.status();
    EXPECT_EQ((*reader)->block_algorithm(), GetParam());
    EXPECT_EQ((*reader)->BlockDigests(), BlocksOf(GetParam(), data)) << name;
    EXPECT_EQ((*reader)->file().sha256, Sha256::HexOf(data));
    EXPECT_EQ(ReadAll(video, name).value(), data);
  }
}

TEST_P(BlockAlgorithmEngineTest, AWrongSenderDigestOrWholeDigestStoresNothing) {
  const std::string video = NewVideoId();
  const std::string data = Pattern(kBlock + 10, 8);
  std::vector<BlockDigest> blocks = BlocksOf(GetParam(), data);
  blocks[1][3] ^= 1;
  auto upload = engine_->StartUpload(video, "f", data.size(), true, GetParam());
  ASSERT_TRUE(upload.ok());
  ASSERT_TRUE((*upload)->Append(data).ok());
  EXPECT_EQ((*upload)->Commit(Sha256::HexOf(data), blocks).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(engine_->Stat(video, "f").status().code(), absl::StatusCode::kNotFound);
  // An empty file is checked against the whole-file digest of nothing.
  upload = engine_->StartUpload(video, "empty", 0, true, GetParam());
  ASSERT_TRUE(upload.ok());
  EXPECT_EQ((*upload)->Commit(Sha256::HexOf("x"), {}).status().code(), absl::StatusCode::kDataLoss);
}

TEST_P(BlockAlgorithmEngineTest, ABitFlipIsCaughtByAVerifiedReadAndQuarantined) {
  const std::string video = NewVideoId();
  const std::string data = Pattern(3 * kBlock, 9);
  const std::string small = Pattern(4000, 10);
  ASSERT_TRUE(PutWithDigests(video, "big", data).ok());
  ASSERT_TRUE(PutWithDigests(video, "small", small).ok());
  ASSERT_NO_FATAL_FAILURE(FlipBitKeepingMtime(DataPath(video, "big"), kBlock + 99));
  ASSERT_NO_FATAL_FAILURE(FlipBitKeepingMtime(DataPath(video, "small"), 10));
  EXPECT_EQ(ReadAll(video, "big").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ReadAll(video, "small").status().code(), absl::StatusCode::kDataLoss);
  const std::vector<QuarantinedCopy> copies = engine_->quarantine().List(0, 0).copies;
  ASSERT_THAT(copies, SizeIs(2));
  for (const QuarantinedCopy& copy : copies) {
    EXPECT_EQ(copy.damage, Damage::kCorrupt);
    EXPECT_EQ(copy.found_by, "read");
  }
  EXPECT_EQ(engine_->Stat(video, "big").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(BlockAlgorithmEngineTest, TheScrubberCatchesABitFlip) {
  const std::string video = NewVideoId();
  const std::string data = Pattern(2 * kBlock + 3, 11);
  ASSERT_TRUE(PutWithDigests(video, "bad", data).ok());
  ASSERT_TRUE(PutWithDigests(video, "good", data).ok());
  ASSERT_NO_FATAL_FAILURE(FlipBitKeepingMtime(DataPath(video, "bad"), 2 * kBlock + 1));
  Scrubber scrubber(*engine_, {.bytes_per_second = 1 << 30, .interval = std::chrono::hours(1)});
  scrubber.Start();
  ASSERT_TRUE(
      WaitFor([&] { return scrubber.stats().passes_completed >= 1; }, std::chrono::seconds(60)));
  scrubber.Stop();
  EXPECT_EQ(scrubber.stats().damaged_found, 1u);
  const std::vector<QuarantinedCopy> copies = engine_->quarantine().List(0, 0).copies;
  ASSERT_THAT(copies, SizeIs(1));
  EXPECT_EQ(copies[0].name, "bad");
  EXPECT_EQ(copies[0].found_by, "scrub");
  EXPECT_EQ(ReadAll(video, "good").value(), data);
}

INSTANTIATE_TEST_SUITE_P(Algorithms, BlockAlgorithmEngineTest,
                         ::testing::Values(BlockAlgorithm::kSha256, BlockAlgorithm::kXxh3_128),
                         [](const ::testing::TestParamInfo<BlockAlgorithm>& info) {
                           return info.param == BlockAlgorithm::kSha256 ? std::string("Sha256")
                                                                        : std::string("Xxh3");
                         });

TEST(BlockAlgorithmDefaultTest, NewFilesGetXxh3BlocksEvenWithOneBlock) {
  TempDir dir;
  auto engine = StorageEngine::Open(dir.path());
  ASSERT_TRUE(engine.ok());
  const std::string video = NewVideoId();
  const std::string data = Pattern(1000, 12);
  // The node hashes the whole file itself (no sender digests).
  auto upload = (*engine)->StartUpload(video, "f", data.size());
  ASSERT_TRUE(upload.ok());
  ASSERT_TRUE((*upload)->Append(data).ok());
  ASSERT_TRUE((*upload)->Commit(Sha256::HexOf(data)).ok());
  auto reader = (*engine)->OpenReader(video, "f", 0, std::nullopt);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->block_algorithm(), BlockAlgorithm::kXxh3_128);
  EXPECT_EQ((*reader)->BlockDigests(), BlocksOf(BlockAlgorithm::kXxh3_128, data));
}

}  // namespace
}  // namespace streamgrid::storage
