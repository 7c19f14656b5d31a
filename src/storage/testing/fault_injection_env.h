#pragma once

// An Env for tests that fails chosen operations, wrapping a real one.

#include <filesystem>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "storage/env.h"

namespace streamgrid::storage::testing {

// Passes every call to `base`, except that after Arm(op, n, err) the n-th
// next operation of kind `op` (1 = the very next one) fails with errno `err`
// (EIO, ENOSPC, ...) without being performed. Each arming fires once.
// Thread-safe.
class FaultInjectionEnv final : public Env {
 public:
  enum class Op {
    kWrite,   // WritableFile::Append
    kSync,    // WritableFile::Sync and Env::SyncDir
    kRename,  // Env::Rename
    kCreate,  // Env::NewWritableFile
  };

  explicit FaultInjectionEnv(Env* base) : base_(base) {}

  void Arm(Op op, int n, int err);
  // Drops every pending arming.
  void Disarm();
  // How many armed faults have fired.
  int fired() const;
  // How many operations of kind `op` were attempted so far.
  int count(Op op) const;

  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::filesystem::path& path) override;
  absl::StatusOr<std::unique_ptr<ReadableFile>> OpenReadable(
      const std::filesystem::path& path) override {
    return base_->OpenReadable(path);
  }
  absl::Status Rename(const std::filesystem::path& from, const std::filesystem::path& to) override;
  absl::Status Unlink(const std::filesystem::path& path) override { return base_->Unlink(path); }
  absl::Status SyncDir(const std::filesystem::path& dir) override;
  absl::Status CreateDir(const std::filesystem::path& dir) override {
    return base_->CreateDir(dir);
  }
  absl::Status RemoveDir(const std::filesystem::path& dir) override {
    return base_->RemoveDir(dir);
  }
  absl::StatusOr<std::vector<std::string>> ListDir(const std::filesystem::path& dir) override {
    return base_->ListDir(dir);
  }
  absl::StatusOr<FileStat> Stat(const std::filesystem::path& path) override {
    return base_->Stat(path);
  }

  // The fault for the next operation of kind `op`, if one is due (OK if not).
  absl::Status Check(Op op, const std::filesystem::path& path);

 private:
  struct Armed {
    Op op;
    int remaining;
    int err;
  };

  Env* const base_;
  mutable std::mutex mu_;
  std::vector<Armed> armed_;
  int fired_ = 0;
  int counts_[4] = {0, 0, 0, 0};
};

}  // namespace streamgrid::storage::testing
