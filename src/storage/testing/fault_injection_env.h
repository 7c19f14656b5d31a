#pragma once

// An Env for tests that fails chosen operations, wrapping a real one.

#include <filesystem>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "storage/env.h"
#include "storage/testing/forwarding_env.h"

namespace streamgrid::storage::testing {

// Passes every call to `base` (see ForwardingEnv), except that after Arm(op, n, err) the n-th
// next operation of kind `op` (1 = the very next one) fails with errno `err`
// (EIO, ENOSPC, ...) without being performed. Each arming fires once.
// Thread-safe.
class FaultInjectionEnv final : public ForwardingEnv {
 public:
  enum class Op {
    kWrite,   // WritableFile::Append
    kSync,    // WritableFile::Sync and Env::SyncDir
    kRename,  // Env::Rename
    kCreate,  // Env::NewWritableFile
  };

  explicit FaultInjectionEnv(Env* base) : ForwardingEnv(base) {}

  void Arm(Op op, int n, int err);
  // Drops every pending arming.
  void Disarm();
  // How many armed faults have fired.
  int fired() const;
  // How many operations of kind `op` were attempted so far.
  int count(Op op) const;

  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::filesystem::path& path) override;
  absl::Status Rename(const std::filesystem::path& from, const std::filesystem::path& to) override;
  absl::Status SyncDir(const std::filesystem::path& dir) override;

  // The fault for the next operation of kind `op`, if one is due (OK if not).
  absl::Status Check(Op op, const std::filesystem::path& path);

 private:
  struct Armed {
    Op op;
    int remaining;
    int err;
  };

  mutable std::mutex mu_;
  std::vector<Armed> armed_;
  int fired_ = 0;
  int counts_[4] = {0, 0, 0, 0};
};

}  // namespace streamgrid::storage::testing
