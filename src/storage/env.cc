#include "storage/env.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_writes.h"
#include "common/strings.h"
#include "storage/direct_writable_file.h"
#include "storage/file_util.h"

namespace streamgrid::storage {
namespace {

namespace fs = std::filesystem;

class PosixReadableFile final : public ReadableFile {
 public:
  PosixReadableFile(ScopedFd fd, fs::path path) : fd_(std::move(fd)), path_(std::move(path)) {}

  absl::StatusOr<size_t> ReadAt(uint64_t offset, std::span<char> buffer) override {
    size_t done = 0;
    while (done < buffer.size()) {
      ssize_t n = pread(fd_.get(), buffer.data() + done, buffer.size() - done,
                        static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "read", path_);
      }
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    return done;
  }

  absl::StatusOr<FileStat> Stat() override {
    struct stat st;
    if (fstat(fd_.get(), &st) != 0) return ErrnoStatus(errno, "fstat", path_);
    return FromStat(st);
  }

 private:
  ScopedFd fd_;
  const fs::path path_;
};

class PosixEnv final : public Env {
 public:
  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const fs::path& path) override {
    ScopedFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (fd.get() < 0) return ErrnoStatus(errno, "create", path);
    // Large files bypass the page cache past their first MiBs (see
    // DirectWritableFile); small ones are written as before.
    return std::make_unique<DirectWritableFile>(std::move(fd), path);
  }

  absl::StatusOr<std::unique_ptr<ReadableFile>> OpenReadable(const fs::path& path) override {
    ScopedFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (fd.get() < 0) {
      // A symlink where a file should be is as good as no file.
      return ErrnoStatus(errno == ELOOP ? ENOENT : errno, "open", path);
    }
    return std::make_unique<PosixReadableFile>(std::move(fd), path);
  }

  absl::Status Rename(const fs::path& from, const fs::path& to) override {
    if (rename(from.c_str(), to.c_str()) != 0) return ErrnoStatus(errno, "rename", from);
    return absl::OkStatus();
  }

  absl::Status Unlink(const fs::path& path) override {
    if (unlink(path.c_str()) != 0) return ErrnoStatus(errno, "unlink", path);
    return absl::OkStatus();
  }

  absl::Status SyncDir(const fs::path& dir) override { return FsyncDir(dir); }

  absl::Status CreateDir(const fs::path& dir) override { return EnsureDir(dir); }

  absl::Status RemoveDir(const fs::path& dir) override {
    if (rmdir(dir.c_str()) == 0) return absl::OkStatus();
    if (errno == ENOTEMPTY || errno == EEXIST) {
      return absl::FailedPreconditionError(dir.string() + " is not empty");
    }
    return ErrnoStatus(errno, "rmdir", dir);
  }

  absl::StatusOr<std::vector<std::string>> ListDir(const fs::path& dir) override {
    std::unique_ptr<DIR, int (*)(DIR*)> handle(opendir(dir.c_str()), closedir);
    if (!handle) return ErrnoStatus(errno, "opendir", dir);
    std::vector<std::string> names;
    while (true) {
      errno = 0;
      const dirent* entry = readdir(handle.get());
      if (entry == nullptr) {
        if (errno != 0) return ErrnoStatus(errno, "readdir", dir);
        break;
      }
      std::string_view name = entry->d_name;
      if (name == "." || name == "..") continue;
      names.emplace_back(name);
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  absl::StatusOr<FileStat> Stat(const fs::path& path) override {
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "stat", path);
    return FromStat(st);
  }
};

}  // namespace

FileStat FromStat(const struct stat& st) {
  return FileStat{
      .inode = static_cast<uint64_t>(st.st_ino),
      .size = static_cast<uint64_t>(st.st_size),
      .mtime_unix_nanos =
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
      .is_directory = S_ISDIR(st.st_mode),
  };
}

Env* Env::Default() {
  static Env* env = new PosixEnv;
  return env;
}

std::string RandomSuffix() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return absl::StrFormat("%016x", rng());
}

absl::Status Env::WriteFileAtomically(const fs::path& path, std::string_view contents, bool sync) {
  fs::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  const fs::path temp =
      dir / absl::StrCat(ToAbsl(kTempPrefix), path.filename().string(), ".", RandomSuffix());
  auto file = NewWritableFile(temp);
  if (!file.ok()) return file.status();
  auto fail = [&](absl::Status status) {
    file->reset();
    (void)Unlink(temp);
    return status;
  };
  if (absl::Status s = (*file)->Append(contents); !s.ok()) return fail(s);
  if (sync) {
    if (absl::Status s = (*file)->Sync(); !s.ok()) return fail(s);
  }
  if (absl::Status s = (*file)->Close(); !s.ok()) return fail(s);
  if (absl::Status s = Rename(temp, path); !s.ok()) return fail(s);
  return sync ? SyncDir(dir) : absl::OkStatus();
}

absl::StatusOr<std::string> Env::ReadSmallFile(const fs::path& path, size_t max_bytes) {
  auto file = OpenReadable(path);
  if (!file.ok()) return file.status();
  auto stat = (*file)->Stat();
  if (!stat.ok()) return stat.status();
  if (stat->size > max_bytes) {
    return absl::FailedPreconditionError(
        absl::StrCat(path.string(), " has ", stat->size, " bytes, more than ", max_bytes));
  }
  // One byte more than expected tells a file that grew meanwhile.
  std::string text(stat->size + 1, '\0');
  auto n = (*file)->ReadAt(0, std::span<char>(text.data(), text.size()));
  if (!n.ok()) return n.status();
  if (*n > max_bytes) {
    return absl::FailedPreconditionError(absl::StrCat(path.string(), " is over ", max_bytes));
  }
  text.resize(*n);
  return text;
}

}  // namespace streamgrid::storage
