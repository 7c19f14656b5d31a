// Crash recovery and the one-time upgrade of an older store, run by
// StorageEngine::Open() (the commit order they rely on is described in
// storage_engine.h).

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/names.h"
#include "spdlog/spdlog.h"
#include "storage/file_util.h"
#include "storage/storage_engine.h"
#include "storage/storage_engine_internal.h"

namespace streamgrid::storage {
namespace {

namespace fs = std::filesystem;
using engine_internal::kDeletePrefix;
using engine_internal::kUploadPrefix;
using engine_internal::VideoIds;

// Written once a store has the current layout (records before data, block
// checksums); a store without it is upgraded by Open().
constexpr std::string_view kFormatFile = "FORMAT";
constexpr std::string_view kFormat = "streamgrid-storage 2\n";
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
}  // namespace

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
}  // namespace streamgrid::storage
