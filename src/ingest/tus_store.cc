#include "ingest/tus_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "ingest/tus_protocol.h"

namespace streamgrid::ingest {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kDataSuffix = ".part";
constexpr std::string_view kInfoSuffix = ".json";
// Larger info files are not ours.
constexpr uint64_t kMaxInfoBytes = 64 * 1024;

absl::Status FileError(const char* what, const fs::path& path, int err = errno) {
  if (err == ENOSPC || err == EDQUOT) {
    return absl::ResourceExhaustedError("server is out of disk space");
  }
  return absl::InternalError(
      absl::StrCat(what, " ", path.string(), ": ", std::generic_category().message(err)));
}

int64_t WallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A file's modification time: the upload's last activity, across restarts.
std::optional<int64_t> MtimeMillis(const fs::path& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return int64_t{st.st_mtim.tv_sec} * 1000 + st.st_mtim.tv_nsec / 1000000;
}

absl::Status SyncDir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return FileError("cannot open", dir);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  return rc == 0 ? absl::OkStatus() : FileError("cannot flush", dir, err);
}

std::optional<TusUploadInfo> ParseInfo(const std::string& id, const fs::path& path) {
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec || size > kMaxInfoBytes) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json json = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json.contains("length") || !json["length"].is_number_unsigned()) {
    return std::nullopt;
  }
  TusUploadInfo info;
  info.id = id;
  info.length = json["length"].get<uint64_t>();
  info.filename = json.value("filename", "");
  info.title = json.value("title", "");
  info.video_id = json.value("video_id", "");
  return info;
}

}  // namespace

TusStore::TusStore(TusStoreOptions options) : options_(std::move(options)) {}

TusStore::~TusStore() { Stop(); }

int64_t TusStore::Now() const { return options_.now_ms ? options_.now_ms() : WallMillis(); }

fs::path TusStore::DataPath(const std::string& id) const {
  return options_.dir / absl::StrCat(id, ToAbsl(kDataSuffix));
}

fs::path TusStore::InfoPath(const std::string& id) const {
  return options_.dir / absl::StrCat(id, ToAbsl(kInfoSuffix));
}

absl::Status TusStore::Open() {
  std::error_code ec;
  // Made by the first Create(): a server that never sees a resumable upload
  // leaves no trace of them.
  if (!fs::exists(options_.dir, ec)) return absl::OkStatus();
  const int64_t expiry = options_.expiry.count();
  std::vector<fs::path> strays;
  std::map<std::string, Entry> found;
  for (const fs::directory_entry& entry : fs::directory_iterator(options_.dir, ec)) {
    const fs::path& path = entry.path();
    const std::string name = path.filename().string();
    const std::string id = path.stem().string();
    if (path.extension() == kDataSuffix && IsTusUploadId(id)) continue;  // judged with its info
    if (path.extension() != kInfoSuffix || !IsTusUploadId(id)) {
      strays.push_back(path);  // e.g. an info file half-written when the server stopped
      continue;
    }
    std::optional<TusUploadInfo> info = ParseInfo(id, path);
    if (!info) {
      spdlog::warn("tus: {} is unreadable; deleting the upload", path.string());
      strays.push_back(path);
      continue;
    }
    int64_t last_activity = MtimeMillis(path).value_or(Now());
    if (info->video_id.empty()) {
      // Bytes written but never synced may be there too after a crash; they
      // are dropped by the next write (which starts at the durable size), and
      // what a restart finds on disk is what the disk kept.
      const uint64_t size = fs::file_size(DataPath(id), ec);
      info->offset = ec ? 0 : std::min(size, info->length);
      last_activity = std::max(last_activity, MtimeMillis(DataPath(id)).value_or(0));
    } else {
      info->offset = info->length;
    }
    info->expires_at_ms = last_activity + expiry;
    found[id].info = *std::move(info);
  }
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot list ", options_.dir.string(), ": ", ec.message()));
  }
  for (const fs::path& path : strays) {
    std::error_code ignored;
    fs::remove(path, ignored);
  }
  // Bytes files whose info is gone belong to no upload.
  for (const fs::directory_entry& entry : fs::directory_iterator(options_.dir, ec)) {
    const fs::path& path = entry.path();
    if (path.extension() == kDataSuffix && !found.contains(path.stem().string())) {
      std::error_code ignored;
      fs::remove(path, ignored);
    }
  }
  std::lock_guard lock(mu_);
  uploads_ = std::move(found);
  if (!uploads_.empty())
    spdlog::info("tus: {} uploads resumed from {}", uploads_.size(), options_.dir.string());
  return absl::OkStatus();
}

absl::Status TusStore::WriteInfo(const TusUploadInfo& info) {
  nlohmann::json json = {
      {"length", info.length}, {"filename", info.filename}, {"title", info.title}};
  if (!info.video_id.empty()) json["video_id"] = info.video_id;
  // error_handler_t::replace: a file name need not be UTF-8.
  const std::string text = json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const fs::path path = InfoPath(info.id);
  const fs::path tmp = options_.dir / absl::StrCat(info.id, ".tmp");
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return FileError("cannot create", tmp);
  int err = WriteFully(fd, std::span(text.data(), text.size()));
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  ::close(fd);
  if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    return FileError("cannot write", path, err);
  }
  return SyncDir(options_.dir);
}

void TusStore::RemoveFiles(const std::string& id) {
  std::error_code ec;
  // The info file last: a crash in between leaves an upload that a restart
  // finds empty rather than bytes that belong to nothing.
  fs::remove(DataPath(id), ec);
  fs::remove(InfoPath(id), ec);
}

absl::StatusOr<TusUploadInfo> TusStore::Create(uint64_t length, std::string filename,
                                               std::string title) {
  if (length > options_.max_length) {
    return absl::OutOfRangeError(absl::StrCat(
        "Upload-Length ", length, " is larger than the limit of ", options_.max_length, " bytes"));
  }
  TusUploadInfo info;
  info.id = NewTusUploadId();
  info.length = length;
  info.filename = std::move(filename);
  info.title = std::move(title);
  info.expires_at_ms = Now() + options_.expiry.count();
  {
    std::lock_guard lock(mu_);
    if (uploads_.size() >= options_.max_uploads) {
      return absl::UnavailableError(absl::StrCat("too many resumable uploads are held (",
                                                 options_.max_uploads, "); try again later"));
    }
    // Reserved (busy) until its files exist.
    uploads_[info.id] = Entry{.info = info, .busy = true};
  }
  const fs::path data = DataPath(info.id);
  absl::Status status = absl::OkStatus();
  std::error_code ec;
  if (fs::create_directories(options_.dir, ec); ec) {
    status = absl::InternalError(
        absl::StrCat("cannot create ", options_.dir.string(), ": ", ec.message()));
  }
  int fd = -1;
  if (status.ok() &&
      (fd = ::open(data.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640)) < 0) {
    status = FileError("cannot create", data);
  }
  if (fd >= 0) {
    ::close(fd);
    status = WriteInfo(info);  // its directory fsync covers the bytes file's entry too
  }
  std::lock_guard lock(mu_);
  if (!status.ok()) {
    uploads_.erase(info.id);
    RemoveFiles(info.id);
    return status;
  }
  uploads_[info.id].busy = false;
  return info;
}

absl::StatusOr<TusUploadInfo> TusStore::Get(const std::string& id) {
  const int64_t now = Now();
  std::lock_guard lock(mu_);
  auto it = uploads_.find(id);
  // An expired upload the sweep has not reached yet is gone already.
  if (it == uploads_.end() || (!it->second.busy && it->second.info.expires_at_ms <= now)) {
    return absl::NotFoundError("no such upload (it may have expired)");
  }
  return it->second.info;
}

absl::StatusOr<std::unique_ptr<TusWrite>> TusStore::BeginWrite(const std::string& id,
                                                               uint64_t offset) {
  TusUploadInfo info;
  const int64_t now = Now();
  {
    std::lock_guard lock(mu_);
    auto it = uploads_.find(id);
    if (it == uploads_.end() || (!it->second.busy && it->second.info.expires_at_ms <= now)) {
      return absl::NotFoundError("no such upload (it may have expired)");
    }
    if (it->second.busy) {
      return absl::AbortedError("another request is writing this upload; try again shortly");
    }
    if (offset != it->second.info.offset) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Upload-Offset ", offset, " is not the upload's offset ", it->second.info.offset));
    }
    it->second.busy = true;
    info = it->second.info;
  }
  std::unique_ptr<TusWrite> write(new TusWrite(*this, std::move(info), DataPath(id)));
  if (!write->info_.video_id.empty()) return write;  // accepted: nothing to write
  write->fd_ = ::open(write->data_path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
  if (write->fd_ < 0) return FileError("cannot open", write->data_path_);
  // Whatever lies past the durable offset (a write that failed before its
  // fsync) is dropped, so the file is exactly the acknowledged bytes.
  if (::ftruncate(write->fd_, static_cast<off_t>(offset)) != 0 ||
      ::lseek(write->fd_, static_cast<off_t>(offset), SEEK_SET) < 0) {
    return FileError("cannot position", write->data_path_);
  }
  return write;
}

absl::Status TusStore::Delete(const std::string& id) {
  {
    std::lock_guard lock(mu_);
    auto it = uploads_.find(id);
    if (it == uploads_.end()) return absl::NotFoundError("no such upload (it may have expired)");
    if (it->second.busy) {
      return absl::AbortedError("another request is writing this upload; try again shortly");
    }
    uploads_.erase(it);
  }
  RemoveFiles(id);
  return absl::OkStatus();
}

int TusStore::SweepExpired() {
  const int64_t now = Now();
  std::vector<std::string> expired;
  {
    std::lock_guard lock(mu_);
    for (auto it = uploads_.begin(); it != uploads_.end();) {
      if (!it->second.busy && it->second.info.expires_at_ms <= now) {
        expired.push_back(it->first);
        it = uploads_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const std::string& id : expired) {
    RemoveFiles(id);
    spdlog::info("tus: upload {} expired and was deleted", id);
  }
  return static_cast<int>(expired.size());
}

void TusStore::Release(const TusUploadInfo& info, bool removed) {
  std::lock_guard lock(mu_);
  auto it = uploads_.find(info.id);
  if (it == uploads_.end()) return;
  if (removed) {
    uploads_.erase(it);
  } else {
    it->second.busy = false;
  }
}

void TusStore::StartSweep() {
  if (sweeper_.joinable()) return;
  sweeper_ = std::thread([this] { SweepLoop(); });
}

void TusStore::Stop() {
  {
    std::lock_guard lock(sweep_mu_);
    stop_ = true;
  }
  sweep_cv_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
}

void TusStore::SweepLoop() {
  using std::chrono::milliseconds;
  milliseconds interval = options_.sweep_interval;
  if (interval <= milliseconds(0)) {
    interval = std::clamp(options_.expiry / 4, milliseconds(100), milliseconds(60000));
  }
  std::unique_lock lock(sweep_mu_);
  while (!sweep_cv_.wait_for(lock, interval, [this] { return stop_; })) {
    lock.unlock();
    SweepExpired();
    lock.lock();
  }
}

TusWrite::TusWrite(TusStore& store, TusUploadInfo info, fs::path data_path)
    : store_(store),
      info_(std::move(info)),
      data_path_(std::move(data_path)),
      written_(info_.offset),
      writeback_(store.options_.writeback_bytes) {}

TusWrite::~TusWrite() {
  if (fd_ >= 0) ::close(fd_);
  store_.Release(info_, discarded_);
}

absl::Status TusWrite::Append(std::span<const char> data) {
  if (failed_ || fd_ < 0) return absl::FailedPreconditionError("the upload is not writable");
  if (data.size() > info_.length - written_) {
    failed_ = true;
    return absl::OutOfRangeError(
        absl::StrCat("the body goes past Upload-Length (", info_.length, " bytes)"));
  }
  if (int err = WriteFully(fd_, data); err != 0) {
    failed_ = true;
    return FileError("cannot write", data_path_, err);
  }
  written_ += data.size();
  writeback_.Wrote(fd_, written_);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> TusWrite::Sync() {
  if (fd_ < 0) return info_.offset;
  if (::fsync(fd_) != 0) {
    failed_ = true;
    return FileError("cannot flush", data_path_);
  }
  info_.offset = written_;
  info_.expires_at_ms = store_.Now() + store_.options_.expiry.count();
  std::lock_guard lock(store_.mu_);
  auto it = store_.uploads_.find(info_.id);
  if (it != store_.uploads_.end()) it->second.info = info_;
  return info_.offset;
}

absl::Status TusWrite::Rollback() {
  if (fd_ < 0 || written_ == info_.offset) return absl::OkStatus();
  if (::ftruncate(fd_, static_cast<off_t>(info_.offset)) != 0 ||
      ::lseek(fd_, static_cast<off_t>(info_.offset), SEEK_SET) < 0) {
    failed_ = true;
    return FileError("cannot truncate", data_path_);
  }
  written_ = info_.offset;
  return absl::OkStatus();
}

absl::Status TusWrite::MarkAccepted(const std::string& video_id) {
  info_.video_id = video_id;
  info_.offset = info_.length;
  info_.expires_at_ms = store_.Now() + store_.options_.expiry.count();
  if (absl::Status s = store_.WriteInfo(info_); !s.ok()) return s;
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  std::error_code ec;
  fs::remove(data_path_, ec);
  std::lock_guard lock(store_.mu_);
  auto it = store_.uploads_.find(info_.id);
  if (it != store_.uploads_.end()) it->second.info = info_;
  return absl::OkStatus();
}

void TusWrite::Discard() {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  store_.RemoveFiles(info_.id);
  discarded_ = true;
}

}  // namespace streamgrid::ingest
