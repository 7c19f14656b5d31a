#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/env.h"

namespace streamgrid::storage {

// Why a copy was taken out of service (the values of proto Damage).
enum class Damage {
  kCorrupt = 1,       // bytes differ from the recorded checksums
  kWrongSize = 2,     // shorter or longer than recorded, zero-length included
  kMissing = 3,       // record present, data file gone
  kUnverifiable = 4,  // data present, record missing or unreadable
};

const char* DamageName(Damage damage);

// One damaged copy taken out of service.
struct QuarantinedCopy {
  // Increasing over the node's life, across restarts.
  uint64_t seq = 0;
  std::string video_id;
  std::string name;
  Damage damage = Damage::kCorrupt;
  // The checksum recorded for the copy; empty when there was none.
  std::string expected_sha256;
  int64_t found_unix_ms = 0;
  // "scrub" or "read".
  std::string found_by;
};

// Damaged copies of one node: the data files are kept in `dir` for inspection
// (the most recent kMaxFiles), and a durable log of the most recent
// kMaxEntries QuarantinedCopy entries is kept in `dir/log`, rewritten
// atomically on each addition (quarantines are rare). Sequence numbers keep
// increasing across restarts even when old entries are dropped. Thread-safe.
class Quarantine {
 public:
  static constexpr size_t kMaxEntries = 1000;
  static constexpr size_t kMaxFiles = 100;
  // Entries per ListQuarantined page at most.
  static constexpr size_t kMaxPageSize = 1000;

  // Opens (creating) the quarantine in `dir`. `env` must outlive it.
  static absl::StatusOr<std::unique_ptr<Quarantine>> Open(Env& env, std::filesystem::path dir);

  // Logs `copy` under the next sequence number (its seq is ignored) after
  // moving `data` (when given; on the same file system) into the quarantine.
  // The move is what takes the copy out of service, so it comes first; if the
  // log cannot be written afterwards the entry is still listed until the
  // process ends, and the error is returned. Returns the entry as logged.
  absl::StatusOr<QuarantinedCopy> Add(QuarantinedCopy copy,
                                      const std::optional<std::filesystem::path>& data);

  struct Page {
    std::vector<QuarantinedCopy> copies;
    // Entries after the last one returned remain.
    bool more = false;
    // The lowest sequence number still kept (0 when none is).
    uint64_t oldest_kept_seq = 0;
  };
  // Entries with seq > after_seq, oldest first, at most page_size (0 or more
  // than kMaxPageSize mean kMaxPageSize).
  Page List(uint64_t after_seq, size_t page_size) const;

  // Copies added since this process opened the quarantine.
  uint64_t added_since_open() const;
  // The latest sequence number handed out (0: none ever).
  uint64_t last_seq() const;

 private:
  Quarantine(Env& env, std::filesystem::path dir) : env_(env), dir_(std::move(dir)) {}

  absl::Status Load();
  std::string FormatLog() const;

  Env& env_;
  const std::filesystem::path dir_;
  mutable std::mutex mu_;
  std::deque<QuarantinedCopy> entries_;  // by seq
  std::deque<std::string> files_;        // names in dir_, oldest first
  uint64_t last_seq_ = 0;
  uint64_t added_ = 0;
};

}  // namespace streamgrid::storage
