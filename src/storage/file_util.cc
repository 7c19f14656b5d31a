#include "storage/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <random>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/strings.h"

namespace streamgrid::storage {

namespace fs = std::filesystem;

absl::Status ErrnoStatus(int err, std::string_view op, const fs::path& path) {
  std::string message =
      absl::StrCat(ToAbsl(op), " ", path.string(), ": ", std::generic_category().message(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InternalError(message);
  }
}

int ScopedFd::Close() {
  if (fd_ < 0) return 0;
  // Linux releases the descriptor even when close() fails, so no retry on EINTR.
  int rc = close(std::exchange(fd_, -1));
  return rc == 0 ? 0 : errno;
}

absl::Status FsyncDir(const fs::path& dir) {
  ScopedFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoStatus(errno, "open", dir);
  if (fsync(fd.get()) != 0) return ErrnoStatus(errno, "fsync", dir);
  return absl::OkStatus();
}

absl::Status EnsureDir(const fs::path& dir) {
  if (mkdir(dir.c_str(), 0755) == 0) {
    fs::path parent = dir.parent_path();
    return FsyncDir(parent.empty() ? fs::path(".") : parent);
  }
  if (errno != EEXIST) return ErrnoStatus(errno, "mkdir", dir);
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) return ErrnoStatus(errno, "stat", dir);
  if (!S_ISDIR(st.st_mode))
    return absl::FailedPreconditionError(dir.string() + " is not a directory");
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const fs::path& path, std::string_view contents, bool sync) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  fs::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  const fs::path temp =
      dir / absl::StrFormat("%s%s.%016x", ToAbsl(kTempPrefix), path.filename().string(), rng());
  ScopedFd fd(open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (fd.get() < 0) return ErrnoStatus(errno, "create", temp);
  auto fail = [&temp](absl::Status status) {
    unlink(temp.c_str());
    return status;
  };
  const char* next = contents.data();
  size_t left = contents.size();
  while (left > 0) {
    ssize_t n = write(fd.get(), next, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(ErrnoStatus(errno, "write", temp));
    }
    next += n;
    left -= static_cast<size_t>(n);
  }
  if (sync && fsync(fd.get()) != 0) return fail(ErrnoStatus(errno, "fsync", temp));
  if (int err = fd.Close(); err != 0) return fail(ErrnoStatus(err, "close", temp));
  if (rename(temp.c_str(), path.c_str()) != 0) return fail(ErrnoStatus(errno, "rename", temp));
  return sync ? FsyncDir(dir) : absl::OkStatus();
}

absl::Status SyncFileSystem(const fs::path& path) {
  ScopedFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoStatus(errno, "open", path);
  if (syncfs(fd.get()) != 0) return ErrnoStatus(errno, "syncfs", path);
  return absl::OkStatus();
}

}  // namespace streamgrid::storage
