#include "storage/checksum_store.h"

#include <algorithm>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/names.h"
#include "common/strings.h"
#include "spdlog/spdlog.h"
#include "storage/file_util.h"

namespace streamgrid::storage {
namespace {

namespace fs = std::filesystem;

// A record holds at most 64 hex digits per MiB of data: this bounds files to
// 64 GiB and the memory a record takes to a few MiB.
constexpr uint64_t kMaxBlocks = 64 * 1024;
constexpr size_t kMaxRecordBytes = 200 + 64 * kMaxBlocks;

// SHA-256 blocks (every record before XXH3-128) keep the v2 format, so that
// such records read back byte for byte as before:
//   "v2 <sha256> <mtime_ns> <etag> <size> <block count> <block digests in hex, concatenated or ->"
// Other algorithms name theirs:
//   "v3 <sha256> <mtime_ns> <etag> <size> <algorithm> <block count> <digests or ->"
std::string Format(const ChecksumRecord& record) {
  const size_t digest_bytes = DigestBytes(record.block_algorithm);
  std::string blocks;
  if (record.blocks.empty()) blocks.push_back('-');
  blocks.reserve(record.blocks.size() * digest_bytes * 2);
  for (const BlockDigest& digest : record.blocks) {
    absl::StrAppend(&blocks, absl::BytesToHexString(absl::string_view(
                                 reinterpret_cast<const char*>(digest.data()), digest_bytes)));
  }
  if (record.block_algorithm == BlockAlgorithm::kSha256) {
    return absl::StrCat("v2 ", record.sha256, " ", record.mtime_unix_nanos, " ", record.etag, " ",
                        record.size, " ", record.blocks.size(), " ", blocks, "\n");
  }
  return absl::StrCat("v3 ", record.sha256, " ", record.mtime_unix_nanos, " ", record.etag, " ",
                      record.size, " ", ToAbsl(BlockAlgorithmName(record.block_algorithm)), " ",
                      record.blocks.size(), " ", blocks, "\n");
}

std::optional<ChecksumRecord> Parse(std::string_view text) {
  std::vector<absl::string_view> fields =
      absl::StrSplit(ToAbsl(text), absl::ByAnyChar(" \n"), absl::SkipEmpty());
  if (fields.empty()) return std::nullopt;
  const bool legacy = fields[0] == "v1";
  const bool v3 = fields[0] == "v3";
  if (!(legacy && fields.size() == 4) && !(fields[0] == "v2" && fields.size() == 7) &&
      !(v3 && fields.size() == 8)) {
    return std::nullopt;
  }
  std::optional<std::string> sha = NormalizeSha256Hex({fields[1].data(), fields[1].size()});
  ChecksumRecord record;
  if (!sha || !absl::SimpleAtoi(fields[2], &record.mtime_unix_nanos)) return std::nullopt;
  record.sha256 = *std::move(sha);
  record.etag = std::string(fields[3]);
  record.legacy = legacy;
  if (legacy) return record;
  if (v3) {
    // v3 exists for algorithms other than SHA-256 (see Format).
    std::optional<BlockAlgorithm> algorithm =
        ParseBlockAlgorithm({fields[5].data(), fields[5].size()});
    if (!algorithm || *algorithm == BlockAlgorithm::kSha256) return std::nullopt;
    record.block_algorithm = *algorithm;
    fields.erase(fields.begin() + 5);
  }
  const size_t digest_bytes = DigestBytes(record.block_algorithm);
  uint64_t count = 0;
  if (!absl::SimpleAtoi(fields[4], &record.size) || !absl::SimpleAtoi(fields[5], &count) ||
      count > kMaxBlocks) {
    return std::nullopt;
  }
  const absl::string_view hex = fields[6];
  if (count == 0) {
    if (hex != "-") return std::nullopt;
  } else {
    if (hex.size() != count * digest_bytes * 2) return std::nullopt;
    if (!std::all_of(hex.begin(), hex.end(), absl::ascii_isxdigit)) return std::nullopt;
    const std::string bytes = absl::HexStringToBytes(hex);
    record.blocks.resize(count);
    for (uint64_t i = 0; i < count; ++i) {
      std::copy_n(bytes.data() + i * digest_bytes, digest_bytes,
                  reinterpret_cast<char*>(record.blocks[i].data()));
    }
  }
  // The block count must be the one the size implies (SHA-256 records leave
  // out a single block's digest: it is the whole file's).
  const uint64_t expected_blocks = (record.size + kChecksumBlockBytes - 1) / kChecksumBlockBytes;
  if (record.block_algorithm == BlockAlgorithm::kSha256 && expected_blocks <= 1) {
    if (count != 0) return std::nullopt;
  } else if (count != expected_blocks) {
    return std::nullopt;
  }
  return record;
}

}  // namespace

absl::StatusOr<ChecksumStore> ChecksumStore::Open(Env& env, fs::path root) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return ErrnoStatus(ec.value(), "create", root);
  return ChecksumStore(env, std::move(root));
}

absl::StatusOr<fs::path> ChecksumStore::PathOf(std::string_view video_id,
                                               std::string_view name) const {
  if (!IsValidVideoId(video_id)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid video id \"", ToAbsl(video_id), "\""));
  }
  if (!IsValidContentName(name)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid content name \"", ToAbsl(name), "\""));
  }
  return root_ / video_id / name;
}

absl::StatusOr<std::optional<ChecksumRecord>> ChecksumStore::Read(std::string_view video_id,
                                                                  std::string_view name) const {
  absl::StatusOr<fs::path> path = PathOf(video_id, name);
  if (!path.ok()) return path.status();
  absl::StatusOr<std::string> text = env_->ReadSmallFile(*path, kMaxRecordBytes);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) return std::nullopt;
    if (absl::IsFailedPrecondition(text.status())) {
      return absl::DataLossError(absl::StrCat("checksum record ", path->string(), " is too large"));
    }
    return text.status();
  }
  std::optional<ChecksumRecord> record = Parse(*text);
  if (!record) {
    return absl::DataLossError(absl::StrCat("checksum record ", path->string(), " is malformed"));
  }
  return record;
}

absl::Status ChecksumStore::Write(std::string_view video_id, std::string_view name,
                                  const ChecksumRecord& record, bool sync) const {
  absl::StatusOr<fs::path> path = PathOf(video_id, name);
  if (!path.ok()) return path.status();
  if (record.blocks.size() > kMaxBlocks) {
    return absl::ResourceExhaustedError(
        absl::StrCat("a file of ", record.size, " bytes is over the node's limit"));
  }
  if (absl::Status s = env_->CreateDir(path->parent_path()); !s.ok()) return s;
  return env_->WriteFileAtomically(*path, Format(record), sync);
}

absl::Status ChecksumStore::Remove(std::string_view video_id, std::string_view name) const {
  absl::StatusOr<fs::path> path = PathOf(video_id, name);
  if (!path.ok()) return path.status();
  absl::Status removed = env_->Unlink(*path);
  if (absl::IsNotFound(removed)) return absl::OkStatus();
  if (!removed.ok()) return removed;
  // Durable: a record that came back after a crash would vouch for a file
  // that is gone and make it look damaged.
  return env_->SyncDir(path->parent_path());
}

absl::StatusOr<std::vector<std::string>> ChecksumStore::Videos() const {
  auto names = env_->ListDir(root_);
  if (!names.ok()) return names.status();
  std::vector<std::string> ids;
  for (std::string& name : *names) {
    if (IsValidVideoId(name)) ids.push_back(std::move(name));
  }
  return ids;
}

absl::StatusOr<std::vector<std::string>> ChecksumStore::Names(std::string_view video_id,
                                                              bool remove_temps) const {
  if (!IsValidVideoId(video_id)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid video id \"", ToAbsl(video_id), "\""));
  }
  const fs::path dir = root_ / video_id;
  auto names = env_->ListDir(dir);
  if (!names.ok()) {
    if (absl::IsNotFound(names.status())) return std::vector<std::string>();
    return names.status();
  }
  std::vector<std::string> valid;
  for (std::string& name : *names) {
    if (name.starts_with(kTempPrefix)) {
      if (remove_temps) (void)env_->Unlink(dir / name);
      continue;
    }
    if (IsValidContentName(name)) valid.push_back(std::move(name));
  }
  return valid;
}

void ChecksumStore::RemoveVideoDirIfEmpty(std::string_view video_id) const {
  if (!IsValidVideoId(video_id)) return;
  (void)env_->RemoveDir(root_ / video_id);
}

}  // namespace streamgrid::storage
