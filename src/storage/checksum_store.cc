#include "storage/checksum_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <vector>

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

// Records are one line, "v1 <sha256> <mtime_ns> <etag>", far below this.
constexpr size_t kMaxRecordBytes = 512;

std::string Format(const ChecksumRecord& record) {
  return absl::StrCat("v1 ", record.sha256, " ", record.mtime_unix_nanos, " ", record.etag, "\n");
}

std::optional<ChecksumRecord> Parse(std::string_view text) {
  std::vector<absl::string_view> fields =
      absl::StrSplit(ToAbsl(text), absl::ByAnyChar(" \n"), absl::SkipEmpty());
  if (fields.size() != 4 || fields[0] != "v1") return std::nullopt;
  std::optional<std::string> sha = NormalizeSha256Hex({fields[1].data(), fields[1].size()});
  ChecksumRecord record;
  if (!sha || !absl::SimpleAtoi(fields[2], &record.mtime_unix_nanos)) return std::nullopt;
  record.sha256 = *std::move(sha);
  record.etag = std::string(fields[3]);
  return record;
}

}  // namespace

absl::StatusOr<ChecksumStore> ChecksumStore::Open(fs::path root) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return ErrnoStatus(ec.value(), "create", root);
  return ChecksumStore(std::move(root));
}

absl::StatusOr<fs::path> ChecksumStore::PathOf(std::string_view video_id,
                                               std::string_view name) const {
  if (!IsValidVideoId(video_id)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid video id \"", ToAbsl(video_id), "\""));
  }
  if (!IsValidContentName(name)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid content name \"", ToAbsl(name), "\""));
  }
  return root_ / video_id / name;
}

absl::StatusOr<std::optional<ChecksumRecord>> ChecksumStore::Read(std::string_view video_id,
                                                                  std::string_view name) const {
  absl::StatusOr<fs::path> path = PathOf(video_id, name);
  if (!path.ok()) return path.status();
  ScopedFd fd(open(path->c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) {
    if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) return std::nullopt;
    return ErrnoStatus(errno, "open", *path);
  }
  std::string text(kMaxRecordBytes, '\0');
  size_t used = 0;
  while (used < text.size()) {
    ssize_t n = read(fd.get(), text.data() + used, text.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read", *path);
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  text.resize(used);
  return Parse(text);
}

absl::Status ChecksumStore::Write(std::string_view video_id, std::string_view name,
                                  const ChecksumRecord& record, bool sync) const {
  absl::StatusOr<fs::path> path = PathOf(video_id, name);
  if (!path.ok()) return path.status();
  if (absl::Status s = EnsureDir(path->parent_path()); !s.ok()) return s;
  return WriteFileAtomically(*path, Format(record), sync);
}

absl::Status ChecksumStore::Remove(std::string_view video_id, std::string_view name) const {
  absl::StatusOr<fs::path> path = PathOf(video_id, name);
  if (!path.ok()) return path.status();
  // No directory fsync: a record that reappears after a crash either has no
  // data file (removed at start-up) or a stale etag (ignored), so it is harmless.
  if (unlink(path->c_str()) != 0 && errno != ENOENT) return ErrnoStatus(errno, "unlink", *path);
  return absl::OkStatus();
}

absl::Status ChecksumStore::RemoveVideo(std::string_view video_id) const {
  if (!IsValidVideoId(video_id)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid video id \"", ToAbsl(video_id), "\""));
  }
  const fs::path dir = root_ / video_id;
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) return ErrnoStatus(ec.value(), "remove", dir);
  return absl::OkStatus();
}

absl::StatusOr<size_t> ChecksumStore::RemoveStale(
    const std::function<bool(const std::string&, const std::string&)>& has_data) const {
  size_t removed = 0;
  // Explicit increment(ec) loops: range-for would throw on a read error.
  std::error_code ec;
  fs::directory_iterator videos(root_, ec);
  for (; !ec && videos != fs::directory_iterator(); videos.increment(ec)) {
    const fs::path& video_dir = videos->path();
    const std::string video_id = video_dir.filename().string();
    std::error_code type_ec;
    if (!IsValidVideoId(video_id) || videos->is_symlink(type_ec) ||
        !videos->is_directory(type_ec)) {
      spdlog::warn("ignoring unexpected {} in the checksum store", video_dir.string());
      continue;
    }
    std::error_code files_ec;
    fs::directory_iterator files(video_dir, files_ec);
    for (; !files_ec && files != fs::directory_iterator(); files.increment(files_ec)) {
      const std::string name = files->path().filename().string();
      const bool stale =
          name.starts_with(kTempPrefix) || (IsValidContentName(name) && !has_data(video_id, name));
      if (!stale) continue;
      std::error_code remove_ec;
      if (fs::remove(files->path(), remove_ec)) ++removed;
      if (remove_ec)
        spdlog::warn("cannot remove {}: {}", files->path().string(), remove_ec.message());
    }
    if (files_ec) return ErrnoStatus(files_ec.value(), "list", video_dir);
    // Fails (harmlessly) unless the directory is empty now.
    rmdir(video_dir.c_str());
  }
  if (ec) return ErrnoStatus(ec.value(), "list", root_);
  return removed;
}

}  // namespace streamgrid::storage
