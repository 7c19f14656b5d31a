// Verified reads, damage detection, quarantine, scrubbing, crash recovery and
// injected I/O faults of the storage engine.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
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
#include "storage/testing/fault_injection_env.h"

namespace streamgrid::storage {
namespace {

namespace fs = std::filesystem;

using testing::FaultInjectionEnv;
using testing::FlipBitKeepingMtime;
using ::testing::IsEmpty;
using testing::Pattern;
using testing::TempDir;
using testing::TempFiles;
using testing::WaitFor;

constexpr size_t kChunk = 256 * 1024;
constexpr uint64_t kBlock = kChecksumBlockBytes;

struct timespec MtimeOf(const fs::path& path) {
  struct stat st;
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
  return st.st_mtim;
}

void RestoreMtime(const fs::path& path, struct timespec mtime) {
  struct timespec times[2] = {mtime, mtime};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

void TruncateKeepMtime(const fs::path& path, uint64_t size) {
  const struct timespec mtime = MtimeOf(path);
  ASSERT_EQ(truncate(path.c_str(), static_cast<off_t>(size)), 0);
  RestoreMtime(path, mtime);
}

class IntegrityTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    engine_.reset();
    auto opened = StorageEngine::Open(DataDir(), {.env = &env_});
    ASSERT_TRUE(opened.ok()) << opened.status();
    engine_ = *std::move(opened);
  }

  fs::path DataDir() const { return dir_.path() / "data"; }
  fs::path DataPath(const std::string& video, const std::string& name) const {
    return DataDir() / "content" / video / name;
  }
  fs::path RecordPath(const std::string& video, const std::string& name) const {
    return DataDir() / "checksums" / video / name;
  }

  absl::StatusOr<StoredFile> Put(const std::string& video_id, const std::string& name,
                                 const std::string& data) {
    auto upload = engine_->StartUpload(video_id, name, data.size());
    if (!upload.ok()) return upload.status();
    for (size_t at = 0; at < data.size(); at += kChunk) {
      std::string_view chunk = std::string_view(data).substr(at, kChunk);
      if (absl::Status s = (*upload)->Append(chunk); !s.ok()) return s;
    }
    return (*upload)->Commit(Sha256::HexOf(data));
  }

  // Reads the range; `*got` receives every byte handed out, even before an error.
  absl::Status Read(const std::string& video_id, const std::string& name, std::string* got,
                    uint64_t offset = 0, std::optional<uint64_t> length = std::nullopt) {
    got->clear();
    auto reader = engine_->OpenReader(video_id, name, offset, length);
    if (!reader.ok()) return reader.status();
    std::string buffer(100 * 1024, '\0');
    while (true) {
      absl::StatusOr<size_t> n = (*reader)->Read(buffer);
      if (!n.ok()) return n.status();
      if (*n == 0) return absl::OkStatus();
      got->append(buffer.data(), *n);
    }
  }

  absl::StatusOr<std::string> ReadAll(const std::string& video_id, const std::string& name) {
    std::string got;
    if (absl::Status s = Read(video_id, name, &got); !s.ok()) return s;
    return got;
  }

  std::vector<QuarantinedCopy> Quarantined() { return engine_->quarantine().List(0, 0).copies; }

  TempDir dir_;
  FaultInjectionEnv env_{Env::Default()};
  std::unique_ptr<StorageEngine> engine_;
};

TEST_F(IntegrityTest, BitFlipWithMtimeRestoredIsCaughtBeforeTheBadBlockIsSent) {
  const std::string video = NewVideoId();
  const std::string data = Pattern(3 * kBlock + kBlock / 2, 1);
  ASSERT_TRUE(Put(video, "big.mp4", data).ok());
  FlipBitKeepingMtime(DataPath(video, "big.mp4"), 2 * kBlock + 77);

  // A range inside an intact block is served: it is verified, and good.
  std::string got;
  ASSERT_TRUE(Read(video, "big.mp4", &got, kBlock + 10, 1000).ok());
  EXPECT_EQ(got, data.substr(kBlock + 10, 1000));

  // A range touching the bad block gets none of it.
  EXPECT_EQ(Read(video, "big.mp4", &got, 2 * kBlock + 100, 10).code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(got, IsEmpty());
  // The copy is out of service now.
  EXPECT_EQ(engine_->Stat(video, "big.mp4").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(DataPath(video, "big.mp4")));
  EXPECT_FALSE(fs::exists(RecordPath(video, "big.mp4")));
  std::vector<QuarantinedCopy> copies = Quarantined();
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0].seq, 1u);
  EXPECT_EQ(copies[0].video_id, video);
  EXPECT_EQ(copies[0].name, "big.mp4");
  EXPECT_EQ(copies[0].damage, Damage::kCorrupt);
  EXPECT_EQ(copies[0].expected_sha256, Sha256::HexOf(data));
  EXPECT_EQ(copies[0].found_by, "read");
  EXPECT_TRUE(fs::exists(DataDir() / "quarantine" / ("1-" + video + "-big.mp4")));
  EXPECT_EQ(engine_->Usage()->files, 0u);
}

TEST_F(IntegrityTest, WholeReadStopsAtTheBadBlockHavingSentOnlyVerifiedBytes) {
  const std::string video = NewVideoId();
  const std::string data = Pattern(3 * kBlock, 2);
  ASSERT_TRUE(Put(video, "big.mp4", data).ok());
  FlipBitKeepingMtime(DataPath(video, "big.mp4"), kBlock + 5);
  std::string got;
  EXPECT_EQ(Read(video, "big.mp4", &got).code(), absl::StatusCode::kDataLoss);
  // Block 0 went out (verified); nothing of block 1.
  EXPECT_EQ(got, data.substr(0, kBlock));
  EXPECT_EQ(Quarantined().size(), 1u);
}

TEST_F(IntegrityTest, SmallFileBitFlipFailsWholeAndRangeReads) {
  const std::string video = NewVideoId();
  const std::string data = Pattern(5000, 3);
  ASSERT_TRUE(Put(video, "seg", data).ok());
  ASSERT_TRUE(Put(video, "seg2", data).ok());
  FlipBitKeepingMtime(DataPath(video, "seg"), 4000);
  FlipBitKeepingMtime(DataPath(video, "seg2"), 10);
  std::string got;
  EXPECT_EQ(Read(video, "seg", &got, 0, 100).code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(got, IsEmpty());
  EXPECT_EQ(Read(video, "seg2", &got).code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(got, IsEmpty());
  EXPECT_EQ(Quarantined().size(), 2u);
}

struct DamageCase {
  std::string name;
  Damage expected;
  std::function<void(const fs::path& data, const fs::path& record)> inflict;
};

std::vector<DamageCase> DamageCases() {
  return {
      {"truncated", Damage::kWrongSize,
       [](const fs::path& data, const fs::path&) { TruncateKeepMtime(data, 1000); }},
      {"zero-length", Damage::kWrongSize,
       [](const fs::path& data, const fs::path&) { TruncateKeepMtime(data, 0); }},
      {"deleted", Damage::kMissing,
       [](const fs::path& data, const fs::path&) { fs::remove(data); }},
      {"no-record", Damage::kUnverifiable,
       [](const fs::path&, const fs::path& record) { fs::remove(record); }},
      {"garbled-record", Damage::kUnverifiable,
       [](const fs::path&, const fs::path& record) {
         std::ofstream(record, std::ios::trunc) << "v2 garbage";
       }},
      {"touched", Damage::kCorrupt,
       [](const fs::path& data, const fs::path&) {
         struct timespec mtime = MtimeOf(data);
         mtime.tv_sec -= 100;
         RestoreMtime(data, mtime);
       }},
      {"bit-flip", Damage::kCorrupt,
       [](const fs::path& data, const fs::path&) { FlipBitKeepingMtime(data, 3); }},
  };
}

TEST_F(IntegrityTest, EveryKindOfDamageFailsReadsWithDataLossThenNotFound) {
  const std::string data = Pattern(2 * kBlock + 100, 4);
  for (const DamageCase& c : DamageCases()) {
    SCOPED_TRACE(c.name);
    const std::string video = NewVideoId();
    ASSERT_TRUE(Put(video, "f", data).ok());
    c.inflict(DataPath(video, "f"), RecordPath(video, "f"));
    std::string got;
    EXPECT_EQ(Read(video, "f", &got, 10, 20).code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(got, IsEmpty());
    EXPECT_EQ(engine_->Stat(video, "f").status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(Read(video, "f", &got).code(), absl::StatusCode::kNotFound);
    ASSERT_FALSE(Quarantined().empty());
    EXPECT_EQ(Quarantined().back().damage, c.expected);
    EXPECT_EQ(Quarantined().back().video_id, video);
    // A new version is stored and served as usual.
    ASSERT_TRUE(Put(video, "f", data).ok());
    EXPECT_EQ(ReadAll(video, "f").value(), data);
  }
  EXPECT_EQ(Quarantined().size(), DamageCases().size());
}

TEST_F(IntegrityTest, StatSpotsChangedMetadataAndListingsSkipDamagedFiles) {
  const std::string video = NewVideoId();
  ASSERT_TRUE(Put(video, "a", "aaaa").ok());
  ASSERT_TRUE(Put(video, "b", "bbbb").ok());
  TruncateKeepMtime(DataPath(video, "a"), 2);
  auto page = engine_->List(video, "");
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->files.size(), 1u);
  EXPECT_EQ(page->files[0].name, "b");
  // Listing does not quarantine; Stat does.
  EXPECT_TRUE(Quarantined().empty());
  EXPECT_EQ(engine_->Stat(video, "a").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Quarantined().size(), 1u);
}

TEST_F(IntegrityTest, QuarantineLogSurvivesRestartsWithIncreasingSequence) {
  const std::string video = NewVideoId();
  for (const char* name : {"a", "b"}) ASSERT_TRUE(Put(video, name, "data").ok());
  fs::remove(DataPath(video, "a"));
  EXPECT_EQ(engine_->Stat(video, "a").status().code(), absl::StatusCode::kDataLoss);
  Reopen();
  ASSERT_EQ(Quarantined().size(), 1u);
  EXPECT_EQ(Quarantined()[0].seq, 1u);
  EXPECT_EQ(Quarantined()[0].damage, Damage::kMissing);
  EXPECT_EQ(engine_->quarantine().added_since_open(), 0u);
  FlipBitKeepingMtime(DataPath(video, "b"), 0);
  EXPECT_FALSE(ReadAll(video, "b").ok());
  ASSERT_EQ(Quarantined().size(), 2u);
  EXPECT_EQ(Quarantined()[1].seq, 2u);
  EXPECT_EQ(engine_->quarantine().last_seq(), 2u);
  EXPECT_EQ(engine_->quarantine().added_since_open(), 1u);
  Quarantine::Page after = engine_->quarantine().List(1, 10);
  ASSERT_EQ(after.copies.size(), 1u);
  EXPECT_EQ(after.copies[0].name, "b");
  EXPECT_FALSE(after.more);
  EXPECT_EQ(after.oldest_kept_seq, 1u);
  Quarantine::Page first = engine_->quarantine().List(0, 1);
  EXPECT_TRUE(first.more);
}

TEST_F(IntegrityTest, ScrubberFindsEveryKindOfDamage) {
  const std::string data = Pattern(kBlock + 300, 5);
  std::vector<std::string> videos;
  for (const DamageCase& c : DamageCases()) {
    videos.push_back(NewVideoId());
    ASSERT_TRUE(Put(videos.back(), "f", data).ok());
    c.inflict(DataPath(videos.back(), "f"), RecordPath(videos.back(), "f"));
  }
  const std::string good = NewVideoId();
  ASSERT_TRUE(Put(good, "f", data).ok());

  Scrubber scrubber(*engine_, {.bytes_per_second = 1 << 30, .interval = std::chrono::hours(1)});
  scrubber.Start();
  ASSERT_TRUE(
      WaitFor([&] { return scrubber.stats().passes_completed >= 1; }, std::chrono::seconds(60)));
  scrubber.Stop();
  const ScrubStats stats = scrubber.stats();
  EXPECT_EQ(stats.damaged_found, DamageCases().size());
  EXPECT_EQ(stats.files_checked, DamageCases().size() + 1);
  EXPECT_GE(stats.bytes_checked, data.size());
  EXPECT_GT(stats.last_pass_finished_unix_ms, 0);
  std::vector<QuarantinedCopy> copies = Quarantined();
  ASSERT_EQ(copies.size(), DamageCases().size());
  for (size_t i = 0; i < copies.size(); ++i) {
    const DamageCase& c = DamageCases()[i];
    auto it = std::find_if(copies.begin(), copies.end(),
                           [&](const QuarantinedCopy& q) { return q.video_id == videos[i]; });
    ASSERT_NE(it, copies.end()) << c.name;
    EXPECT_EQ(it->damage, c.expected) << c.name;
    EXPECT_EQ(it->found_by, "scrub") << c.name;
  }
  EXPECT_EQ(ReadAll(good, "f").value(), data);
}

TEST_F(IntegrityTest, ScrubberKeepsItsRateAndStopsPromptly) {
  const std::string video = NewVideoId();
  ASSERT_TRUE(Put(video, "big", Pattern(4 * kBlock, 6)).ok());
  // 1 MiB/s over 4 MiB: a pass takes about 3 s or more.
  Scrubber scrubber(*engine_, {.bytes_per_second = kBlock, .interval = std::chrono::hours(1)});
  const auto start = std::chrono::steady_clock::now();
  scrubber.Start();
  ASSERT_TRUE(
      WaitFor([&] { return scrubber.stats().passes_completed >= 1; }, std::chrono::seconds(60)));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2500));
  // Slow enough that a second pass is in its waits when stopped.
  Scrubber slow(*engine_, {.bytes_per_second = 1024, .interval = std::chrono::hours(1)});
  slow.Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto stopping = std::chrono::steady_clock::now();
  slow.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - stopping, std::chrono::seconds(5));
  Scrubber off(*engine_, {.bytes_per_second = 0});
  off.Start();
  off.Stop();
  EXPECT_EQ(off.stats().files_checked, 0u);
}

TEST_F(IntegrityTest, OpenFinishesACommitWhoseRecordIsDurable) {
  const std::string video = NewVideoId();
  ASSERT_TRUE(Put(video, "seg", "old version").ok());
  engine_.reset();
  // A crash after step 2 of a commit: the new data in its temp file, the
  // record of that temp file written, the rename not done.
  const fs::path temp = DataDir() / "content" / video / ".tmp-up-seg.00000000000000aa";
  std::ofstream(temp) << "new version!";
  struct stat st;
  ASSERT_EQ(lstat(temp.c_str(), &st), 0);
  auto store = ChecksumStore::Open(*Env::Default(), DataDir() / "checksums");
  ASSERT_TRUE(store.ok());
  FileStat fs_stat{.inode = st.st_ino,
                   .size = static_cast<uint64_t>(st.st_size),
                   .mtime_unix_nanos = st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec};
  ASSERT_TRUE(store
                  ->Write(video, "seg",
                          ChecksumRecord{.sha256 = Sha256::HexOf("new version!"),
                                         .mtime_unix_nanos = fs_stat.mtime_unix_nanos,
                                         .etag = EtagOf(fs_stat),
                                         .size = fs_stat.size})
                  .ok());
  // And an upload that crashed before its record: removed.
  std::ofstream(DataDir() / "content" / video / ".tmp-up-other.00000000000000bb") << "partial";
  Reopen();
  EXPECT_EQ(ReadAll(video, "seg").value(), "new version!");
  EXPECT_EQ(engine_->Stat(video, "other").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(TempFiles(DataDir()), IsEmpty());
  EXPECT_TRUE(Quarantined().empty());
}

TEST_F(IntegrityTest, OpenFinishesADeleteThatRenamedTheDataAside) {
  const std::string video = NewVideoId();
  ASSERT_TRUE(Put(video, "seg", "doomed").ok());
  ASSERT_TRUE(Put(video, "kept", "kept").ok());
  engine_.reset();
  // A crash after step 1 of a delete: the data renamed aside, record left.
  fs::rename(DataPath(video, "seg"),
             DataDir() / "content" / video / ".tmp-del-seg.00000000000000cc");
  Reopen();
  EXPECT_EQ(engine_->Stat(video, "seg").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(RecordPath(video, "seg")));
  EXPECT_EQ(ReadAll(video, "kept").value(), "kept");
  EXPECT_THAT(TempFiles(DataDir()), IsEmpty());
  EXPECT_TRUE(Quarantined().empty());
}

TEST_F(IntegrityTest, DeleteVideoRemovesEveryCopyAndRecordEvenDamagedOnes) {
  const std::string video = NewVideoId();
  for (const char* name : {"a", "b", "c"}) ASSERT_TRUE(Put(video, name, name).ok());
  fs::remove(DataPath(video, "b"));
  EXPECT_EQ(engine_->DeleteVideo(video).value(), 2u);
  for (const char* name : {"a", "b", "c"}) {
    EXPECT_EQ(engine_->Stat(video, name).status().code(), absl::StatusCode::kNotFound) << name;
  }
  EXPECT_FALSE(fs::exists(DataDir() / "checksums" / video));
  EXPECT_FALSE(fs::exists(DataDir() / "content" / video));
  EXPECT_TRUE(Quarantined().empty());

  // A rename failing midway: the files moved aside are deleted, the one that
  // failed is intact, nothing looks damaged.
  for (const char* name : {"a", "b", "c"}) ASSERT_TRUE(Put(video, name, name).ok());
  // (The file removed behind the engine's back above stays counted until a
  // restart: compare with the count now.)
  const uint64_t files = engine_->Usage()->files;
  env_.Arm(FaultInjectionEnv::Op::kRename, 2, EIO);
  EXPECT_FALSE(engine_->DeleteVideo(video).ok());
  env_.Disarm();
  EXPECT_EQ(engine_->Stat(video, "a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadAll(video, "b").value(), "b");
  EXPECT_EQ(engine_->Stat(video, "c").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Quarantined().empty());
  EXPECT_THAT(TempFiles(DataDir()), IsEmpty());
  EXPECT_EQ(engine_->Usage()->files, files - 2);
}

// Fails each write, fsync, rename and create in turn while a file is being
// replaced: the old version or the new one is there afterwards, whole and
// verified (or, when only the final directory fsync failed, neither), never a
// mix; no temp file is left; the engine keeps working; a reopen agrees.
TEST_F(IntegrityTest, InjectedFaultsLeaveNothingHalfWrittenOrVisible) {
  const std::string v1 = Pattern(2 * kBlock + 10, 7);
  const std::string v2 = Pattern(kBlock + 20, 8);
  const std::string v3 = "third";
  struct Fault {
    FaultInjectionEnv::Op op;
    const char* name;
    int err;
  };
  const std::vector<Fault> faults = {
      {FaultInjectionEnv::Op::kWrite, "write", ENOSPC},
      {FaultInjectionEnv::Op::kSync, "sync", EIO},
      {FaultInjectionEnv::Op::kRename, "rename", EIO},
      {FaultInjectionEnv::Op::kCreate, "create", ENOSPC},
  };
  int fired = 0;
  for (const Fault& fault : faults) {
    for (int n = 1; n <= 8; ++n) {
      SCOPED_TRACE(std::string(fault.name) + " #" + std::to_string(n));
      const std::string video = NewVideoId();
      ASSERT_TRUE(Put(video, "f", v1).ok());
      const int before = env_.fired();
      env_.Arm(fault.op, n, fault.err);
      absl::StatusOr<StoredFile> put = Put(video, "f", v2);
      const bool injected = env_.fired() > before;
      env_.Disarm();
      fired += injected ? 1 : 0;
      absl::StatusOr<std::string> now = ReadAll(video, "f");
      if (put.ok()) {
        EXPECT_EQ(now.value_or("?"), v2);
      } else {
        EXPECT_TRUE(injected) << put.status();
        if (fault.err == ENOSPC) {
          EXPECT_EQ(put.status().code(), absl::StatusCode::kResourceExhausted);
        }
        if (now.ok()) {
          EXPECT_EQ(*now, v1);
        } else {
          EXPECT_EQ(now.status().code(), absl::StatusCode::kNotFound) << now.status();
        }
      }
      EXPECT_THAT(TempFiles(DataDir()), IsEmpty());
      EXPECT_TRUE(Quarantined().empty()) << Quarantined().back().name;
      ASSERT_TRUE(Put(video, "f", v3).ok());
      EXPECT_EQ(ReadAll(video, "f").value(), v3);
    }
  }
  EXPECT_GT(fired, 12);
  Reopen();
  EXPECT_TRUE(Quarantined().empty());
  EXPECT_THAT(TempFiles(DataDir()), IsEmpty());
}

}  // namespace
}  // namespace streamgrid::storage
