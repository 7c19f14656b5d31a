#include "content/local_video_content_service.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <random>
#include <string>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_writes.h"
#include "common/names.h"
#include "spdlog/spdlog.h"

namespace streamgrid {
namespace {

namespace fs = std::filesystem;

// IsValidContentName() rejects a leading '.', so a temp file can never collide
// with, or be listed or served as, real content.
constexpr std::string_view kTempPrefix = ".tmp-";

// Debian's abseil is built with its own absl::string_view (not std::string_view),
// so std::string_view arguments to absl::StrCat need converting.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status ErrnoStatus(int err, std::string_view op, const fs::path& path) {
  std::string message =
      absl::StrCat(Sv(op), " ", path.string(), ": ", std::generic_category().message(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:  // a path component is a file: the content cannot exist either
      return absl::NotFoundError(message);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status ValidateVideoId(std::string_view video_id) {
  if (IsValidVideoId(video_id)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("invalid video id \"", Sv(video_id), "\""));
}

absl::Status Validate(std::string_view video_id, std::string_view name) {
  if (absl::Status s = ValidateVideoId(video_id); !s.ok()) return s;
  if (IsValidContentName(name)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("invalid content name \"", Sv(name), "\""));
}

class ScopedFd {
 public:
  explicit ScopedFd(int fd = -1) : fd_(fd) {}
  ScopedFd(ScopedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  ScopedFd& operator=(ScopedFd&&) = delete;
  ~ScopedFd() { Close(); }

  int get() const { return fd_; }
  // Closes now; 0, or the errno of a failed close(), which for a written file can
  // report a lost write.
  int Close() {
    if (fd_ < 0) return 0;
    int rc = close(std::exchange(fd_, -1));
    return rc == 0 ? 0 : errno;
  }

 private:
  int fd_;
};

struct DirCloser {
  void operator()(DIR* dir) const { closedir(dir); }
};

// Inode, size and modification time together: rename-replacement always yields a
// new inode, and in-place tampering changes size or mtime.
ContentInfo InfoFromStat(std::string name, const struct stat& st) {
  const uint64_t mtime_ns =
      static_cast<uint64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  ContentInfo info;
  info.name = std::move(name);
  info.size = static_cast<uint64_t>(st.st_size);
  info.etag =
      absl::StrFormat("\"%x-%x-%x\"", static_cast<uint64_t>(st.st_ino), info.size, mtime_ns);
  return info;
}

absl::Status FsyncDir(const fs::path& dir) {
  ScopedFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoStatus(errno, "open", dir);
  if (fsync(fd.get()) != 0) return ErrnoStatus(errno, "fsync", dir);
  return absl::OkStatus();
}

std::string RandomHex() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return absl::StrFormat("%016x", rng());
}

class LocalContentWriter : public ContentWriter {
 public:
  LocalContentWriter(fs::path root, fs::path dir, std::string name, fs::path temp, ScopedFd fd)
      : root_(std::move(root)),
        dir_(std::move(dir)),
        name_(std::move(name)),
        temp_(std::move(temp)),
        fd_(std::move(fd)) {}

  ~LocalContentWriter() override {
    if (state_ == State::kCommitted) return;
    fd_.Close();
    if (unlink(temp_.c_str()) != 0 && errno != ENOENT) {
      spdlog::warn("cannot remove abandoned {}: {}", temp_.string(),
                   std::generic_category().message(errno));
    }
  }

  absl::Status Append(std::span<const char> data) override {
    if (state_ != State::kOpen) return absl::FailedPreconditionError("writer is not usable");
    if (int err = WriteFully(fd_.get(), data); err != 0) {
      state_ = State::kFailed;
      return ErrnoStatus(err, "write", temp_);
    }
    written_ += data.size();
    writeback_.Wrote(fd_.get(), written_);
    return absl::OkStatus();
  }

  absl::StatusOr<ContentInfo> Commit() override {
    if (state_ != State::kOpen) return absl::FailedPreconditionError("writer is not usable");
    // Whatever fails below leaves the writer unusable; success overrides this.
    state_ = State::kFailed;
    if (fsync(fd_.get()) != 0) return ErrnoStatus(errno, "fsync", temp_);
    struct stat st;
    if (fstat(fd_.get(), &st) != 0) return ErrnoStatus(errno, "fstat", temp_);
    if (int err = fd_.Close(); err != 0) return ErrnoStatus(err, "close", temp_);
    const fs::path target = dir_ / name_;
    if (rename(temp_.c_str(), target.c_str()) != 0) return ErrnoStatus(errno, "rename", temp_);
    // The temp name is gone; the destructor must not unlink anything now.
    state_ = State::kCommitted;
    // The rename is durable only once the directory is; the root is synced too in
    // case this video's directory was created recently (possibly by another writer).
    if (absl::Status s = FsyncDir(dir_); !s.ok()) return s;
    if (absl::Status s = FsyncDir(root_); !s.ok()) return s;
    return InfoFromStat(name_, st);
  }

 private:
  enum class State { kOpen, kFailed, kCommitted };

  const fs::path root_;
  const fs::path dir_;
  const std::string name_;
  const fs::path temp_;
  ScopedFd fd_;
  State state_ = State::kOpen;
  uint64_t written_ = 0;  // bytes appended
  Writeback writeback_;
};

class LocalContentReader : public ContentReader {
 public:
  LocalContentReader(fs::path path, ScopedFd fd, ContentInfo info, uint64_t begin, uint64_t end)
      : path_(std::move(path)),
        fd_(std::move(fd)),
        info_(std::move(info)),
        pos_(begin),
        end_(end) {}

  absl::StatusOr<size_t> Read(std::span<char> buffer) override {
    if (pos_ >= end_ || buffer.empty()) return 0;
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), end_ - pos_));
    while (true) {
      ssize_t n = pread(fd_.get(), buffer.data(), want, static_cast<off_t>(pos_));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "read", path_);
      }
      if (n == 0) {
        // Committed files are never modified in place, so someone else truncated
        // it; the caller has probably promised a length already.
        return absl::DataLossError(absl::StrCat(path_.string(), " shrank while being read"));
      }
      pos_ += static_cast<uint64_t>(n);
      return static_cast<size_t>(n);
    }
  }

  const ContentInfo& info() const override { return info_; }

  int SendableFd(uint64_t* position) const override {
    *position = pos_;
    return fd_.get();
  }

 private:
  const fs::path path_;
  ScopedFd fd_;
  const ContentInfo info_;
  uint64_t pos_;
  const uint64_t end_;
};

// Deletes `.tmp-*` files in each video directory under `root`. Best effort: a
// leftover that cannot be removed is logged, not fatal.
absl::Status RemoveStaleTempFiles(const fs::path& root) {
  // Explicit increment(ec) loops: range-for would throw on a read error.
  std::error_code ec;
  fs::directory_iterator videos(root, ec);
  if (ec) return ErrnoStatus(ec.value(), "list", root);
  int removed = 0;
  for (; videos != fs::directory_iterator(); videos.increment(ec)) {
    if (ec) return ErrnoStatus(ec.value(), "list", root);
    const fs::directory_entry& video = *videos;
    std::error_code type_ec;
    if (video.is_symlink(type_ec) || !video.is_directory(type_ec)) continue;
    std::error_code video_ec;
    fs::directory_iterator files(video.path(), video_ec);
    for (; !video_ec && files != fs::directory_iterator(); files.increment(video_ec)) {
      const fs::path& file = files->path();
      if (!file.filename().string().starts_with(kTempPrefix)) continue;
      std::error_code remove_ec;
      if (fs::remove(file, remove_ec)) {
        ++removed;
      } else if (remove_ec) {
        spdlog::warn("cannot remove stale {}: {}", file.string(), remove_ec.message());
      }
    }
    if (video_ec) {
      spdlog::warn("cannot scan {} for temp files: {}", video.path().string(), video_ec.message());
    }
  }
  if (ec) return ErrnoStatus(ec.value(), "list", root);
  if (removed > 0) spdlog::info("removed {} stale temp file(s) under {}", removed, root.string());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<LocalVideoContentService>> LocalVideoContentService::Open(
    const fs::path& root) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return ErrnoStatus(ec.value(), "create", root);
  if (!fs::is_directory(root, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(root.string(), " is not a directory"));
  }
  if (absl::Status s = RemoveStaleTempFiles(root); !s.ok()) return s;
  return std::unique_ptr<LocalVideoContentService>(new LocalVideoContentService(root));
}

fs::path LocalVideoContentService::VideoDir(std::string_view video_id) const {
  return root_ / video_id;
}

absl::StatusOr<std::unique_ptr<ContentWriter>> LocalVideoContentService::OpenWriter(
    std::string_view video_id, std::string_view name) {
  if (absl::Status s = Validate(video_id, name); !s.ok()) return s;
  const fs::path dir = VideoDir(video_id);
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoStatus(errno, "mkdir", dir);
  // A random suffix lets concurrent writers of one name each own a temp file;
  // O_EXCL makes a (vanishingly unlikely) clash a retry rather than a mix-up.
  for (int attempt = 0; attempt < 8; ++attempt) {
    fs::path temp = dir / absl::StrCat(Sv(kTempPrefix), Sv(name), ".", RandomHex());
    ScopedFd fd(open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (fd.get() >= 0) {
      return std::make_unique<LocalContentWriter>(root_, dir, std::string(name), std::move(temp),
                                                  std::move(fd));
    }
    if (errno != EEXIST) return ErrnoStatus(errno, "create", temp);
  }
  return absl::InternalError(absl::StrCat("no free temp file name in ", dir.string()));
}

absl::StatusOr<std::unique_ptr<ContentReader>> LocalVideoContentService::OpenReader(
    std::string_view video_id, std::string_view name, uint64_t offset,
    std::optional<uint64_t> length) {
  if (absl::Status s = Validate(video_id, name); !s.ok()) return s;
  fs::path path = VideoDir(video_id) / name;
  ScopedFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) {
    // ELOOP: a symlink, which this service never creates, so not content.
    if (errno == ELOOP) return absl::NotFoundError(absl::StrCat(path.string(), " not a file"));
    return ErrnoStatus(errno, "open", path);
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "fstat", path);
  if (!S_ISREG(st.st_mode)) return absl::NotFoundError(absl::StrCat(path.string(), " not a file"));
  ContentInfo info = InfoFromStat(std::string(name), st);
  if (offset > info.size) {
    return absl::OutOfRangeError(absl::StrCat("offset ", offset, " is past the end of ",
                                              path.string(), " (", info.size, " bytes)"));
  }
  // Clip without computing offset + length, which could overflow.
  const uint64_t available = info.size - offset;
  const uint64_t end = offset + (length ? std::min(*length, available) : available);
  return std::make_unique<LocalContentReader>(std::move(path), std::move(fd), std::move(info),
                                              offset, end);
}

absl::StatusOr<ContentInfo> LocalVideoContentService::Stat(std::string_view video_id,
                                                           std::string_view name) {
  if (absl::Status s = Validate(video_id, name); !s.ok()) return s;
  const fs::path path = VideoDir(video_id) / name;
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "stat", path);
  if (!S_ISREG(st.st_mode)) return absl::NotFoundError(absl::StrCat(path.string(), " not a file"));
  return InfoFromStat(std::string(name), st);
}

absl::StatusOr<std::vector<ContentInfo>> LocalVideoContentService::List(std::string_view video_id) {
  if (absl::Status s = ValidateVideoId(video_id); !s.ok()) return s;
  const fs::path dir = VideoDir(video_id);
  std::unique_ptr<DIR, DirCloser> handle(opendir(dir.c_str()));
  std::vector<ContentInfo> infos;
  if (!handle) {
    if (errno == ENOENT) return infos;
    return ErrnoStatus(errno, "opendir", dir);
  }
  while (true) {
    errno = 0;
    const dirent* entry = readdir(handle.get());
    if (entry == nullptr) {
      if (errno != 0) return ErrnoStatus(errno, "readdir", dir);
      break;
    }
    // Skips ".", ".." and in-progress temp files.
    if (!IsValidContentName(entry->d_name)) continue;
    struct stat st;
    if (fstatat(dirfd(handle.get()), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;  // deleted since readdir
      return ErrnoStatus(errno, "stat", dir / entry->d_name);
    }
    if (S_ISREG(st.st_mode)) infos.push_back(InfoFromStat(entry->d_name, st));
  }
  std::sort(infos.begin(), infos.end(),
            [](const ContentInfo& a, const ContentInfo& b) { return a.name < b.name; });
  return infos;
}

absl::Status LocalVideoContentService::Delete(std::string_view video_id, std::string_view name) {
  if (absl::Status s = Validate(video_id, name); !s.ok()) return s;
  const fs::path path = VideoDir(video_id) / name;
  if (unlink(path.c_str()) != 0) return ErrnoStatus(errno, "unlink", path);
  return absl::OkStatus();
}

absl::StatusOr<ContentInfo> LocalVideoContentService::StoreLocalFile(std::string_view video_id,
                                                                     std::string_view name,
                                                                     const fs::path& file) {
  if (absl::Status s = Validate(video_id, name); !s.ok()) return s;
  ScopedFd fd(open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) return ErrnoStatus(errno, "open", file);
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "fstat", file);
  if (!S_ISREG(st.st_mode)) return absl::InvalidArgumentError(file.string() + " is not a file");
  // The link makes these bytes the committed file: they must be on disk
  // before the name is (a no-op when the caller fsynced already).
  if (fsync(fd.get()) != 0) return ErrnoStatus(errno, "fsync", file);
  const fs::path dir = VideoDir(video_id);
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoStatus(errno, "mkdir", dir);
  // Linked under a temp name first, then renamed over the target, so a
  // reader sees the old file or the new one and a crash leaves only a temp
  // file that Open() removes.
  for (int attempt = 0; attempt < 8; ++attempt) {
    const fs::path temp = dir / absl::StrCat(Sv(kTempPrefix), Sv(name), ".", RandomHex());
    if (link(file.c_str(), temp.c_str()) != 0) {
      if (errno == EEXIST) continue;
      // Another filesystem, or one without hard links: copy instead.
      if (errno == EXDEV || errno == EPERM || errno == EMLINK || errno == ENOTSUP) {
        return CopyLocalFile(*this, video_id, name, file);
      }
      return ErrnoStatus(errno, "link", temp);
    }
    const fs::path target = dir / name;
    if (rename(temp.c_str(), target.c_str()) != 0) {
      const int err = errno;
      unlink(temp.c_str());
      return ErrnoStatus(err, "rename", temp);
    }
    if (absl::Status s = FsyncDir(dir); !s.ok()) return s;
    if (absl::Status s = FsyncDir(root_); !s.ok()) return s;
    return InfoFromStat(std::string(name), st);
  }
  return absl::InternalError(absl::StrCat("no free temp file name in ", dir.string()));
}

absl::Status LocalVideoContentService::DeleteVideo(std::string_view video_id) {
  if (absl::Status s = ValidateVideoId(video_id); !s.ok()) return s;
  const fs::path dir = VideoDir(video_id);
  // The web layer cancels the video's transcode and waits for its stores to
  // end first (TranscodeWorkerPool::Cancel), yet a writer may still be at
  // work: a job that started right after that cancel (its upload accepted, or
  // a rescan) and has not yet seen the record vanish (it then removes what it
  // stored). Its temp file renamed, or an entry created after remove_all
  // listed the directory, fails one pass; a few passes end with the directory
  // gone unless something keeps writing into it.
  constexpr int kPasses = 5;
  std::error_code ec;
  for (int pass = 0; pass < kPasses; ++pass) {
    ec.clear();
    fs::remove_all(dir, ec);
    std::error_code exists_ec;
    if (!fs::exists(dir, exists_ec) && !exists_ec) return absl::OkStatus();
  }
  // Files remain: never NOT_FOUND (the interface's "no such files" answer is
  // OK), which a caller could take for "already gone".
  return absl::UnavailableError(absl::StrCat("remove ", dir.string(), ": still being written (",
                                             ec ? ec.message() : "not empty", ")"));
}

}  // namespace streamgrid
