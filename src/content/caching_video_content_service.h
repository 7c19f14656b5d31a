#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "content/video_content_service.h"

namespace streamgrid {

struct ContentCacheOptions {
  // Bytes of file data kept at most (the sum of the cached files' sizes); 0
  // disables the cache (every call goes to the wrapped service).
  uint64_t capacity_bytes = uint64_t{256} << 20;
  // Files larger than this are never cached.
  uint64_t max_file_bytes = uint64_t{16} << 20;
  // A cached file whose name may be rewritten (manifests, playlists, the
  // thumbnail: anything but a segment) is checked against the wrapped service
  // once it is older than this.
  std::chrono::milliseconds mutable_ttl{std::chrono::seconds(2)};
  // Segments never change under a name, but a video deleted through another
  // web server must stop being served here too: they are checked the same
  // way (one Stat, no read when unchanged) once older than this.
  std::chrono::milliseconds immutable_ttl{std::chrono::seconds(60)};
  // An entry past its TTL by less than this is still served by
  // LookupOrStale() while one background Fetch() revalidates it
  // (stale-while-revalidate), so no viewer waits for that round trip; past
  // it, the entry counts as missing.
  std::chrono::milliseconds serve_stale_for{std::chrono::seconds(10)};
  // Bytes read from the wrapped service per call while filling an entry.
  size_t fill_chunk_bytes = 256 * 1024;
  // Files of at least this size are held in a file with a descriptor (an
  // unnamed file in file_dir, else an in-memory file, memfd) rather than on
  // the heap, so that responses can send them with sendfile(2) instead of
  // copying them into the socket; 0 disables that.
  uint64_t memfd_min_bytes = 16 * 1024;
  // At most this many cached files hold such a descriptor at once (each is
  // one open file of the process); files beyond it go on the heap.
  int memfd_max_files = 2048;
  // When set, a directory on a disk file system: such files are kept in
  // unnamed files there (O_TMPFILE, gone with the process) instead of
  // memfds. Their pages are the file system's page cache, which (ext4, XFS)
  // holds them in large folios, where a memfd has 4 KiB pages: sendfile then
  // hands the socket a few large fragments instead of one per 4 KiB, which
  // costs the server and every client less per byte. Falls back to a memfd
  // where the directory cannot hold one (no O_TMPFILE, no space).
  std::string file_dir;
  // The clock (tests replace it).
  std::function<std::chrono::steady_clock::time_point()> now = [] {
    return std::chrono::steady_clock::now();
  };
};

// What the cache holds and how it has done, for logs and the future /metrics.
struct ContentCacheStats {
  uint64_t bytes = 0;          // data held now (sum of the entries' sizes)
  uint64_t entries = 0;        // files held now
  uint64_t hits = 0;           // lookups answered from memory
  uint64_t misses = 0;         // lookups that had to ask the wrapped service
  uint64_t fills = 0;          // files read into the cache
  uint64_t revalidations = 0;  // stale mutable entries found unchanged by a Stat
  uint64_t evictions = 0;      // entries dropped to make room
  uint64_t invalidations = 0;  // entries dropped because this process wrote or deleted them
  uint64_t uncacheable = 0;    // fetches of files too large (or never cached, like `original`)
  uint64_t memfd_files = 0;  // entries (or evicted files still being sent) holding a descriptor now
};

// A whole file held in memory. Immutable once published; shared by the cache
// and every response still sending it (so an evicted file stays alive until
// the last of them is done). Its bytes are either on the heap or in a file
// mapped here (a memfd, or an unnamed file of ContentCacheOptions::file_dir),
// whose descriptor fd() lets a response hand the pages to the socket with
// sendfile.
class CachedFile {
 public:
  CachedFile() = default;
  ~CachedFile();
  CachedFile(const CachedFile&) = delete;
  CachedFile& operator=(const CachedFile&) = delete;

  ContentInfo info;
  std::string_view data;  // exactly info.size bytes, valid as long as this object

  // A descriptor whose bytes from offset 0 are `data`, or -1 (held on the heap).
  int fd() const { return fd_; }

 private:
  friend class CachingVideoContentService;
  // Makes room for `size` bytes (`data` then views them, zeroed): in a memfd
  // when `use_memfd` (counted in `memfds` while it lives) and that works, else
  // on the heap. Returns where the bytes go.
  char* Allocate(uint64_t size, bool use_memfd, std::shared_ptr<std::atomic<int>> memfds);
  // Takes `fd`, a file holding exactly `size` bytes, as this file's bytes
  // (mapped read-only; counted in `memfds` while it lives). On failure the
  // caller still owns `fd`.
  absl::Status AdoptFile(int fd, uint64_t size, std::shared_ptr<std::atomic<int>> memfds);
  // Makes `fd`, mapped at `map` for `size` bytes, this file's bytes (both
  // released with it), counted in `memfds`.
  void Hold(int fd, void* map, uint64_t size, std::shared_ptr<std::atomic<int>> memfds);

  std::string heap_;
  int fd_ = -1;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::shared_ptr<std::atomic<int>> memfds_;  // set while fd_ is open
};

// A VideoContentService decorator that keeps whole small files in memory, LRU
// by bytes, so hot segments and manifests are served without touching disk or
// the network. Segments (`*.m4s`) never change under a name, so they are
// only rechecked (a Stat, compared by ETag) after `immutable_ttl`, to notice
// deletes made elsewhere; every other cached name after `mutable_ttl`. `original` is never cached.
// This process's writes (through this decorator) and deletes invalidate at once; writes by other
// processes to mutable names are seen after the TTL (LookupOrStale() serves a just-expired
// entry while one background Fetch() revalidates it). Thread-safe; Lookup and LookupOrStale
// never block on I/O, the other calls may.
class CachingVideoContentService : public VideoContentService {
 public:
  // `inner` must outlive this object.
  CachingVideoContentService(VideoContentService& inner, ContentCacheOptions options);
  ~CachingVideoContentService() override;

  // The cached file if it is held and fresh, else null (a miss). Never does
  // I/O, so an event loop may call it. Counts a hit or a miss.
  std::shared_ptr<const CachedFile> Lookup(std::string_view video_id, std::string_view name);

  // What LookupOrStale() found.
  struct Hit {
    std::shared_ptr<const CachedFile> file;  // null: a miss
    // The file is past its TTL: the caller should run Fetch() for it off the
    // event loop (set for one caller per TTL, so refreshes do not pile up).
    bool refresh = false;
  };
  // Like Lookup(), but a file past its TTL by less than serve_stale_for is
  // still returned, with `refresh` asking for its revalidation. Never does I/O.
  Hit LookupOrStale(std::string_view video_id, std::string_view name);

  // What Fetch found: the whole file in memory, or, for a file the cache does
  // not take, its info and a reader already open over the whole file.
  struct Fetched {
    std::shared_ptr<const CachedFile> file;  // set when cached
    ContentInfo info;                        // always set
    std::unique_ptr<ContentReader> reader;   // set when `file` is null
  };
  // The file from the cache, or with one read of the wrapped service that also
  // fills the cache when the file fits (a stale mutable entry costs a Stat
  // first, and no read when unchanged). Concurrent fetches of one missing file
  // share one read (single flight). Blocks: call it off the event loop. The
  // wrapped service's errors (NOT_FOUND, INVALID_ARGUMENT, ...) pass through.
  absl::StatusOr<Fetched> Fetch(std::string_view video_id, std::string_view name);

  // Drops the cached copy of one file, or of every file of a video.
  void Invalidate(std::string_view video_id, std::string_view name);
  void InvalidateVideo(std::string_view video_id);

  ContentCacheStats stats() const;
  const ContentCacheOptions& options() const { return options_; }

  // Whether a name may be cached at all (whether it never changes:
  // IsImmutableContentName()).
  static bool IsCacheableName(std::string_view name);

  // VideoContentService: reads answer from the cache when it holds the file
  // (without filling it on a miss); writes and deletes go through and
  // invalidate.
  absl::StatusOr<std::unique_ptr<ContentWriter>> OpenWriter(std::string_view video_id,
                                                            std::string_view name) override;
  absl::StatusOr<std::unique_ptr<ContentReader>> OpenReader(
      std::string_view video_id, std::string_view name, uint64_t offset = 0,
      std::optional<uint64_t> length = std::nullopt) override;
  absl::StatusOr<ContentInfo> Stat(std::string_view video_id, std::string_view name) override;
  absl::StatusOr<std::vector<ContentInfo>> List(std::string_view video_id) override;
  absl::Status Delete(std::string_view video_id, std::string_view name) override;
  absl::Status DeleteVideo(std::string_view video_id) override;
  absl::Status CheckWritable() override;
  // Forwarded (a hard link on a local inner service); the name is invalidated.
  absl::StatusOr<ContentInfo> StoreLocalFile(std::string_view video_id, std::string_view name,
                                             const std::filesystem::path& file) override;
  bool StoresLocalFilesWithoutCopy() const override { return inner_.StoresLocalFilesWithoutCopy(); }

 private:
  struct Entry {
    std::shared_ptr<const CachedFile> file;
    std::chrono::steady_clock::time_point checked_at;  // filled or last revalidated
    bool immutable = false;
    // When LookupOrStale() last asked a caller to revalidate it.
    std::chrono::steady_clock::time_point refresh_requested{};
    std::list<std::string>::iterator lru_pos;  // in lru_, most recent first
  };
  // A thread's memory of a recent hit, which LookupOrStale() answers from
  // without the shared lock, the map's string compares and the LRU splice
  // (with two event loops, each of those moved cache lines between the
  // cores on every request). It holds no file alive, and counts only while
  // nothing was inserted or erased since (generation_), the entry is fresh,
  // and the global LRU heard of the file within kFrontTouchEvery.
  struct FrontSlot {
    std::weak_ptr<const CachedFile> file;
    std::chrono::steady_clock::time_point fresh_until;
    std::chrono::steady_clock::time_point touched_at;
    uint64_t generation = 0;
  };
  // Used by one thread in the common case (see FrontShardIndex), so its lock
  // is uncontended and its lines stay in that core's cache.
  struct alignas(64) FrontShard {
    mutable std::mutex mu;
    absl::flat_hash_map<std::string, FrontSlot> slots;  // guarded by mu
    uint64_t hits = 0;                                  // guarded by mu; part of stats().hits
  };
  static constexpr size_t kFrontShards = 8;
  static constexpr size_t kFrontSlots = 4096;  // per shard
  static constexpr std::chrono::seconds kFrontTouchEvery{1};
  // The calling thread's shard: threads take them in turn as they first ask.
  static size_t FrontShardIndex();

  // One fetch of a missing file that others wait on.
  struct Flight {
    bool done = false;
    bool stale = false;  // invalidated while in flight: its result is not cached
    absl::Status status;
    std::shared_ptr<const CachedFile> file;  // null when the file was not cacheable
    std::condition_variable cv;
  };

  static std::string Key(std::string_view video_id, std::string_view name);
  bool Enabled() const { return options_.capacity_bytes > 0; }
  // The entry if held and fresh; under mu_. Moves it to the LRU front.
  std::shared_ptr<const CachedFile> FreshLocked(const std::string& key);
  void InsertLocked(const std::string& key, std::shared_ptr<const CachedFile> file);
  void EraseLocked(std::map<std::string, Entry>::iterator it);
  void InvalidateKeyLocked(const std::string& key);
  // Reads the whole file from `reader` into a new CachedFile.
  absl::StatusOr<std::shared_ptr<const CachedFile>> ReadAll(ContentReader& reader);
  // The single-flight leader's work: revalidate or read, then cache.
  absl::StatusOr<Fetched> Lead(std::string_view video_id, std::string_view name,
                               const std::string& key, const std::shared_ptr<Flight>& flight);

  VideoContentService& inner_;
  const ContentCacheOptions options_;

  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;  // by "video_id/name": a video's files are adjacent
  std::list<std::string> lru_;
  std::map<std::string, std::shared_ptr<Flight>> flights_;
  // Cached files holding a memfd now (shared with them: they may outlive this).
  const std::shared_ptr<std::atomic<int>> memfds_ = std::make_shared<std::atomic<int>>(0);
  ContentCacheStats stats_;  // bytes and entries kept current; the counters grow
  // Bumped (under mu_) by every insertion and erasure: a front slot of an
  // older generation is not trusted.
  std::atomic<uint64_t> generation_{0};
  mutable std::array<FrontShard, kFrontShards> front_;
};

}  // namespace streamgrid
