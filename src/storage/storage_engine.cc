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

namespace streamgrid::storage {
namespace {

namespace fs = std::filesystem;

// Temp-file prefixes inside content/<video_id>/ (see the class comment).
constexpr std::string_view kUploadPrefix = ".tmp-up-";
constexpr std::string_view kDeletePrefix = ".tmp-del-";
// Written once a store has the current layout (records before data, block
// checksums); a store without it is upgraded by Open().
constexpr std::string_view kFormatFile = "FORMAT";
constexpr std::string_view kFormat = "streamgrid-storage 2\n";

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

// The name a temp file with `prefix` stands for: ".tmp-up-<name>.<random>".
std::optional<std::string> TempTarget(std::string_view file, std::string_view prefix) {
  if (!file.starts_with(prefix)) return std::nullopt;
  std::string_view rest = file.substr(prefix.size());
  const size_t dot = rest.rfind('.');
  if (dot == std::string_view::npos) return std::nullopt;
  rest = rest.substr(0, dot);
  if (!IsValidContentName(rest)) return std::nullopt;
  return std::string(rest);
}

// Whole-file SHA-256 and block checksums of a data file, read in blocks.
struct Hashes {
  std::string sha256;
  std::vector<Sha256::Digest> blocks;
  uint64_t size = 0;
};

absl::StatusOr<Hashes> HashData(ReadableFile& file) {
  Sha256 whole, block;
  std::vector<char> buffer(kChecksumBlockBytes);
  std::vector<Sha256::Digest> blocks;
  uint64_t offset = 0;
  while (true) {
    absl::StatusOr<size_t> n = file.ReadAt(offset, buffer);
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    std::span<const char> bytes(buffer.data(), *n);
    whole.Update(bytes);
    block.Reset();
    block.Update(bytes);
    blocks.push_back(block.Finish());
    offset += *n;
    if (*n < buffer.size()) break;
  }
  if (blocks.size() <= 1) blocks.clear();
  return Hashes{.sha256 = whole.FinishHex(), .blocks = std::move(blocks), .size = offset};
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

// "video_id/name" ↔ a page token. Tokens are opaque to clients; this one only
// has to survive a round trip and be validated on the way back in.
std::string MakePageToken(std::string_view video_id, std::string_view name) {
  return absl::StrCat(ToAbsl(video_id), "/", ToAbsl(name));
}

absl::StatusOr<std::pair<std::string, std::string>> ParsePageToken(std::string_view token) {
  const size_t slash = token.find('/');
  if (slash == std::string_view::npos || !IsValidVideoId(token.substr(0, slash)) ||
      !IsValidContentName(token.substr(slash + 1))) {
    return absl::InvalidArgumentError("malformed page token");
  }
  return std::make_pair(std::string(token.substr(0, slash)), std::string(token.substr(slash + 1)));
}

// Tells whether a key is in a listing's partitions (see ListOptions). One
// hashing context serves every key, so checking one allocates nothing.
class PartitionFilter {
 public:
  // `bits` and `partitions` must have been validated.
  PartitionFilter(int bits, std::span<const uint32_t> partitions)
      : shift_(64 - bits), wanted_(size_t{1} << bits) {
    for (uint32_t partition : partitions) wanted_[partition] = true;
  }

  bool Matches(std::string_view video_id, std::string_view name) {
    static constexpr std::string_view kSlash = "/";
    hasher_.Reset();
    hasher_.Update(video_id);
    hasher_.Update(kSlash);
    hasher_.Update(name);
    const Sha256::Digest digest = hasher_.Finish();
    uint64_t position = 0;
    for (int i = 0; i < 8; ++i) position = position << 8 | digest[i];
    return wanted_[position >> shift_];
  }

 private:
  const int shift_;
  std::vector<bool> wanted_;  // indexed by partition
  Sha256 hasher_;
};

absl::Status ValidatePartitions(const ListOptions& options) {
  if (options.partitions.empty()) return absl::OkStatus();
  const int bits = options.partition_bits;
  if (bits < 1 || bits > kMaxListPartitionBits) {
    return absl::InvalidArgumentError(absl::StrCat(
        "partition_bits must be 1 to ", kMaxListPartitionBits, " with partitions, got ", bits));
  }
  for (uint32_t partition : options.partitions) {
    if (partition >> bits != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("partition ", partition, " does not fit in ", bits, " bits"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string EtagOf(const FileStat& stat) {
  return absl::StrFormat("\"%x-%x-%x\"", stat.inode, stat.size,
                         static_cast<uint64_t>(stat.mtime_unix_nanos));
}

// What Inspect() found.
struct StorageEngine::Inspection {
  std::optional<ChecksumRecord> record;
  std::optional<FileStat> data;
  std::optional<Damage> damage;
  std::string detail;
};

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

absl::Status StorageEngine::Recover() {
  const fs::path content_root = data_dir_ / "content";
  auto video_ids = VideoIds(content_root);
  if (!video_ids.ok()) return video_ids.status();
  int finished_commits = 0, finished_deletes = 0, removed = 0;
  for (const std::string& video_id : *video_ids) {
    const fs::path dir = content_root / video_id;
    auto names = env_.ListDir(dir);
    if (!names.ok()) return names.status();
    bool changed = false;
    for (const std::string& file : *names) {
      if (!file.starts_with(kTempPrefix)) continue;
      const fs::path path = dir / file;
      auto stat = env_.Stat(path);
      if (!stat.ok()) return stat.status();
      std::optional<std::string> up = TempTarget(file, kUploadPrefix);
      std::optional<std::string> del = TempTarget(file, kDeletePrefix);
      const std::string* target = up ? &*up : del ? &*del : nullptr;
      std::optional<ChecksumRecord> record;
      if (target != nullptr) {
        auto read = checksums_.Read(video_id, *target);
        if (read.ok()) record = *std::move(read);
      }
      const bool named = record && !record->legacy && record->etag == EtagOf(*stat);
      if (up && named) {
        // The record of this very file is durable: the commit was decided.
        if (absl::Status s = env_.Rename(path, dir / *up); !s.ok()) return s;
        ++finished_commits;
      } else if (del && named) {
        if (absl::Status s = checksums_.Remove(video_id, *del); !s.ok()) return s;
        if (absl::Status s = env_.Unlink(path); !s.ok() && !absl::IsNotFound(s)) return s;
        ++finished_deletes;
      } else {
        if (absl::Status s = env_.Unlink(path); !s.ok() && !absl::IsNotFound(s)) return s;
        ++removed;
      }
      changed = true;
    }
    if (changed) {
      if (absl::Status s = env_.SyncDir(dir); !s.ok()) return s;
    }
  }
  // Temp files of record writes a crash interrupted.
  auto record_videos = checksums_.Videos();
  if (!record_videos.ok()) return record_videos.status();
  for (const std::string& video_id : *record_videos) {
    auto names = checksums_.Names(video_id, /*remove_temps=*/true);
    if (!names.ok()) return names.status();
    if (names->empty()) checksums_.RemoveVideoDirIfEmpty(video_id);
  }
  if (finished_commits + finished_deletes + removed > 0) {
    spdlog::info("crash recovery: {} commits and {} deletes finished, {} temp files removed",
                 finished_commits, finished_deletes, removed);
  }
  return absl::OkStatus();
}

absl::Status StorageEngine::UpgradeLegacyStore() {
  const fs::path marker = data_dir_ / kFormatFile;
  if (env_.Stat(marker).ok()) return absl::OkStatus();
  // A store of the first layout (or a new one): the record was written after
  // the data was renamed in, so a missing or stale record was a crash window
  // and the data is the truth. Recompute those, add block checksums to every
  // record, and drop records without data, once.
  uint64_t upgraded = 0, recomputed = 0, orphans = 0, corrupt = 0;
  auto video_ids = VideoIds(data_dir_ / "content");
  if (!video_ids.ok()) return video_ids.status();
  for (const std::string& video_id : *video_ids) {
    auto infos = content_->List(video_id);
    if (!infos.ok()) return infos.status();
    for (const ContentInfo& info : *infos) {
      auto record = checksums_.Read(video_id, info.name);
      if (record.ok() && *record && !(*record)->legacy && (*record)->etag == info.etag) continue;
      auto file = env_.OpenReadable(DataPath(video_id, info.name));
      if (!file.ok()) return file.status();
      auto stat = (*file)->Stat();
      if (!stat.ok()) return stat.status();
      auto hashes = HashData(**file);
      if (!hashes.ok()) return hashes.status();
      const bool trusted = record.ok() && *record && (*record)->etag == EtagOf(*stat);
      if (trusted && (*record)->sha256 != hashes->sha256) {
        ++corrupt;
        (void)QuarantineCopy(video_id, info.name, Damage::kCorrupt, (*record)->sha256, stat->inode,
                             "scrub", "the data does not match its checksum");
        continue;
      }
      trusted ? ++upgraded : ++recomputed;
      ChecksumRecord fresh{.sha256 = hashes->sha256,
                           .mtime_unix_nanos = stat->mtime_unix_nanos,
                           .etag = EtagOf(*stat),
                           .size = stat->size,
                           .blocks = std::move(hashes->blocks)};
      if (absl::Status s = checksums_.Write(video_id, info.name, fresh, /*sync=*/false); !s.ok()) {
        return s;
      }
    }
  }
  auto record_videos = checksums_.Videos();
  if (!record_videos.ok()) return record_videos.status();
  for (const std::string& video_id : *record_videos) {
    auto names = checksums_.Names(video_id);
    if (!names.ok()) return names.status();
    for (const std::string& name : *names) {
      if (absl::IsNotFound(env_.Stat(DataPath(video_id, name)).status())) {
        if (absl::Status s = env_.Unlink(checksums_.root() / video_id / name); s.ok()) ++orphans;
      }
    }
    checksums_.RemoveVideoDirIfEmpty(video_id);
  }
  // One file-system sync instead of two fsyncs per record.
  if (absl::Status s = SyncFileSystem(data_dir_); !s.ok()) return s;
  if (absl::Status s = env_.WriteFileAtomically(marker, kFormat); !s.ok()) return s;
  if (upgraded + recomputed + orphans + corrupt > 0) {
    spdlog::info(
        "upgraded the store at {}: {} records given block checksums, {} recomputed, {} without "
        "data removed, {} corrupt copies quarantined",
        data_dir_.string(), upgraded, recomputed, orphans, corrupt);
  }
  return absl::OkStatus();
}

std::shared_mutex& StorageEngine::LockFor(std::string_view video_id) {
  return locks_[std::hash<std::string_view>{}(video_id) % locks_.size()];
}

fs::path StorageEngine::DataPath(std::string_view video_id, std::string_view name) const {
  return data_dir_ / "content" / video_id / name;
}

absl::StatusOr<StorageEngine::Inspection> StorageEngine::Inspect(
    std::string_view video_id, std::string_view name, const std::optional<FileStat>& opened) {
  Inspection result;
  if (opened) {
    result.data = *opened;
  } else {
    absl::StatusOr<FileStat> stat = env_.Stat(DataPath(video_id, name));
    if (stat.ok()) {
      result.data = *stat;
    } else if (!absl::IsNotFound(stat.status())) {
      return stat.status();
    }
  }
  absl::StatusOr<std::optional<ChecksumRecord>> record = checksums_.Read(video_id, name);
  bool unreadable = false;
  if (record.ok()) {
    result.record = *std::move(record);
  } else if (absl::IsDataLoss(record.status())) {
    unreadable = true;
  } else {
    return record.status();
  }
  if (!result.data) {
    if (!result.record && !unreadable) return NotFound(video_id, name);
    result.damage = Damage::kMissing;
    result.detail = "its data file is gone";
  } else if (!result.record || result.record->legacy) {
    result.damage = Damage::kUnverifiable;
    result.detail = unreadable ? "its checksum record is unreadable" : "it has no checksum record";
  } else if (result.data->size != result.record->size) {
    result.damage = Damage::kWrongSize;
    result.detail =
        absl::StrCat("it has ", result.data->size, " bytes, ", result.record->size, " recorded");
  } else if (EtagOf(*result.data) != result.record->etag) {
    result.damage = Damage::kCorrupt;
    result.detail = "its data file was changed (inode or mtime differ from the record)";
  }
  return result;
}

absl::Status StorageEngine::QuarantineCopy(std::string_view video_id, std::string_view name,
                                           Damage damage, const std::string& expected_sha256,
                                           std::optional<uint64_t> data_inode, const char* found_by,
                                           std::string_view detail) {
  absl::Status answer = absl::DataLossError(
      absl::StrCat("copy of ", ToAbsl(video_id), "/", ToAbsl(name), " is damaged (",
                   DamageName(damage), ": ", ToAbsl(detail), "); it is quarantined"));
  std::unique_lock lock(LockFor(video_id));
  const fs::path path = DataPath(video_id, name);
  absl::StatusOr<FileStat> now = env_.Stat(path);
  std::optional<FileStat> data;
  if (now.ok()) data = *now;
  // Another version replaced the damaged one meanwhile (or a missing file was
  // stored again): nothing to take out of service.
  if (data_inode ? (!data || data->inode != *data_inode) : data.has_value()) return answer;
  spdlog::error("{}/{} found damaged by {}: {}: {}", video_id, name, found_by, DamageName(damage),
                detail);
  absl::StatusOr<QuarantinedCopy> added =
      quarantine_->Add(QuarantinedCopy{.video_id = std::string(video_id),
                                       .name = std::string(name),
                                       .damage = damage,
                                       .expected_sha256 = expected_sha256,
                                       .found_by = found_by},
                       data ? std::optional<fs::path>(path) : std::nullopt);
  if (!added.ok()) {
    spdlog::error("quarantining {}/{}: {}", video_id, name, added.status().ToString());
  }
  // The copy is out of service once its data left (or never was there);
  // the record goes too, so the file is NOT_FOUND from now on.
  if (!data || !env_.Stat(path).ok()) {
    if (absl::Status s = checksums_.Remove(video_id, name); !s.ok()) {
      spdlog::error("removing the record of quarantined {}/{}: {}", video_id, name, s.ToString());
    }
    if (data) Account(data->size, std::nullopt);
  }
  return answer;
}

absl::StatusOr<std::unique_ptr<StorageEngine::Upload>> StorageEngine::StartUpload(
    std::string_view video_id, std::string_view name, std::optional<uint64_t> expected_size) {
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
                                            expected_size, temp, *std::move(file)));
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

absl::StatusOr<std::vector<std::string>> StorageEngine::ScrubVideoIds() {
  auto data = VideoIds(data_dir_ / "content");
  if (!data.ok()) return data.status();
  auto records = checksums_.Videos();
  if (!records.ok()) return records.status();
  std::set<std::string> all(data->begin(), data->end());
  all.insert(records->begin(), records->end());
  return std::vector<std::string>(all.begin(), all.end());
}

absl::StatusOr<std::vector<std::string>> StorageEngine::ScrubNames(std::string_view video_id) {
  if (!IsValidVideoId(video_id)) return InvalidVideoId(video_id);
  std::set<std::string> all;
  auto data = env_.ListDir(data_dir_ / "content" / video_id);
  if (data.ok()) {
    for (std::string& name : *data) {
      if (IsValidContentName(name)) all.insert(std::move(name));
    }
  } else if (!absl::IsNotFound(data.status())) {
    return data.status();
  }
  auto records = checksums_.Names(video_id);
  if (!records.ok()) return records.status();
  all.insert(records->begin(), records->end());
  return std::vector<std::string>(all.begin(), all.end());
}

absl::StatusOr<StorageEngine::ScrubResult> StorageEngine::ScrubFile(
    std::string_view video_id, std::string_view name, const std::function<bool(uint64_t)>& pace) {
  ScrubResult result;
  auto reader = OpenVerified(video_id, name, 0, std::nullopt, "scrub");
  if (!reader.ok()) {
    if (absl::IsDataLoss(reader.status())) {
      result.damaged = true;
      return result;
    }
    return reader.status();
  }
  Sha256 whole;
  std::vector<char> buffer(std::min<uint64_t>(kChecksumBlockBytes, (*reader)->file().size + 1));
  while (true) {
    if (!pace(buffer.size())) return absl::CancelledError("scrub stopped");
    absl::StatusOr<size_t> n = (*reader)->Read(buffer);
    if (!n.ok()) {
      if (absl::IsDataLoss(n.status())) {
        result.damaged = true;
        return result;
      }
      return n.status();
    }
    if (*n == 0) break;
    whole.Update(std::span<const char>(buffer.data(), *n));
    result.bytes_checked += *n;
  }
  // The blocks vouch for every byte; this also checks the record's own
  // whole-file checksum, which is what clients compare with.
  const std::string sha256 = whole.FinishHex();
  if (sha256 != (*reader)->file().sha256) {
    result.damaged = true;
    (void)QuarantineCopy(video_id, name, Damage::kCorrupt, (*reader)->file().sha256,
                         (*reader)->inode_, "scrub", absl::StrCat("the data hashes to ", sha256));
  }
  return result;
}

absl::StatusOr<StoredFilePage> StorageEngine::List(std::string_view video_id,
                                                   std::string_view page_token, size_t page_size) {
  return List(ListOptions{.video_id = std::string(video_id),
                          .page_token = std::string(page_token),
                          .page_size = static_cast<uint32_t>(std::min(page_size, kMaxPageSize))});
}

absl::StatusOr<StoredFilePage> StorageEngine::List(const ListOptions& options, size_t scan_limit) {
  const std::string& video_id = options.video_id;
  if (!video_id.empty() && !IsValidVideoId(video_id)) return InvalidVideoId(video_id);
  if (absl::Status s = ValidatePartitions(options); !s.ok()) return s;
  size_t page_size = options.page_size;
  if (page_size == 0 || page_size > kMaxPageSize) page_size = kMaxPageSize;
  scan_limit = std::max<size_t>(scan_limit, 1);
  std::string after_video, after_name;
  if (!options.page_token.empty()) {
    auto parsed = ParsePageToken(options.page_token);
    if (!parsed.ok()) return parsed.status();
    std::tie(after_video, after_name) = *std::move(parsed);
    if (!video_id.empty() && after_video != video_id) {
      return absl::InvalidArgumentError("page token belongs to another listing");
    }
  }
  std::optional<PartitionFilter> filter;
  if (!options.partitions.empty()) filter.emplace(options.partition_bits, options.partitions);
  std::vector<std::string> video_ids;
  if (!video_id.empty()) {
    video_ids.emplace_back(video_id);
  } else {
    auto all = VideoIds(content_->root());
    if (!all.ok()) return all.status();
    video_ids = *std::move(all);
  }

  StoredFilePage page;
  size_t scanned = 0;
  // The last file examined: where the next page resumes. Reassigned per file,
  // so the strings soon stop allocating.
  std::string last_video, last_name;
  auto first = std::lower_bound(video_ids.begin(), video_ids.end(), after_video);
  for (auto it = first; it != video_ids.end(); ++it) {
    const std::string& id = *it;
    std::shared_lock lock(LockFor(id));
    auto infos = content_->List(id);
    if (!infos.ok()) return infos.status();
    auto start = infos->begin();
    if (id == after_video) {
      // Sorted by name: skip what earlier pages examined.
      start = std::upper_bound(
          infos->begin(), infos->end(), after_name,
          [](const std::string& name, const ContentInfo& info) { return name < info.name; });
    }
    for (auto info = start; info != infos->end(); ++info) {
      if (page.files.size() == page_size || scanned == scan_limit) {
        // There is more to examine. `scanned` > 0 here (page_size and
        // scan_limit are at least 1), so last_name is set.
        page.next_page_token = MakePageToken(last_video, last_name);
        return page;
      }
      ++scanned;
      last_video.assign(id);
      last_name.assign(info->name);
      if (filter && !filter->Matches(id, info->name)) continue;
      // Only files whose record vouches for them: a damaged copy is not one
      // to offer (a read or the scrubber quarantines it).
      auto record = checksums_.Read(id, info->name);
      if (!record.ok()) {
        if (absl::IsDataLoss(record.status())) continue;
        return record.status();
      }
      if (!*record || (*record)->legacy || (*record)->etag != info->etag) continue;
      page.files.push_back(MakeStoredFile(id, info->name, **record));
    }
  }
  return page;
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
                              std::optional<uint64_t> expected_size, fs::path temp,
                              std::unique_ptr<WritableFile> file)
    : engine_(engine),
      video_id_(std::move(video_id)),
      name_(std::move(name)),
      expected_size_(expected_size),
      temp_(std::move(temp)),
      file_(std::move(file)) {}

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
  hasher_.Update(data);
  written_ += data.size();
  // Block checksums, computed as the bytes go by.
  while (!data.empty()) {
    const size_t take = std::min<uint64_t>(data.size(), kChecksumBlockBytes - block_filled_);
    block_hasher_.Update(data.first(take));
    block_filled_ += take;
    data = data.subspan(take);
    if (block_filled_ == kChecksumBlockBytes) {
      blocks_.push_back(block_hasher_.Finish());
      block_hasher_.Reset();
      block_filled_ = 0;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<StoredFile> StorageEngine::Upload::Commit(std::string_view expected_sha256) {
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
  std::string actual = hasher_.FinishHex();
  if (actual != *expected) {
    Abandon();
    return absl::DataLossError(absl::StrCat("checksum mismatch: received data has sha256 ", actual,
                                            ", expected ", *expected));
  }
  if (block_filled_ > 0) blocks_.push_back(block_hasher_.Finish());
  // One block: its checksum is the whole file's.
  if (blocks_.size() <= 1) blocks_.clear();
  return engine_.CommitUpload(*this, actual);
}

StorageEngine::Reader::Reader(StorageEngine& engine, std::unique_ptr<ReadableFile> data,
                              StoredFile file, ChecksumRecord record, uint64_t inode,
                              uint64_t offset, uint64_t end, const char* found_by)
    : engine_(engine),
      data_(std::move(data)),
      file_(std::move(file)),
      record_(std::move(record)),
      inode_(inode),
      found_by_(found_by),
      position_(offset),
      end_(end) {}

absl::Status StorageEngine::Reader::LoadBlock(uint64_t index) {
  has_block_ = false;
  const uint64_t start = index * kChecksumBlockBytes;
  const uint64_t size = std::min(kChecksumBlockBytes, record_.size - start);
  block_.resize(size);
  absl::StatusOr<size_t> n = data_->ReadAt(start, block_);
  if (!n.ok()) return n.status();
  std::optional<Damage> damage;
  std::string detail;
  if (*n < size) {
    damage = Damage::kWrongSize;
    detail = absl::StrCat("it ends at byte ", start + *n, ", ", record_.size, " recorded");
  } else {
    Sha256 hasher;
    hasher.Update(std::span<const char>(block_.data(), block_.size()));
    const Sha256::Digest digest = hasher.Finish();
    // With one block, the record's whole-file checksum is that block's.
    const bool good =
        record_.blocks.empty()
            ? absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest.data()),
                                                       digest.size())) == record_.sha256
            : digest == record_.blocks[index];
    if (!good) {
      damage = Damage::kCorrupt;
      detail = absl::StrCat("block ", index, " does not match its checksum");
    }
  }
  if (damage) {
    block_.clear();
    return engine_.QuarantineCopy(file_.video_id, file_.name, *damage, record_.sha256, inode_,
                                  found_by_, detail);
  }
  block_start_ = start;
  has_block_ = true;
  return absl::OkStatus();
}

absl::StatusOr<size_t> StorageEngine::Reader::Read(std::span<char> buffer) {
  if (!failed_.ok()) return failed_;
  size_t copied = 0;
  while (copied < buffer.size() && position_ < end_) {
    if (!has_block_ || position_ < block_start_ || position_ >= block_start_ + block_.size()) {
      if (absl::Status s = LoadBlock(position_ / kChecksumBlockBytes); !s.ok()) {
        failed_ = s;
        // Bytes of earlier, verified blocks may go out; the bad block's never.
        if (copied > 0) return copied;
        return s;
      }
    }
    const uint64_t in_block = position_ - block_start_;
    const size_t take = static_cast<size_t>(
        std::min<uint64_t>({buffer.size() - copied, block_.size() - in_block, end_ - position_}));
    std::memcpy(buffer.data() + copied, block_.data() + in_block, take);
    copied += take;
    position_ += take;
  }
  return copied;
}

}  // namespace streamgrid::storage
