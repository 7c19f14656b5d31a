#include "content/caching_video_content_service.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace streamgrid {

CachedFile::~CachedFile() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
  if (fd_ >= 0) {
    ::close(fd_);
    --*memfds_;
  }
}

char* CachedFile::Allocate(uint64_t size, bool use_memfd,
                           std::shared_ptr<std::atomic<int>> memfds) {
  if (use_memfd && size > 0) {
    // Every failure here (descriptors or memory exhausted) falls back to the
    // heap: the memfd is an optimisation for sending, not a requirement.
    int fd = ::memfd_create("streamgrid-cache", MFD_CLOEXEC);
    if (fd >= 0) {
      void* map = MAP_FAILED;
      if (::ftruncate(fd, static_cast<off_t>(size)) == 0) {
        map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      }
      if (map != MAP_FAILED) {
        Hold(fd, map, size, std::move(memfds));
        return static_cast<char*>(map);
      }
      ::close(fd);
    }
  }
  heap_.resize(static_cast<size_t>(size));
  data = heap_;
  return heap_.data();
}

absl::Status CachedFile::AdoptFile(int fd, uint64_t size,
                                   std::shared_ptr<std::atomic<int>> memfds) {
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    return absl::InternalError(absl::StrCat("mapping a cache file: ", std::strerror(errno)));
  }
  Hold(fd, map, size, std::move(memfds));
  return absl::OkStatus();
}

void CachedFile::Hold(int fd, void* map, uint64_t size, std::shared_ptr<std::atomic<int>> memfds) {
  fd_ = fd;
  map_ = map;
  map_size_ = size;
  memfds_ = std::move(memfds);
  ++*memfds_;
  data = std::string_view(static_cast<const char*>(map), size);
}

namespace {

// An unnamed file of `size` bytes in `dir` with its space reserved (so that
// filling it cannot run out), or -1 where the directory cannot hold one.
int OpenSpaceInDir(const std::string& dir, uint64_t size) {
  const int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  if (::fallocate(fd, 0, 0, static_cast<off_t>(size)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// One read of a fill that has `got` of the file's `size` bytes so far: at
// least one byte, or an error (DataLoss when the file ends early).
absl::StatusOr<size_t> ReadSome(ContentReader& reader, std::span<char> into, uint64_t got,
                                uint64_t size) {
  absl::StatusOr<size_t> n = reader.Read(into);
  if (n.ok() && *n == 0) {
    return absl::DataLossError(
        absl::StrCat(reader.info().name, " ended after ", got, " of ", size, " bytes"));
  }
  return n;
}

// Copies `size` bytes from `reader` into `fd` from offset 0, in chunks of at
// most `chunk` bytes. Written with write(2) rather than through a mapping,
// so that the page cache takes the bytes in folios as large as the chunks.
absl::Status FillFile(ContentReader& reader, int fd, uint64_t size, size_t chunk) {
  std::vector<char> buffer(static_cast<size_t>(std::min<uint64_t>(size, chunk)));
  uint64_t got = 0;
  while (got < size) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(size - got, buffer.size()));
    absl::StatusOr<size_t> n = ReadSome(reader, std::span(buffer.data(), want), got, size);
    if (!n.ok()) return n.status();
    for (size_t written = 0; written < *n;) {
      const ssize_t w =
          ::pwrite(fd, buffer.data() + written, *n - written, static_cast<off_t>(got + written));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        return absl::InternalError(absl::StrCat("writing a cache file: ", std::strerror(errno)));
      }
      written += static_cast<size_t>(w);
    }
    got += *n;
  }
  return absl::OkStatus();
}

// Serves a byte range of a cached file.
class MemoryReader : public ContentReader {
 public:
  MemoryReader(std::shared_ptr<const CachedFile> file, uint64_t begin, uint64_t end)
      : file_(std::move(file)), pos_(begin), end_(end) {}

  absl::StatusOr<size_t> Read(std::span<char> buffer) override {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buffer.size(), end_ - pos_));
    std::copy_n(file_->data.data() + pos_, n, buffer.data());
    pos_ += n;
    return n;
  }
  const ContentInfo& info() const override { return file_->info; }

 private:
  std::shared_ptr<const CachedFile> file_;
  uint64_t pos_;
  const uint64_t end_;
};

// Passes appends through; a successful commit invalidates the cached copy
// (after the commit, so no reader can refill the cache with the old bytes
// once the new ones are visible: a fill in flight is marked stale too).
class InvalidatingWriter : public ContentWriter {
 public:
  InvalidatingWriter(std::unique_ptr<ContentWriter> inner, CachingVideoContentService& cache,
                     std::string video_id, std::string name)
      : inner_(std::move(inner)),
        cache_(cache),
        video_id_(std::move(video_id)),
        name_(std::move(name)) {}

  absl::Status Append(std::span<const char> data) override { return inner_->Append(data); }
  void Cancel() override { inner_->Cancel(); }
  absl::StatusOr<ContentInfo> Commit() override {
    absl::StatusOr<ContentInfo> info = inner_->Commit();
    // Even a failed commit may have replaced the file (e.g. on some replicas).
    cache_.Invalidate(video_id_, name_);
    return info;
  }

 private:
  std::unique_ptr<ContentWriter> inner_;
  CachingVideoContentService& cache_;
  const std::string video_id_;
  const std::string name_;
};

}  // namespace

CachingVideoContentService::CachingVideoContentService(VideoContentService& inner,
                                                       ContentCacheOptions options)
    : inner_(inner), options_(std::move(options)) {}

CachingVideoContentService::~CachingVideoContentService() = default;

bool CachingVideoContentService::IsCacheableName(std::string_view name) {
  // The upload itself is large, read once by the transcoder and then served
  // rarely: caching it would only push segments out.
  return name != "original";
}

std::string CachingVideoContentService::Key(std::string_view video_id, std::string_view name) {
  std::string key;
  key.reserve(video_id.size() + 1 + name.size());
  key.append(video_id).append("/").append(name);
  return key;
}

std::shared_ptr<const CachedFile> CachingVideoContentService::FreshLocked(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  Entry& entry = it->second;
  const auto ttl = entry.immutable ? options_.immutable_ttl : options_.mutable_ttl;
  if (options_.now() - entry.checked_at >= ttl) return nullptr;
  lru_.splice(lru_.begin(), lru_, entry.lru_pos);
  return entry.file;
}

std::shared_ptr<const CachedFile> CachingVideoContentService::Lookup(std::string_view video_id,
                                                                     std::string_view name) {
  if (!Enabled()) return nullptr;
  const std::string key = Key(video_id, name);
  std::lock_guard lock(mu_);
  std::shared_ptr<const CachedFile> file = FreshLocked(key);
  ++(file ? stats_.hits : stats_.misses);
  return file;
}

CachingVideoContentService::Hit CachingVideoContentService::LookupOrStale(std::string_view video_id,
                                                                          std::string_view name) {
  if (!Enabled()) return {};
  // Every cached response comes through here: the key is built in a buffer
  // the thread reuses rather than allocated per request.
  thread_local std::string key;
  key.assign(video_id).append("/").append(name);
  const auto now = options_.now();
  FrontShard& front = front_[FrontShardIndex()];
  {
    std::lock_guard lock(front.mu);
    if (auto it = front.slots.find(key); it != front.slots.end()) {
      const FrontSlot& slot = it->second;
      if (slot.generation == generation_.load(std::memory_order_acquire) &&
          now < slot.fresh_until && now - slot.touched_at < kFrontTouchEvery) {
        if (std::shared_ptr<const CachedFile> file = slot.file.lock()) {
          ++front.hits;
          return Hit{.file = std::move(file)};
        }
      }
    }
  }
  Hit hit;
  std::chrono::steady_clock::time_point fresh_until;
  uint64_t generation = 0;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end()) {
      ++stats_.misses;
      return {};
    }
    Entry& entry = it->second;
    const auto ttl = entry.immutable ? options_.immutable_ttl : options_.mutable_ttl;
    const auto age = now - entry.checked_at;
    if (age >= ttl + options_.serve_stale_for) {
      ++stats_.misses;
      return {};
    }
    ++stats_.hits;
    lru_.splice(lru_.begin(), lru_, entry.lru_pos);
    hit.file = entry.file;
    // One refresh per TTL: a revalidation that failed (the store briefly
    // away) is asked for again, while one in progress is not duplicated.
    if (age >= ttl && now - entry.refresh_requested >= options_.mutable_ttl) {
      entry.refresh_requested = now;
      hit.refresh = true;
    }
    fresh_until = entry.checked_at + ttl;
    generation = generation_.load(std::memory_order_relaxed);
  }
  if (now < fresh_until) {
    std::lock_guard lock(front.mu);
    // Bounded: a thread that has seen too many names starts over.
    if (front.slots.size() >= kFrontSlots) front.slots.clear();
    front.slots[key] = FrontSlot{
        .file = hit.file, .fresh_until = fresh_until, .touched_at = now, .generation = generation};
  }
  return hit;
}

size_t CachingVideoContentService::FrontShardIndex() {
  static std::atomic<size_t> next{0};
  thread_local const size_t index = next.fetch_add(1, std::memory_order_relaxed) % kFrontShards;
  return index;
}

void CachingVideoContentService::EraseLocked(std::map<std::string, Entry>::iterator it) {
  generation_.fetch_add(1, std::memory_order_release);
  stats_.bytes -= it->second.file->info.size;
  --stats_.entries;
  lru_.erase(it->second.lru_pos);
  entries_.erase(it);
}

void CachingVideoContentService::InsertLocked(const std::string& key,
                                              std::shared_ptr<const CachedFile> file) {
  generation_.fetch_add(1, std::memory_order_release);
  if (auto it = entries_.find(key); it != entries_.end()) EraseLocked(it);
  const uint64_t size = file->info.size;
  if (size > options_.capacity_bytes) return;
  while (stats_.bytes + size > options_.capacity_bytes && !lru_.empty()) {
    EraseLocked(entries_.find(lru_.back()));
    ++stats_.evictions;
  }
  Entry entry;
  entry.file = std::move(file);
  entry.checked_at = options_.now();
  entry.immutable = IsImmutableContentName(std::string_view(key).substr(key.find('/') + 1));
  lru_.push_front(key);
  entry.lru_pos = lru_.begin();
  entries_.emplace(key, std::move(entry));
  stats_.bytes += size;
  ++stats_.entries;
}

void CachingVideoContentService::InvalidateKeyLocked(const std::string& key) {
  if (auto it = entries_.find(key); it != entries_.end()) {
    EraseLocked(it);
    ++stats_.invalidations;
  }
  if (auto it = flights_.find(key); it != flights_.end()) it->second->stale = true;
}

void CachingVideoContentService::Invalidate(std::string_view video_id, std::string_view name) {
  const std::string key = Key(video_id, name);
  std::lock_guard lock(mu_);
  InvalidateKeyLocked(key);
}

void CachingVideoContentService::InvalidateVideo(std::string_view video_id) {
  const std::string prefix = std::string(video_id) + "/";
  std::lock_guard lock(mu_);
  for (auto it = entries_.lower_bound(prefix);
       it != entries_.end() && it->first.starts_with(prefix);) {
    auto next = std::next(it);
    EraseLocked(it);
    ++stats_.invalidations;
    it = next;
  }
  for (auto it = flights_.lower_bound(prefix);
       it != flights_.end() && it->first.starts_with(prefix); ++it) {
    it->second->stale = true;
  }
}

ContentCacheStats CachingVideoContentService::stats() const {
  std::lock_guard lock(mu_);
  ContentCacheStats stats = stats_;
  for (FrontShard& front : front_) {
    std::lock_guard front_lock(front.mu);
    stats.hits += front.hits;
  }
  stats.memfd_files = static_cast<uint64_t>(memfds_->load());
  return stats;
}

absl::StatusOr<std::shared_ptr<const CachedFile>> CachingVideoContentService::ReadAll(
    ContentReader& reader) {
  auto file = std::make_shared<CachedFile>();
  file->info = reader.info();
  const uint64_t size = file->info.size;
  // Sized once from the file's info, and never grown past it: a file that
  // turns out longer than it said is an error, not a bigger allocation. Only
  // files large enough for sendfile to matter take a descriptor, and only up
  // to the budget (a check then an increment: a few over it under a race):
  // an unnamed file in file_dir when there is one and it can, else a memfd.
  const bool with_fd = options_.memfd_min_bytes > 0 && size >= options_.memfd_min_bytes &&
                       memfds_->load() < options_.memfd_max_files;
  if (with_fd && !options_.file_dir.empty()) {
    if (const int fd = OpenSpaceInDir(options_.file_dir, size); fd >= 0) {
      absl::Status filled = FillFile(reader, fd, size, options_.fill_chunk_bytes);
      if (filled.ok()) filled = file->AdoptFile(fd, size, memfds_);
      if (!filled.ok()) {
        ::close(fd);
        return filled;
      }
      return std::shared_ptr<const CachedFile>(std::move(file));
    }
  }
  char* bytes = file->Allocate(size, with_fd, memfds_);
  uint64_t got = 0;
  while (got < size) {
    const size_t want =
        static_cast<size_t>(std::min<uint64_t>(size - got, options_.fill_chunk_bytes));
    absl::StatusOr<size_t> n = ReadSome(reader, std::span(bytes + got, want), got, size);
    if (!n.ok()) return n.status();
    got += *n;
  }
  return std::shared_ptr<const CachedFile>(std::move(file));
}

absl::StatusOr<CachingVideoContentService::Fetched> CachingVideoContentService::Fetch(
    std::string_view video_id, std::string_view name) {
  if (!Enabled() || !IsCacheableName(name)) {
    if (Enabled()) {
      std::lock_guard lock(mu_);
      ++stats_.uncacheable;
    }
    absl::StatusOr<std::unique_ptr<ContentReader>> reader = inner_.OpenReader(video_id, name);
    if (!reader.ok()) return reader.status();
    Fetched fetched;
    fetched.info = (*reader)->info();
    fetched.reader = *std::move(reader);
    return fetched;
  }
  const std::string key = Key(video_id, name);
  std::shared_ptr<Flight> flight;
  bool leader = false;
  {
    std::unique_lock lock(mu_);
    if (std::shared_ptr<const CachedFile> file = FreshLocked(key)) {
      Fetched fetched;
      fetched.info = file->info;
      fetched.file = std::move(file);
      return fetched;
    }
    auto [it, inserted] = flights_.try_emplace(key);
    if (inserted) it->second = std::make_shared<Flight>();
    flight = it->second;
    leader = inserted;
    if (!leader) {
      // The leader's reads have deadlines of their own, so this wait ends.
      flight->cv.wait(lock, [&] { return flight->done; });
      if (!flight->status.ok()) return flight->status;
      if (flight->file) {
        Fetched fetched;
        fetched.info = flight->file->info;
        fetched.file = flight->file;
        return fetched;
      }
      // Not cacheable (too large): a reader of one's own, like any miss.
    }
  }
  if (!leader) {
    absl::StatusOr<std::unique_ptr<ContentReader>> reader = inner_.OpenReader(video_id, name);
    if (!reader.ok()) return reader.status();
    Fetched fetched;
    fetched.info = (*reader)->info();
    fetched.reader = *std::move(reader);
    return fetched;
  }
  absl::StatusOr<Fetched> result = Lead(video_id, name, key, flight);
  {
    std::lock_guard lock(mu_);
    flight->status = result.status();
    if (result.ok()) flight->file = result->file;
    flight->done = true;
    flights_.erase(key);
  }
  flight->cv.notify_all();
  return result;
}

absl::StatusOr<CachingVideoContentService::Fetched> CachingVideoContentService::Lead(
    std::string_view video_id, std::string_view name, const std::string& key,
    const std::shared_ptr<Flight>& flight) {
  // A stale mutable entry: one Stat tells whether it is still the file.
  std::shared_ptr<const CachedFile> stale;
  {
    std::lock_guard lock(mu_);
    if (auto it = entries_.find(key); it != entries_.end()) stale = it->second.file;
  }
  if (stale) {
    absl::StatusOr<ContentInfo> info = inner_.Stat(video_id, name);
    if (!info.ok()) {
      if (absl::IsNotFound(info.status())) Invalidate(video_id, name);
      return info.status();
    }
    if (info->etag == stale->info.etag && info->size == stale->info.size) {
      std::lock_guard lock(mu_);
      auto it = entries_.find(key);
      if (!flight->stale && it != entries_.end() && it->second.file == stale) {
        it->second.checked_at = options_.now();
        lru_.splice(lru_.begin(), lru_, it->second.lru_pos);
        ++stats_.revalidations;
        Fetched fetched;
        fetched.info = stale->info;
        fetched.file = stale;
        return fetched;
      }
    }
  }
  absl::StatusOr<std::unique_ptr<ContentReader>> reader = inner_.OpenReader(video_id, name);
  if (!reader.ok()) {
    if (absl::IsNotFound(reader.status())) Invalidate(video_id, name);
    return reader.status();
  }
  Fetched fetched;
  fetched.info = (*reader)->info();
  if (fetched.info.size > options_.max_file_bytes || fetched.info.size > options_.capacity_bytes) {
    std::lock_guard lock(mu_);
    ++stats_.uncacheable;
    fetched.reader = *std::move(reader);
    return fetched;
  }
  absl::StatusOr<std::shared_ptr<const CachedFile>> file = ReadAll(**reader);
  if (!file.ok()) return file.status();
  fetched.file = *std::move(file);
  std::lock_guard lock(mu_);
  ++stats_.fills;
  // Written or deleted meanwhile by this process: hand out what was read (as
  // an uncached read would) but do not keep it.
  if (!flight->stale) InsertLocked(key, fetched.file);
  return fetched;
}

absl::StatusOr<std::unique_ptr<ContentWriter>> CachingVideoContentService::OpenWriter(
    std::string_view video_id, std::string_view name) {
  absl::StatusOr<std::unique_ptr<ContentWriter>> writer = inner_.OpenWriter(video_id, name);
  if (!writer.ok() || !Enabled()) return writer;
  return std::make_unique<InvalidatingWriter>(*std::move(writer), *this, std::string(video_id),
                                              std::string(name));
}

absl::StatusOr<std::unique_ptr<ContentReader>> CachingVideoContentService::OpenReader(
    std::string_view video_id, std::string_view name, uint64_t offset,
    std::optional<uint64_t> length) {
  std::shared_ptr<const CachedFile> file;
  if (Enabled()) {
    std::lock_guard lock(mu_);
    file = FreshLocked(Key(video_id, name));
  }
  if (!file) return inner_.OpenReader(video_id, name, offset, length);
  const uint64_t size = file->info.size;
  if (offset > size) return absl::OutOfRangeError("offset is past the end of the file");
  const uint64_t end = length ? offset + std::min(*length, size - offset) : size;
  return std::make_unique<MemoryReader>(std::move(file), offset, end);
}

absl::StatusOr<ContentInfo> CachingVideoContentService::Stat(std::string_view video_id,
                                                             std::string_view name) {
  if (Enabled()) {
    std::lock_guard lock(mu_);
    if (std::shared_ptr<const CachedFile> file = FreshLocked(Key(video_id, name))) {
      return file->info;
    }
  }
  return inner_.Stat(video_id, name);
}

absl::StatusOr<std::vector<ContentInfo>> CachingVideoContentService::List(
    std::string_view video_id) {
  return inner_.List(video_id);
}

absl::Status CachingVideoContentService::Delete(std::string_view video_id, std::string_view name) {
  absl::Status status = inner_.Delete(video_id, name);
  if (Enabled()) Invalidate(video_id, name);
  return status;
}

absl::Status CachingVideoContentService::DeleteVideo(std::string_view video_id) {
  absl::Status status = inner_.DeleteVideo(video_id);
  if (Enabled()) InvalidateVideo(video_id);
  return status;
}

absl::Status CachingVideoContentService::CheckWritable() { return inner_.CheckWritable(); }

absl::StatusOr<ContentInfo> CachingVideoContentService::StoreLocalFile(
    std::string_view video_id, std::string_view name, const std::filesystem::path& file) {
  absl::StatusOr<ContentInfo> stored = inner_.StoreLocalFile(video_id, name, file);
  Invalidate(video_id, name);
  return stored;
}

}  // namespace streamgrid
