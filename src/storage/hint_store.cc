#include "storage/hint_store.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/names.h"
#include "common/strings.h"
#include "spdlog/spdlog.h"
#include "storage/file_util.h"
#include "storage/sha256.h"

namespace streamgrid::storage {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kMagic = "streamgrid-hint 1";
// A record is a few short lines; anything bigger is not one of ours.
constexpr uintmax_t kMaxRecordBytes = 4096;

bool IsValidNodeId(std::string_view id) {
  if (id.empty() || id.size() > HintStore::kMaxNodeIdLength) return false;
  return std::all_of(id.begin(), id.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

absl::Status ValidateKey(std::string_view video_id, std::string_view name) {
  if (!IsValidVideoId(video_id)) return absl::InvalidArgumentError("invalid video id");
  if (!IsValidContentName(name)) return absl::InvalidArgumentError("invalid content name");
  return absl::OkStatus();
}

std::string Serialize(const Hint& hint) {
  return absl::StrCat(ToAbsl(kMagic), "\n", hint.seq, "\n", hint.intended_node, "\n", hint.video_id,
                      "\n", hint.name, "\n", hint.size, "\n", hint.sha256, "\n",
                      hint.created_unix_ms, "\n");
}

std::optional<Hint> Parse(std::string_view text) {
  std::vector<absl::string_view> lines = absl::StrSplit(ToAbsl(text), '\n');
  // Eight lines and the empty rest after the final newline.
  if (lines.size() != 9 || lines[0] != ToAbsl(kMagic) || !lines[8].empty()) return std::nullopt;
  Hint hint;
  hint.intended_node = std::string(lines[2]);
  hint.video_id = std::string(lines[3]);
  hint.name = std::string(lines[4]);
  hint.sha256 = std::string(lines[6]);
  if (!absl::SimpleAtoi(lines[1], &hint.seq) || hint.seq == 0 ||
      !absl::SimpleAtoi(lines[5], &hint.size) ||
      !absl::SimpleAtoi(lines[7], &hint.created_unix_ms) || !IsValidNodeId(hint.intended_node) ||
      !ValidateKey(hint.video_id, hint.name).ok() ||
      NormalizeSha256Hex(hint.sha256) != hint.sha256) {
    return std::nullopt;
  }
  return hint;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HintStore>> HintStore::Open(fs::path root) {
  if (absl::Status s = EnsureDir(root); !s.ok()) return s;
  std::unique_ptr<HintStore> store(new HintStore(std::move(root)));
  if (absl::Status s = store->Load(); !s.ok()) return s;
  return store;
}

absl::Status HintStore::Load() {
  std::error_code ec;
  bool removed = false;
  for (auto it = fs::directory_iterator(root_, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    const fs::path& path = it->path();
    const std::string file_name = path.filename().string();
    std::optional<Hint> hint;
    if (!file_name.starts_with(kTempPrefix)) {
      std::error_code size_ec;
      const uintmax_t size = fs::file_size(path, size_ec);
      if (!size_ec && size <= kMaxRecordBytes) {
        std::ifstream in(path, std::ios::binary);
        std::stringstream text;
        text << in.rdbuf();
        if (in) hint = Parse(text.str());
      }
    }
    // A record must sit under the name its key gives, so that Remove() finds it.
    if (hint && PathOf({hint->video_id, hint->name, hint->intended_node}) != path) hint.reset();
    if (!hint) {
      // A temp file of a write a crash interrupted, or not a record: a hint
      // only saves anti-entropy some work, so dropping one loses no data.
      if (!file_name.starts_with(kTempPrefix)) {
        spdlog::warn("hint store: removing unreadable record {}", path.string());
      }
      fs::remove(path, ec);
      removed = true;
      continue;
    }
    next_seq_ = std::max(next_seq_, hint->seq + 1);
    Key key{hint->video_id, hint->name, hint->intended_node};
    by_key_[key] = hint->seq;
    by_seq_.emplace(hint->seq, *std::move(hint));
  }
  if (ec) return ErrnoStatus(ec.value(), "list", root_);
  if (removed) return FsyncDir(root_);
  return absl::OkStatus();
}

fs::path HintStore::PathOf(const Key& key) const {
  const auto& [video_id, name, node] = key;
  // Node ids may hold characters a file name cannot; a hash of the key also
  // keeps every record one short name in one directory.
  return root_ /
         Sha256::HexOf(absl::StrCat(ToAbsl(video_id), "\n", ToAbsl(name), "\n", ToAbsl(node)));
}

absl::Status HintStore::Add(Hint hint) {
  if (absl::Status s = ValidateKey(hint.video_id, hint.name); !s.ok()) return s;
  if (!IsValidNodeId(hint.intended_node)) {
    return absl::InvalidArgumentError("invalid node id in a hint");
  }
  std::optional<std::string> sha256 = NormalizeSha256Hex(hint.sha256);
  if (!sha256) return absl::InvalidArgumentError("a hint's sha256 must be 64 hex digits");
  hint.sha256 = *std::move(sha256);
  if (hint.created_unix_ms == 0) {
    hint.created_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  }
  {
    std::lock_guard lock(mu_);
    hint.seq = next_seq_++;
  }
  Key key{hint.video_id, hint.name, hint.intended_node};
  // Written before the index changes: a hint listed is a hint on disk.
  if (absl::Status s = WriteFileAtomically(PathOf(key), Serialize(hint)); !s.ok()) return s;
  std::lock_guard lock(mu_);
  auto [it, inserted] = by_key_.try_emplace(key, hint.seq);
  if (!inserted) {
    by_seq_.erase(it->second);
    it->second = hint.seq;
  }
  by_seq_.emplace(hint.seq, std::move(hint));
  return absl::OkStatus();
}

std::optional<Hint> HintStore::Find(std::string_view video_id, std::string_view name,
                                    std::string_view intended_node) const {
  std::lock_guard lock(mu_);
  auto it = by_key_.find(Key{video_id, name, intended_node});
  if (it == by_key_.end()) return std::nullopt;
  return by_seq_.at(it->second);
}

bool HintStore::HasKey(std::string_view video_id, std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = by_key_.lower_bound(Key{video_id, name, ""});
  return it != by_key_.end() && std::get<0>(it->first) == video_id &&
         std::get<1>(it->first) == name;
}

absl::Status HintStore::RemoveKeys(const std::vector<Key>& keys) {
  if (keys.empty()) return absl::OkStatus();
  for (const Key& key : keys) {
    const fs::path path = PathOf(key);
    if (unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus(errno, "unlink", path);
  }
  // Durable before the caller goes on (e.g. deletes the stand-in's copy): a
  // hint coming back after a crash would hand back a file that is gone.
  absl::Status synced = FsyncDir(root_);
  std::lock_guard lock(mu_);
  for (const Key& key : keys) {
    auto it = by_key_.find(key);
    if (it == by_key_.end()) continue;
    by_seq_.erase(it->second);
    by_key_.erase(it);
  }
  return synced;
}

absl::Status HintStore::Remove(std::string_view video_id, std::string_view name,
                               std::string_view intended_node) {
  Key key{video_id, name, intended_node};
  {
    std::lock_guard lock(mu_);
    if (!by_key_.contains(key)) return absl::OkStatus();
  }
  return RemoveKeys({key});
}

absl::Status HintStore::RemoveKey(std::string_view video_id, std::string_view name) {
  std::vector<Key> keys;
  {
    std::lock_guard lock(mu_);
    for (auto it = by_key_.lower_bound(Key{video_id, name, ""});
         it != by_key_.end() && std::get<0>(it->first) == video_id &&
         std::get<1>(it->first) == name;
         ++it) {
      keys.push_back(it->first);
    }
  }
  return RemoveKeys(keys);
}

absl::Status HintStore::RemoveVideo(std::string_view video_id) {
  std::vector<Key> keys;
  {
    std::lock_guard lock(mu_);
    for (auto it = by_key_.lower_bound(Key{video_id, "", ""});
         it != by_key_.end() && std::get<0>(it->first) == video_id; ++it) {
      keys.push_back(it->first);
    }
  }
  return RemoveKeys(keys);
}

absl::StatusOr<HintPage> HintStore::List(std::string_view intended_node,
                                         std::string_view page_token, size_t page_size) const {
  uint64_t after = 0;
  if (!page_token.empty() && !absl::SimpleAtoi(ToAbsl(page_token), &after)) {
    return absl::InvalidArgumentError("malformed hint page token");
  }
  if (page_size == 0 || page_size > kMaxPageSize) page_size = kMaxPageSize;
  HintPage page;
  std::lock_guard lock(mu_);
  // Filtering by node scans past other nodes' hints; bounded like a page so a
  // call's time stays bounded too (the token resumes where it stopped).
  size_t examined = 0;
  const size_t scan_limit = 100 * kMaxPageSize;
  auto it = by_seq_.upper_bound(after);
  for (; it != by_seq_.end() && page.hints.size() < page_size && examined < scan_limit;
       ++it, ++examined) {
    if (!intended_node.empty() && it->second.intended_node != intended_node) continue;
    page.hints.push_back(it->second);
  }
  if (it != by_seq_.end()) page.next_page_token = absl::StrCat(std::prev(it)->first);
  return page;
}

size_t HintStore::size() const {
  std::lock_guard lock(mu_);
  return by_seq_.size();
}

std::mutex& HintStore::KeyLock(std::string_view video_id, std::string_view name) {
  const size_t h =
      std::hash<std::string_view>()(video_id) * 31 + std::hash<std::string_view>()(name);
  return key_locks_[h % key_locks_.size()];
}

}  // namespace streamgrid::storage
