#include "storage/testing/fault_injection_env.h"

#include <algorithm>

#include "storage/file_util.h"

namespace streamgrid::storage::testing {
namespace {

const char* OpName(FaultInjectionEnv::Op op) {
  switch (op) {
    case FaultInjectionEnv::Op::kWrite:
      return "write (injected)";
    case FaultInjectionEnv::Op::kSync:
      return "fsync (injected)";
    case FaultInjectionEnv::Op::kRename:
      return "rename (injected)";
    case FaultInjectionEnv::Op::kCreate:
      return "create (injected)";
  }
  return "?";
}

// Forwards to the base file, failing writes and syncs as the env says.
class FaultyWritableFile final : public WritableFile {
 public:
  FaultyWritableFile(FaultInjectionEnv& env, std::unique_ptr<WritableFile> base,
                     std::filesystem::path path)
      : env_(env), base_(std::move(base)), path_(std::move(path)) {}

  absl::Status Append(std::span<const char> data) override {
    if (absl::Status s = env_.Check(FaultInjectionEnv::Op::kWrite, path_); !s.ok()) return s;
    return base_->Append(data);
  }
  absl::Status Sync() override {
    if (absl::Status s = env_.Check(FaultInjectionEnv::Op::kSync, path_); !s.ok()) return s;
    return base_->Sync();
  }
  absl::StatusOr<FileStat> Stat() override { return base_->Stat(); }
  absl::Status Close() override { return base_->Close(); }

 private:
  FaultInjectionEnv& env_;
  std::unique_ptr<WritableFile> base_;
  const std::filesystem::path path_;
};

}  // namespace

void FaultInjectionEnv::Arm(Op op, int n, int err) {
  std::lock_guard lock(mu_);
  armed_.push_back(Armed{.op = op, .remaining = std::max(n, 1), .err = err});
}

void FaultInjectionEnv::Disarm() {
  std::lock_guard lock(mu_);
  armed_.clear();
}

int FaultInjectionEnv::fired() const {
  std::lock_guard lock(mu_);
  return fired_;
}

int FaultInjectionEnv::count(Op op) const {
  std::lock_guard lock(mu_);
  return counts_[static_cast<int>(op)];
}

absl::Status FaultInjectionEnv::Check(Op op, const std::filesystem::path& path) {
  std::lock_guard lock(mu_);
  ++counts_[static_cast<int>(op)];
  for (auto it = armed_.begin(); it != armed_.end(); ++it) {
    if (it->op != op || --it->remaining > 0) continue;
    const int err = it->err;
    armed_.erase(it);
    ++fired_;
    return ErrnoStatus(err, OpName(op), path);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<WritableFile>> FaultInjectionEnv::NewWritableFile(
    const std::filesystem::path& path) {
  if (absl::Status s = Check(Op::kCreate, path); !s.ok()) return s;
  auto file = base_->NewWritableFile(path);
  if (!file.ok()) return file.status();
  return std::make_unique<FaultyWritableFile>(*this, *std::move(file), path);
}

absl::Status FaultInjectionEnv::Rename(const std::filesystem::path& from,
                                       const std::filesystem::path& to) {
  if (absl::Status s = Check(Op::kRename, from); !s.ok()) return s;
  return base_->Rename(from, to);
}

absl::Status FaultInjectionEnv::SyncDir(const std::filesystem::path& dir) {
  if (absl::Status s = Check(Op::kSync, dir); !s.ok()) return s;
  return base_->SyncDir(dir);
}

}  // namespace streamgrid::storage::testing
