#include "storage/storage_engine.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "common/strings.h"
#include "spdlog/spdlog.h"
#include "storage/file_util.h"

namespace streamgrid::storage {
namespace {

namespace fs = std::filesystem;

// Buffer for re-hashing a file whose checksum record is missing or stale.
constexpr size_t kHashBufferBytes = 1 << 20;

absl::Status InvalidVideoId(std::string_view video_id) {
  return absl::InvalidArgumentError(absl::StrCat("invalid video id \"", ToAbsl(video_id), "\""));
}

// The content service's NOT_FOUND names its on-disk path; callers of the node
// only need to know which file.
absl::Status NotFound(std::string_view video_id, std::string_view name) {
  return absl::NotFoundError(absl::StrCat("no file ", ToAbsl(video_id), "/", ToAbsl(name)));
}

StoredFile MakeStoredFile(std::string_view video_id, const ContentInfo& info, std::string sha256,
                          int64_t mtime_unix_nanos) {
  return StoredFile{.video_id = std::string(video_id),
                    .name = info.name,
                    .size = info.size,
                    .sha256 = std::move(sha256),
                    .mtime_unix_nanos = mtime_unix_nanos};
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

StorageEngine::StorageEngine(fs::path data_dir, std::unique_ptr<LocalVideoContentService> content,
                             ChecksumStore checksums)
    : data_dir_(std::move(data_dir)),
      content_(std::move(content)),
      checksums_(std::move(checksums)) {}

StorageEngine::~StorageEngine() = default;

absl::StatusOr<std::unique_ptr<StorageEngine>> StorageEngine::Open(const fs::path& data_dir) {
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec) return ErrnoStatus(ec.value(), "create", data_dir);
  // The content service removes the data temp files a crash left behind.
  auto content = LocalVideoContentService::Open(data_dir / "content");
  if (!content.ok()) return content.status();
  auto checksums = ChecksumStore::Open(data_dir / "checksums");
  if (!checksums.ok()) return checksums.status();
  // Both subdirectories may be new: make their entries durable.
  if (absl::Status s = FsyncDir(data_dir); !s.ok()) return s;
  std::unique_ptr<StorageEngine> engine(
      new StorageEngine(data_dir, *std::move(content), *std::move(checksums)));
  if (absl::Status s = engine->Reconcile(); !s.ok()) return s;
  return engine;
}

absl::Status StorageEngine::Reconcile() {
  const fs::path& content_root = content_->root();
  // Records first: one whose data is gone comes from a crash during a delete
  // (records are removed after the data) or from a failed commit.
  auto removed = checksums_.RemoveStale([&](const std::string& video_id, const std::string& name) {
    struct stat st;
    const fs::path data = content_root / video_id / name;
    // Only a definite "no such file" counts as gone; anything else keeps the record.
    return lstat(data.c_str(), &st) == 0 || (errno != ENOENT && errno != ENOTDIR);
  });
  if (!removed.ok()) return removed.status();

  auto video_ids = VideoIds(content_root);
  if (!video_ids.ok()) return video_ids.status();
  uint64_t files = 0, bytes = 0, recomputed = 0, unreadable = 0;
  reconciling_ = true;
  for (const std::string& video_id : *video_ids) {
    auto infos = content_->List(video_id);
    if (!infos.ok()) return infos.status();
    if (infos->empty()) {
      // Left behind by deletes or abandoned uploads; fails harmlessly if a file appeared.
      rmdir((content_root / video_id).c_str());
      continue;
    }
    for (const ContentInfo& info : *infos) {
      ++files;
      bytes += info.size;
      bool fresh = false;
      absl::StatusOr<StoredFile> file = Describe(video_id, info, &fresh);
      if (fresh) ++recomputed;
      if (!file.ok()) {
        // One unreadable file must not keep the whole node down; reads of it
        // will report the error.
        ++unreadable;
        spdlog::error("cannot checksum {}/{}: {}", video_id, info.name, file.status().ToString());
      }
    }
  }
  reconciling_ = false;
  // One file-system sync instead of two fsyncs per recomputed record: after a
  // crash that left many, this is the difference between seconds and minutes.
  if (recomputed > 0) {
    if (absl::Status s = SyncFileSystem(checksums_.root()); !s.ok()) return s;
  }
  files_ = files;
  bytes_ = bytes;
  spdlog::info(
      "storage at {}: {} files, {} bytes; {} checksums recomputed, {} stale records removed, {} "
      "unreadable files",
      data_dir_.string(), files, bytes, recomputed, *removed, unreadable);
  return absl::OkStatus();
}

std::shared_mutex& StorageEngine::LockFor(std::string_view video_id) {
  return locks_[std::hash<std::string_view>{}(video_id) % locks_.size()];
}

absl::StatusOr<int64_t> StorageEngine::DataMtime(std::string_view video_id,
                                                 std::string_view name) const {
  const fs::path path = content_->root() / video_id / name;
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "stat", path);
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

absl::StatusOr<StoredFile> StorageEngine::Describe(std::string_view video_id,
                                                   const ContentInfo& info, bool* recomputed) {
  auto record = checksums_.Read(video_id, info.name);
  if (!record.ok()) return record.status();
  if (*record && (*record)->etag == info.etag) {
    return MakeStoredFile(video_id, info, (*record)->sha256, (*record)->mtime_unix_nanos);
  }
  // No record, or one for another version: a crash came between a commit's
  // rename and its record, or the data was changed behind the node's back. The
  // data is the durable truth either way, so hash it again.
  // At start-up after a crash there may be many; Reconcile() logs the total.
  spdlog::log(reconciling_ ? spdlog::level::debug : spdlog::level::warn,
              "{} checksum record for {}/{}; hashing the data", *record ? "stale" : "no", video_id,
              info.name);
  if (recomputed) *recomputed = true;
  auto reader = content_->OpenReader(video_id, info.name);
  if (!reader.ok()) return reader.status();
  Sha256 hasher;
  std::vector<char> buffer(kHashBufferBytes);
  while (true) {
    absl::StatusOr<size_t> n = (*reader)->Read(buffer);
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    hasher.Update(std::span<const char>(buffer.data(), *n));
  }
  auto mtime = DataMtime(video_id, info.name);
  if (!mtime.ok()) return mtime.status();
  const ContentInfo& hashed = (*reader)->info();
  ChecksumRecord fresh{
      .sha256 = hasher.FinishHex(), .mtime_unix_nanos = *mtime, .etag = hashed.etag};
  // The answer is right even if it cannot be saved; the next access retries.
  if (absl::Status s = checksums_.Write(video_id, info.name, fresh, /*sync=*/!reconciling_);
      !s.ok()) {
    spdlog::warn("cannot save checksum record for {}/{}: {}", video_id, info.name, s.ToString());
  }
  return MakeStoredFile(video_id, hashed, std::move(fresh.sha256), fresh.mtime_unix_nanos);
}

absl::StatusOr<std::optional<ContentInfo>> StorageEngine::StatData(std::string_view video_id,
                                                                   std::string_view name) {
  absl::StatusOr<ContentInfo> info = content_->Stat(video_id, name);
  if (info.ok()) return *std::move(info);
  if (absl::IsNotFound(info.status())) return std::nullopt;
  return info.status();
}

void StorageEngine::Account(const std::optional<ContentInfo>& before,
                            const std::optional<ContentInfo>& after) {
  if (before) {
    files_ -= 1;
    bytes_ -= before->size;
  }
  if (after) {
    files_ += 1;
    bytes_ += after->size;
  }
}

absl::StatusOr<std::unique_ptr<StorageEngine::Upload>> StorageEngine::StartUpload(
    std::string_view video_id, std::string_view name, std::optional<uint64_t> expected_size) {
  auto writer = content_->OpenWriter(video_id, name);
  if (!writer.ok()) return writer.status();
  if (expected_size) {
    auto usage = Usage();
    if (!usage.ok()) return usage.status();
    if (*expected_size > usage->free_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("no room for ", *expected_size, " bytes: ", usage->free_bytes, " free"));
    }
  }
  return std::unique_ptr<Upload>(new Upload(*this, std::string(video_id), std::string(name),
                                            expected_size, *std::move(writer)));
}

absl::StatusOr<StoredFile> StorageEngine::CommitUpload(Upload& upload, const std::string& sha256) {
  const std::string& video_id = upload.video_id_;
  const std::string& name = upload.name_;
  std::unique_ptr<ContentWriter> writer = std::move(upload.writer_);
  std::unique_lock lock(LockFor(video_id));
  auto before = StatData(video_id, name);
  if (!before.ok()) return before.status();

  absl::StatusOr<ContentInfo> committed = writer->Commit();
  writer.reset();
  if (!committed.ok()) {
    // Commit can fail after its rename (a directory fsync), leaving the new
    // version visible but not known durable and without a record: remove it.
    auto now = StatData(video_id, name);
    if (now.ok() && *now && (!*before || (*now)->etag != (*before)->etag)) {
      if (absl::Status s = content_->Delete(video_id, name); !s.ok()) {
        spdlog::error("cannot remove failed upload {}/{}: {}", video_id, name, s.ToString());
      }
      now = StatData(video_id, name);
    }
    Account(*before, now.ok() ? *now : std::nullopt);
    return committed.status();
  }

  auto mtime = DataMtime(video_id, name);
  absl::Status saved = mtime.status();
  if (saved.ok()) {
    saved = checksums_.Write(
        video_id, name,
        ChecksumRecord{.sha256 = sha256, .mtime_unix_nanos = *mtime, .etag = committed->etag});
  }
  if (!saved.ok()) {
    // Without a durable record the upload failed; it must not stay visible.
    // The previous version is gone already (replaced), so its record goes too.
    if (absl::Status s = content_->Delete(video_id, name); !s.ok() && !absl::IsNotFound(s)) {
      spdlog::error("cannot remove failed upload {}/{}: {}", video_id, name, s.ToString());
    }
    if (absl::Status s = checksums_.Remove(video_id, name); !s.ok()) {
      spdlog::warn("cannot remove checksum record of {}/{}: {}", video_id, name, s.ToString());
    }
    auto now = StatData(video_id, name);
    Account(*before, now.ok() ? *now : std::nullopt);
    return saved;
  }
  Account(*before, *committed);
  return MakeStoredFile(video_id, *committed, sha256, *mtime);
}

absl::StatusOr<std::unique_ptr<StorageEngine::Reader>> StorageEngine::OpenReader(
    std::string_view video_id, std::string_view name, uint64_t offset,
    std::optional<uint64_t> length) {
  std::shared_lock lock(LockFor(video_id));
  auto reader = content_->OpenReader(video_id, name, offset, length);
  if (!reader.ok()) {
    if (absl::IsNotFound(reader.status())) return NotFound(video_id, name);
    return reader.status();
  }
  // The reader's info is that of the version it opened, so the checksum is too.
  auto file = Describe(video_id, (*reader)->info());
  if (!file.ok()) return file.status();
  return std::make_unique<Reader>(*std::move(reader), *std::move(file));
}

absl::StatusOr<StoredFile> StorageEngine::Stat(std::string_view video_id, std::string_view name) {
  std::shared_lock lock(LockFor(video_id));
  absl::StatusOr<ContentInfo> info = content_->Stat(video_id, name);
  if (!info.ok()) {
    if (absl::IsNotFound(info.status())) return NotFound(video_id, name);
    return info.status();
  }
  return Describe(video_id, *info);
}

absl::Status StorageEngine::Delete(std::string_view video_id, std::string_view name) {
  std::unique_lock lock(LockFor(video_id));
  auto before = StatData(video_id, name);
  if (!before.ok()) return before.status();
  if (!*before) return NotFound(video_id, name);
  if (absl::Status s = content_->Delete(video_id, name); !s.ok()) return s;
  Account(*before, std::nullopt);
  // The data is gone, so the file is; a record left over is removed at start-up.
  if (absl::Status s = checksums_.Remove(video_id, name); !s.ok()) {
    spdlog::warn("cannot remove checksum record of {}/{}: {}", video_id, name, s.ToString());
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> StorageEngine::DeleteVideo(std::string_view video_id) {
  if (!IsValidVideoId(video_id)) return InvalidVideoId(video_id);
  std::unique_lock lock(LockFor(video_id));
  auto infos = content_->List(video_id);
  if (!infos.ok()) return infos.status();
  absl::Status deleted = content_->DeleteVideo(video_id);
  // Recount: a failure may have removed some of the files.
  auto left = content_->List(video_id);
  for (const ContentInfo& info : *infos) Account(info, std::nullopt);
  if (left.ok()) {
    for (const ContentInfo& info : *left) Account(std::nullopt, info);
  }
  if (!deleted.ok()) return deleted;
  if (absl::Status s = checksums_.RemoveVideo(video_id); !s.ok()) {
    spdlog::warn("cannot remove checksum records of {}: {}", video_id, s.ToString());
  }
  return infos->size();
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
      auto file = Describe(id, *info);
      if (!file.ok()) return file.status();
      page.files.push_back(*std::move(file));
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

StorageEngine::Upload::Upload(StorageEngine& engine, std::string video_id, std::string name,
                              std::optional<uint64_t> expected_size,
                              std::unique_ptr<ContentWriter> writer)
    : engine_(engine),
      video_id_(std::move(video_id)),
      name_(std::move(name)),
      expected_size_(expected_size),
      writer_(std::move(writer)) {}

// The content writer removes its temp file when destroyed uncommitted.
StorageEngine::Upload::~Upload() = default;

absl::Status StorageEngine::Upload::Append(std::span<const char> data) {
  if (!writer_) return absl::FailedPreconditionError("upload is not usable");
  if (expected_size_ && data.size() > *expected_size_ - written_) {
    writer_.reset();
    return absl::DataLossError(
        absl::StrCat("received more than the announced ", *expected_size_, " bytes"));
  }
  if (absl::Status s = writer_->Append(data); !s.ok()) {
    writer_.reset();
    return s;
  }
  hasher_.Update(data);
  written_ += data.size();
  return absl::OkStatus();
}

absl::StatusOr<StoredFile> StorageEngine::Upload::Commit(std::string_view expected_sha256) {
  if (!writer_) return absl::FailedPreconditionError("upload is not usable");
  std::optional<std::string> expected = NormalizeSha256Hex(expected_sha256);
  if (!expected) {
    writer_.reset();
    return absl::InvalidArgumentError(absl::StrCat("expected sha256 must be 64 hex digits, got ",
                                                   expected_sha256.size(), " characters"));
  }
  if (expected_size_ && written_ != *expected_size_) {
    writer_.reset();
    return absl::DataLossError(
        absl::StrCat("received ", written_, " bytes, announced ", *expected_size_));
  }
  std::string actual = hasher_.FinishHex();
  if (actual != *expected) {
    writer_.reset();
    return absl::DataLossError(absl::StrCat("checksum mismatch: received data has sha256 ", actual,
                                            ", expected ", *expected));
  }
  return engine_.CommitUpload(*this, actual);
}

}  // namespace streamgrid::storage
