#pragma once

// A base for test Envs that change a few operations of a real Env and pass
// the rest on.

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "storage/env.h"

namespace streamgrid::storage::testing {

// Passes every call to `base`, which must outlive it. A test Env derives from
// it and overrides only the operations it changes.
class ForwardingEnv : public Env {
 public:
  explicit ForwardingEnv(Env* base) : base_(base) {}

  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::filesystem::path& path) override {
    return base_->NewWritableFile(path);
  }
  absl::StatusOr<std::unique_ptr<ReadableFile>> OpenReadable(
      const std::filesystem::path& path) override {
    return base_->OpenReadable(path);
  }
  absl::Status Rename(const std::filesystem::path& from, const std::filesystem::path& to) override {
    return base_->Rename(from, to);
  }
  absl::Status Unlink(const std::filesystem::path& path) override { return base_->Unlink(path); }
  absl::Status SyncDir(const std::filesystem::path& dir) override { return base_->SyncDir(dir); }
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

 protected:
  Env* const base_;
};

}  // namespace streamgrid::storage::testing
