#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace streamgrid::storage {

// A file a node stored as a stand-in for an owner that was down (hinted
// handoff): the copy is meant for `intended_node` and is handed back to it
// when it returns.
struct Hint {
  std::string video_id;
  std::string name;
  std::string intended_node;
  // The stand-in's copy as stored.
  uint64_t size = 0;
  std::string sha256;
  int64_t created_unix_ms = 0;
  // Increasing in the order hints were recorded (kept across restarts); the
  // order of listings.
  uint64_t seq = 0;

  bool operator==(const Hint&) const = default;
};

struct HintPage {
  std::vector<Hint> hints;
  // Empty on the last page.
  std::string next_page_token;
};

// A storage node's hints, one small file per hint under `root`, each written
// atomically and durably (temp file, fsync, rename, directory fsync) before
// Add() returns, plus an index in memory (about 200 bytes per hint) loaded by
// Open(). There is at most one hint per (video_id, name, intended_node): a
// newer hint replaces the older. Thread-safe. Callers that must order a hint
// against the file it describes (store the file, record the hint; check the
// hint, delete the file) hold KeyLock() of the file around both.
class HintStore {
 public:
  // Listing pages hold this many hints at most.
  static constexpr size_t kMaxPageSize = 1000;
  // Node ids in hints are at most this long (printable ASCII, no spaces).
  static constexpr size_t kMaxNodeIdLength = 256;

  // Opens (creating if needed) the store in `root`, loading every hint;
  // removes temp files left by a crash and records that do not parse.
  static absl::StatusOr<std::unique_ptr<HintStore>> Open(std::filesystem::path root);

  HintStore(const HintStore&) = delete;
  HintStore& operator=(const HintStore&) = delete;

  // Records `hint` durably (its seq is assigned here), replacing any hint for
  // the same file and intended node. INVALID_ARGUMENT for a bad video id,
  // name, node id or checksum.
  absl::Status Add(Hint hint);

  // The hint for `video_id/name` meant for `intended_node`, if any.
  std::optional<Hint> Find(std::string_view video_id, std::string_view name,
                           std::string_view intended_node) const;

  // Whether any hint names `video_id/name`.
  bool HasKey(std::string_view video_id, std::string_view name) const;

  // Forgets one hint; OK when there is none.
  absl::Status Remove(std::string_view video_id, std::string_view name,
                      std::string_view intended_node);
  // Forgets every hint of `video_id/name`, or of every file of `video_id`.
  absl::Status RemoveKey(std::string_view video_id, std::string_view name);
  absl::Status RemoveVideo(std::string_view video_id);

  // Hints in the order recorded (oldest first), only those for
  // `intended_node` when it is not empty, up to `page_size` (0 or more than
  // kMaxPageSize: kMaxPageSize) after `page_token` (empty for the first
  // page). INVALID_ARGUMENT for a malformed token.
  absl::StatusOr<HintPage> List(std::string_view intended_node, std::string_view page_token,
                                size_t page_size) const;

  // Hints held now.
  size_t size() const;

  // A lock for `video_id/name` (striped: unrelated files may share one).
  std::mutex& KeyLock(std::string_view video_id, std::string_view name);

 private:
  using Key = std::tuple<std::string, std::string, std::string>;  // video, name, node

  explicit HintStore(std::filesystem::path root) : root_(std::move(root)) {}
  absl::Status Load();
  std::filesystem::path PathOf(const Key& key) const;
  // Removes the records of `keys` (files first, then the index).
  absl::Status RemoveKeys(const std::vector<Key>& keys);

  const std::filesystem::path root_;
  mutable std::mutex mu_;
  uint64_t next_seq_ = 1;            // guarded by mu_
  std::map<uint64_t, Hint> by_seq_;  // guarded by mu_
  std::map<Key, uint64_t> by_key_;   // guarded by mu_; to the seq
  std::array<std::mutex, 64> key_locks_;
};

}  // namespace streamgrid::storage
