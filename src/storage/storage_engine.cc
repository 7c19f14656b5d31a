#include "storage/storage_engine.h"

#include <dirent.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/names.h"
#include "common/strings.h"
#include "spdlog/spdlog.h"
#include "storage/file_util.h"
#include "storage/storage_engine_internal.h"

namespace streamgrid::storage {

namespace fs = std::filesystem;

namespace engine_internal {

absl::Status InvalidVideoId(std::string_view video_id) {
  return absl::InvalidArgumentError(absl::StrCat("invalid video id \"", ToAbsl(video_id), "\""));
}

absl::Status Validate(std::string_view video_id, std::string_view name) {
  if (!IsValidVideoId(video_id)) return InvalidVideoId(video_id);
  if (!IsValidContentName(name)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid content name \"", ToAbsl(name), "\""));
  }
  return absl::OkStatus();
}

absl::Status NotFound(std::string_view video_id, std::string_view name) {
  return absl::NotFoundError(absl::StrCat("no file ", ToAbsl(video_id), "/", ToAbsl(name)));
}

StoredFile MakeStoredFile(std::string_view video_id, std::string_view name,
                          const ChecksumRecord& record) {
  return StoredFile{.video_id = std::string(video_id),
                    .name = std::string(name),
                    .size = record.size,
                    .sha256 = record.sha256,
                    .mtime_unix_nanos = record.mtime_unix_nanos};
}

// Sorted names of the video directories under `root`; other entries are skipped.
absl::StatusOr<std::vector<std::string>> VideoIds(const fs::path& root) {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir(root.c_str()), closedir);
  if (!dir) return ErrnoStatus(errno, "opendir", root);
  std::vector<std::string> ids;
  while (true) {
    errno = 0;
    const dirent* entry = readdir(dir.get());
    if (entry == nullptr) {
      if (errno != 0) return ErrnoStatus(errno, "readdir", root);
      break;
    }
    if (!IsValidVideoId(entry->d_name)) continue;
    if (entry->d_type != DT_DIR && entry->d_type != DT_UNKNOWN) continue;
    ids.emplace_back(entry->d_name);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace engine_internal

using engine_internal::InvalidVideoId;
using engine_internal::kDeletePrefix;
using engine_internal::kUploadPrefix;
using engine_internal::MakeStoredFile;
using engine_internal::NotFound;
using engine_internal::Validate;
using engine_internal::VideoIds;

std::string EtagOf(const FileStat& stat) {
  return absl::StrFormat("\"%x-%x-%x\"", stat.inode, stat.size,
                         static_cast<uint64_t>(stat.mtime_unix_nanos));
}
StorageEngine::StorageEngine(fs::path data_dir, Env& env,
                             std::unique_ptr<LocalVideoContentService> content,
                             ChecksumStore checksums, std::unique_ptr<Quarantine> quarantine)
    : data_dir_(std::move(data_dir)),
      env_(env),
      content_(std::move(content)),
      checksums_(std::move(checksums)),
      quarantine_(std::move(quarantine)) {}

StorageEngine::~StorageEngine() = default;

absl::StatusOr<std::unique_ptr<StorageEngine>> StorageEngine::Open(const fs::path& data_dir,
                                                                   StorageEngineOptions options) {
  Env& env = options.env != nullptr ? *options.env : *Env::Default();
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec) return ErrnoStatus(ec.value(), "create", data_dir);
  for (const char* sub : {"content", "checksums"}) {
    if (absl::Status s = env.CreateDir(data_dir / sub); !s.ok()) return s;
  }
  auto checksums = ChecksumStore::Open(env, data_dir / "checksums");
  if (!checksums.ok()) return checksums.status();
  auto quarantine = Quarantine::Open(env, data_dir / "quarantine");
  if (!quarantine.ok()) return quarantine.status();
  std::unique_ptr<StorageEngine> engine(
      new StorageEngine(data_dir, env, nullptr, *std::move(checksums), *std::move(quarantine)));
  // Before the content service opens: it removes every temp file, and some
  // of them may be commits or deletes to finish.
  if (absl::Status s = engine->Recover(); !s.ok()) return s;
  auto content = LocalVideoContentService::Open(data_dir / "content");
  if (!content.ok()) return content.status();
  const_cast<std::unique_ptr<LocalVideoContentService>&>(engine->content_) = *std::move(content);
  if (absl::Status s = engine->UpgradeLegacyStore(); !s.ok()) return s;

  uint64_t files = 0, bytes = 0;
  auto video_ids = VideoIds(data_dir / "content");
  if (!video_ids.ok()) return video_ids.status();
  for (const std::string& video_id : *video_ids) {
    auto infos = engine->content_->List(video_id);
    if (!infos.ok()) return infos.status();
    if (infos->empty()) {
      // Left behind by deletes or abandoned uploads; fails harmlessly if a file appeared.
      (void)env.RemoveDir(data_dir / "content" / video_id);
    }
    for (const ContentInfo& info : *infos) {
      ++files;
      bytes += info.size;
    }
  }
  engine->files_ = files;
  engine->bytes_ = bytes;
  spdlog::info("storage at {}: {} files, {} bytes; {} copies quarantined so far (last seq {})",
               data_dir.string(), files, bytes, engine->quarantine_->List(0, 1).copies.size(),
               engine->quarantine_->last_seq());
  return engine;
}
std::shared_mutex& StorageEngine::LockFor(std::string_view video_id) {
  return locks_[std::hash<std::string_view>{}(video_id) % locks_.size()];
}

fs::path StorageEngine::DataPath(std::string_view video_id, std::string_view name) const {
  return data_dir_ / "content" / video_id / name;
}
absl::StatusOr<std::unique_ptr<StorageEngine::Upload>> StorageEngine::StartUpload(
    std::string_view video_id, std::string_view name, std::optional<uint64_t> expected_size,
    bool sender_block_digests, BlockAlgorithm block_algorithm) {
  if (absl::Status s = Validate(video_id, name); !s.ok()) return s;
  if (expected_size) {
    auto usage = Usage();
    if (!usage.ok()) return usage.status();
    if (*expected_size > usage->free_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("no room for ", *expected_size, " bytes: ", usage->free_bytes, " free"));
    }
  }
  const fs::path dir = data_dir_ / "content" / video_id;
  {
    // Under the video's lock: a DeleteVideo may be removing the directory.
    std::shared_lock lock(LockFor(video_id));
    if (absl::Status s = env_.CreateDir(dir); !s.ok()) return s;
  }
  const fs::path temp =
      dir / absl::StrCat(ToAbsl(kUploadPrefix), ToAbsl(name), ".", RandomSuffix());
  auto file = env_.NewWritableFile(temp);
  if (!file.ok()) return file.status();
  return std::unique_ptr<Upload>(new Upload(*this, std::string(video_id), std::string(name),
                                            expected_size, sender_block_digests, block_algorithm,
                                            temp, *std::move(file)));
}

absl::StatusOr<StoredFile> StorageEngine::CommitUpload(Upload& upload, const std::string& sha256) {
  const std::string& video_id = upload.video_id_;
  const std::string& name = upload.name_;
  const fs::path dir = data_dir_ / "content" / video_id;
  std::unique_ptr<WritableFile> file = std::move(upload.file_);
  // 1. The data durable in its temp file, and the temp file's entry too.
  absl::Status synced = file->Sync();
  absl::StatusOr<FileStat> stat = synced.ok() ? file->Stat() : synced;
  if (absl::Status closed = file->Close(); stat.ok() && !closed.ok()) stat = closed;
  if (stat.ok()) {
    if (absl::Status s = env_.SyncDir(dir); !s.ok()) stat = s;
  }
  if (!stat.ok()) {
    upload.Abandon();
    return stat.status();
  }
  ChecksumRecord record{.sha256 = sha256,
                        .mtime_unix_nanos = stat->mtime_unix_nanos,
                        .etag = EtagOf(*stat),
                        .size = stat->size,
                        .block_algorithm = upload.block_algorithm(),
                        .blocks = std::move(upload.blocks_)};

  std::unique_lock lock(LockFor(video_id));
  absl::StatusOr<FileStat> before = env_.Stat(DataPath(video_id, name));
  std::optional<uint64_t> size_before;
  if (before.ok()) size_before = before->size;
  absl::StatusOr<std::optional<ChecksumRecord>> old_record = checksums_.Read(video_id, name);
  // Puts the old record back after a failure past step 2 (the old data is
  // still in place then). Best effort: if this fails too, the old version
  // looks damaged and is repaired from a replica like any damaged copy.
  auto restore_record = [&] {
    absl::Status s = old_record.ok() && *old_record ? checksums_.Write(video_id, name, **old_record)
                                                    : checksums_.Remove(video_id, name);
    if (!s.ok()) {
      spdlog::error("cannot restore the record of {}/{}: {}", video_id, name, s.ToString());
    }
  };
  // 2. The record of the new version, durable: from here the commit is decided.
  if (absl::Status s = checksums_.Write(video_id, name, record); !s.ok()) {
    // Only a failed directory fsync leaves the new record in place.
    restore_record();
    upload.Abandon();
    return s;
  }
  // 3. The data renamed in, durably.
  if (absl::Status s = env_.Rename(upload.temp_, DataPath(video_id, name)); !s.ok()) {
    restore_record();
    upload.Abandon();
    return s;
  }
  upload.temp_exists_ = false;
  if (absl::Status s = env_.SyncDir(dir); !s.ok()) {
    // Visible but not known durable: take it back out rather than acknowledge
    // it (the previous version is gone already).
    Account(size_before, record.size);
    if (auto removed = DeleteLocked(video_id, name); !removed.ok()) {
      spdlog::error("cannot remove failed upload {}/{}: {}", video_id, name,
                    removed.status().ToString());
    }
    return s;
  }
  Account(size_before, record.size);
  return MakeStoredFile(video_id, name, record);
}
absl::StatusOr<std::unique_ptr<StorageEngine::Reader>> StorageEngine::OpenReader(
    std::string_view video_id, std::string_view name, uint64_t offset,
    std::optional<uint64_t> length) {
  return OpenVerified(video_id, name, offset, length, "read");
}

absl::StatusOr<std::unique_ptr<StorageEngine::Reader>> StorageEngine::OpenVerified(
    std::string_view video_id, std::string_view name, uint64_t offset,
    std::optional<uint64_t> length, const char* found_by) {
  if (absl::Status s = Validate(video_id, name); !s.ok()) return s;
  Inspection inspection;
  {
    std::shared_lock lock(LockFor(video_id));
    std::unique_ptr<ReadableFile> data;
    std::optional<FileStat> opened;
    auto file = env_.OpenReadable(DataPath(video_id, name));
    if (file.ok()) {
      data = *std::move(file);
      auto stat = data->Stat();
      if (!stat.ok()) return stat.status();
      opened = *stat;
    } else if (!absl::IsNotFound(file.status())) {
      return file.status();
    }
    auto inspected = Inspect(video_id, name, opened);
    if (!inspected.ok()) return inspected.status();
    inspection = *std::move(inspected);
    if (!inspection.damage) {
      const ChecksumRecord& record = *inspection.record;
      if (offset > record.size) {
        return absl::OutOfRangeError(absl::StrCat("offset ", offset, " is past the end of ",
                                                  ToAbsl(video_id), "/", ToAbsl(name), " (",
                                                  record.size, " bytes)"));
      }
      const uint64_t end = length ? offset + std::min(*length, record.size - offset) : record.size;
      StoredFile stored = MakeStoredFile(video_id, name, record);
      return std::unique_ptr<Reader>(new Reader(*this, std::move(data), std::move(stored), record,
                                                opened->inode, offset, end, found_by));
    }
  }
  // Quarantined outside the shared lock: it takes the video's lock exclusively.
  return QuarantineCopy(
      video_id, name, *inspection.damage, inspection.record ? inspection.record->sha256 : "",
      inspection.data ? std::optional<uint64_t>(inspection.data->inode) : std::nullopt, found_by,
      inspection.detail);
}

absl::StatusOr<StoredFile> StorageEngine::Stat(std::string_view video_id, std::string_view name) {
  if (absl::Status s = Validate(video_id, name); !s.ok()) return s;
  Inspection inspection;
  {
    std::shared_lock lock(LockFor(video_id));
    auto inspected = Inspect(video_id, name, std::nullopt);
    if (!inspected.ok()) return inspected.status();
    inspection = *std::move(inspected);
    if (!inspection.damage) return MakeStoredFile(video_id, name, *inspection.record);
  }
  return QuarantineCopy(
      video_id, name, *inspection.damage, inspection.record ? inspection.record->sha256 : "",
      inspection.data ? std::optional<uint64_t>(inspection.data->inode) : std::nullopt, "read",
      inspection.detail);
}
absl::StatusOr<bool> StorageEngine::DeleteLocked(std::string_view video_id, std::string_view name) {
  const fs::path dir = data_dir_ / "content" / video_id;
  const fs::path path = DataPath(video_id, name);
  absl::StatusOr<FileStat> data = env_.Stat(path);
  if (!data.ok() && !absl::IsNotFound(data.status())) return data.status();
  if (data.ok()) {
    // Renamed aside first (durably), so that a crash before the record is
    // gone leaves a delete Open() can finish, not data without a record.
    const fs::path aside =
        dir / absl::StrCat(ToAbsl(kDeletePrefix), ToAbsl(name), ".", RandomSuffix());
    if (absl::Status s = env_.Rename(path, aside); !s.ok()) return s;
    Account(data->size, std::nullopt);
    if (absl::Status s = env_.SyncDir(dir); !s.ok()) return s;
    if (absl::Status s = checksums_.Remove(video_id, name); !s.ok()) return s;
    if (absl::Status s = env_.Unlink(aside); !s.ok()) {
      spdlog::warn("cannot remove deleted {}: {}", aside.string(), s.ToString());
    }
    return true;
  }
  auto record = checksums_.Read(video_id, name);
  if (record.ok() && !*record) return NotFound(video_id, name);
  // A record without data (a damaged copy): removing it is the delete.
  if (absl::Status s = checksums_.Remove(video_id, name); !s.ok()) return s;
  return false;
}

absl::Status StorageEngine::Delete(std::string_view video_id, std::string_view name) {
  if (absl::Status s = Validate(video_id, name); !s.ok()) return s;
  std::unique_lock lock(LockFor(video_id));
  return DeleteLocked(video_id, name).status();
}

absl::StatusOr<uint64_t> StorageEngine::DeleteVideo(std::string_view video_id) {
  if (!IsValidVideoId(video_id)) return InvalidVideoId(video_id);
  std::unique_lock lock(LockFor(video_id));
  auto names = ScrubNames(video_id);
  if (!names.ok()) return names.status();
  // Delete()'s protocol in three batches, one directory fsync each, rather
  // than three fsyncs per file: every data file renamed aside, then every
  // record removed, then the renamed data unlinked.
  const fs::path dir = data_dir_ / "content" / video_id;
  std::vector<fs::path> aside;
  // Names whose data is gone (renamed aside, or damaged: never there), so
  // whose records go; a file whose rename failed keeps data and record.
  std::vector<std::string> gone;
  absl::Status failed;
  for (const std::string& name : *names) {
    absl::StatusOr<FileStat> data = env_.Stat(DataPath(video_id, name));
    if (!data.ok()) {
      if (absl::IsNotFound(data.status())) {
        gone.push_back(name);
      } else {
        failed.Update(data.status());
      }
      continue;
    }
    fs::path to = dir / absl::StrCat(ToAbsl(kDeletePrefix), name, ".", RandomSuffix());
    if (absl::Status s = env_.Rename(DataPath(video_id, name), to); !s.ok()) {
      failed.Update(s);
      continue;
    }
    Account(data->size, std::nullopt);
    aside.push_back(std::move(to));
    gone.push_back(name);
  }
  if (!aside.empty()) {
    // Until this is durable the records must stay (a crash could bring the
    // data back); the renamed files are finished by Open() if need be.
    if (absl::Status s = env_.SyncDir(dir); !s.ok()) return s;
  }
  const fs::path records = checksums_.root() / video_id;
  bool removed_records = false;
  for (const std::string& name : gone) {
    absl::Status s = env_.Unlink(records / name);
    if (s.ok()) {
      removed_records = true;
    } else if (!absl::IsNotFound(s)) {
      failed.Update(s);
    }
  }
  if (removed_records) {
    if (absl::Status s = env_.SyncDir(records); !s.ok()) failed.Update(s);
  }
  for (const fs::path& path : aside) {
    if (absl::Status s = env_.Unlink(path); !s.ok()) {
      spdlog::warn("cannot remove deleted {}: {}", path.string(), s.ToString());
    }
  }
  if (!failed.ok()) return failed;
  // Fails harmlessly while an upload's temp file is still there.
  (void)env_.RemoveDir(dir);
  checksums_.RemoveVideoDirIfEmpty(video_id);
  return aside.size();
}
absl::StatusOr<StorageUsage> StorageEngine::Usage() const {
  struct statvfs fs_stats;
  if (statvfs(data_dir_.c_str(), &fs_stats) != 0) return ErrnoStatus(errno, "statvfs", data_dir_);
  return StorageUsage{
      .files = files_.load(),
      .bytes_used = bytes_.load(),
      .free_bytes = static_cast<uint64_t>(fs_stats.f_bavail) * fs_stats.f_frsize,
      .total_bytes = static_cast<uint64_t>(fs_stats.f_blocks) * fs_stats.f_frsize,
  };
}

void StorageEngine::Account(std::optional<uint64_t> size_before,
                            std::optional<uint64_t> size_after) {
  if (size_before) {
    files_ -= 1;
    bytes_ -= *size_before;
  }
  if (size_after) {
    files_ += 1;
    bytes_ += *size_after;
  }
}

StorageEngine::Upload::Upload(StorageEngine& engine, std::string video_id, std::string name,
                              std::optional<uint64_t> expected_size, bool sender_block_digests,
                              BlockAlgorithm block_algorithm, fs::path temp,
                              std::unique_ptr<WritableFile> file)
    : engine_(engine),
      video_id_(std::move(video_id)),
      name_(std::move(name)),
      expected_size_(expected_size),
      sender_block_digests_(sender_block_digests),
      temp_(std::move(temp)),
      file_(std::move(file)),
      block_hasher_(block_algorithm) {}

StorageEngine::Upload::~Upload() { Abandon(); }

void StorageEngine::Upload::Abandon() {
  file_.reset();
  if (!temp_exists_) return;
  temp_exists_ = false;
  if (absl::Status s = engine_.env_.Unlink(temp_); !s.ok() && !absl::IsNotFound(s)) {
    spdlog::warn("cannot remove abandoned upload {}: {}", temp_.string(), s.ToString());
  }
}

absl::Status StorageEngine::Upload::Append(std::span<const char> data) {
  if (!file_) return absl::FailedPreconditionError("upload is not usable");
  if (expected_size_ && data.size() > *expected_size_ - written_) {
    Abandon();
    return absl::DataLossError(
        absl::StrCat("received more than the announced ", *expected_size_, " bytes"));
  }
  if (absl::Status s = file_->Append(data); !s.ok()) {
    Abandon();
    return s;
  }
  // With the sender's block digests the blocks are the one pass over the data.
  if (!sender_block_digests_) hasher_.Update(data);
  written_ += data.size();
  // Block checksums, computed as the bytes go by.
  while (!data.empty()) {
    const size_t take = std::min<uint64_t>(data.size(), kChecksumBlockBytes - block_filled_);
    block_hasher_.Update(data.first(take));
    block_filled_ += take;
    data = data.subspan(take);
    if (block_filled_ == kChecksumBlockBytes) {
      blocks_.push_back(block_hasher_.Finish());
      block_filled_ = 0;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<StoredFile> StorageEngine::Upload::Commit(std::string_view expected_sha256) {
  return Commit(expected_sha256, {});
}

absl::StatusOr<StoredFile> StorageEngine::Upload::Commit(
    std::string_view expected_sha256, std::span<const BlockDigest> sender_blocks) {
  if (!file_) return absl::FailedPreconditionError("upload is not usable");
  std::optional<std::string> expected = NormalizeSha256Hex(expected_sha256);
  if (!expected) {
    Abandon();
    return absl::InvalidArgumentError(absl::StrCat("expected sha256 must be 64 hex digits, got ",
                                                   expected_sha256.size(), " characters"));
  }
  if (expected_size_ && written_ != *expected_size_) {
    Abandon();
    return absl::DataLossError(
        absl::StrCat("received ", written_, " bytes, announced ", *expected_size_));
  }
  if (block_filled_ > 0) blocks_.push_back(block_hasher_.Finish());
  const bool sha256_blocks = block_algorithm() == BlockAlgorithm::kSha256;
  std::string actual;
  if (!sender_block_digests_) {
    actual = hasher_.FinishHex();
  } else if (absl::Status s = CheckSenderBlocks(sender_blocks); !s.ok()) {
    Abandon();
    return s;
  } else if (sha256_blocks && blocks_.size() <= 1) {
    // At most one block: its digest is the whole file's, so the whole-file
    // digest is checked too.
    actual = blocks_.empty() ? Sha256::HexOf("") : Sha256::Hex(blocks_[0]);
  } else if (blocks_.empty()) {
    // An empty file: no block vouches for the sender's digest.
    actual = Sha256::HexOf("");
  } else {
    // Every block is the sender's, so is the whole file: its digest is the
    // sender's (computed over the same bytes it sent).
    actual = *expected;
  }
  if (actual != *expected) {
    Abandon();
    return absl::DataLossError(absl::StrCat("checksum mismatch: received data has sha256 ", actual,
                                            ", expected ", *expected));
  }
  // One SHA-256 block: its checksum is the whole file's. Other algorithms
  // record every block.
  if (sha256_blocks && blocks_.size() <= 1) blocks_.clear();
  return engine_.CommitUpload(*this, actual);
}

absl::Status StorageEngine::Upload::CheckSenderBlocks(
    std::span<const BlockDigest> sender_blocks) const {
  if (sender_blocks.size() != blocks_.size()) {
    return absl::DataLossError(absl::StrCat("received ", blocks_.size(),
                                            " blocks of data, the sender sent digests of ",
                                            sender_blocks.size()));
  }
  for (size_t i = 0; i < blocks_.size(); ++i) {
    if (blocks_[i] != sender_blocks[i]) {
      return absl::DataLossError(
          absl::StrCat("checksum mismatch: block ", i, " of the received data has ",
                       ToAbsl(BlockAlgorithmName(block_algorithm())), " ",
                       BlockDigestHex(block_algorithm(), blocks_[i]), ", the sender's is ",
                       BlockDigestHex(block_algorithm(), sender_blocks[i])));
    }
  }
  return absl::OkStatus();
}

}  // namespace streamgrid::storage
