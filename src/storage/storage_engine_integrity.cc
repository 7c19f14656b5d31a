// Damage handling of the engine: telling a record and its data apart
// (Inspect), taking damaged copies out of service (QuarantineCopy), the
// scrubber's walk, and the verified Reader.

#include <algorithm>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "common/strings.h"
#include "spdlog/spdlog.h"
#include "storage/storage_engine.h"
#include "storage/storage_engine_internal.h"

namespace streamgrid::storage {

namespace fs = std::filesystem;
using engine_internal::InvalidVideoId;
using engine_internal::NotFound;
using engine_internal::VideoIds;

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

std::vector<BlockDigest> StorageEngine::Reader::BlockDigests() const {
  if (!record_.blocks.empty()) return record_.blocks;
  if (record_.size == 0) return {};
  // One SHA-256 block: the record holds only the whole file's digest, which
  // is it. (Other algorithms record every block: see ChecksumRecord.)
  BlockDigest digest{};
  const std::string raw = absl::HexStringToBytes(record_.sha256);
  if (raw.size() == digest.size()) std::memcpy(digest.data(), raw.data(), digest.size());
  return {digest};
}

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
    const BlockDigest digest = BlockHasher::Of(record_.block_algorithm,
                                               std::span<const char>(block_.data(), block_.size()));
    // With one SHA-256 block, the record's whole-file checksum is that block's.
    const bool good =
        record_.blocks.empty() && record_.block_algorithm == BlockAlgorithm::kSha256
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

absl::StatusOr<size_t> StorageEngine::Reader::ReadUnverified(std::span<char> buffer) {
  const size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), end_ - position_));
  if (want == 0) return 0;
  // No block buffer in between: the bytes go from the file (page cache) into
  // the caller's buffer in one copy.
  absl::StatusOr<size_t> n = data_->ReadAt(position_, buffer.first(want));
  if (!n.ok()) return n.status();
  if (*n < want) {
    failed_ = engine_.QuarantineCopy(
        file_.video_id, file_.name, Damage::kWrongSize, record_.sha256, inode_, found_by_,
        absl::StrCat("it ends at byte ", position_ + *n, ", ", record_.size, " recorded"));
    return failed_;
  }
  position_ += want;
  return want;
}

absl::StatusOr<size_t> StorageEngine::Reader::Read(std::span<char> buffer) {
  if (!failed_.ok()) return failed_;
  if (!verify_blocks_) return ReadUnverified(buffer);
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
