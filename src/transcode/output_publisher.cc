#include "transcode/output_publisher.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <optional>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "transcode/live_playlists.h"

namespace streamgrid {
namespace {

namespace fs = std::filesystem;

struct SegmentName {
  std::string representation;
  uint64_t number = 0;  // 0 for the init segment
};

// "chunk-3-00012.m4s" -> {"3", 12}; "init-3.m4s" -> {"3", 0}; else nothing.
std::optional<SegmentName> ParseSegmentName(std::string_view name) {
  constexpr std::string_view kExtension = ".m4s";
  if (!name.ends_with(kExtension)) return std::nullopt;
  name.remove_suffix(kExtension.size());
  auto all_digits = [](std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (name.starts_with("init-")) {
    name.remove_prefix(5);
    if (!all_digits(name)) return std::nullopt;
    return SegmentName{std::string(name), 0};
  }
  if (!name.starts_with("chunk-")) return std::nullopt;
  name.remove_prefix(6);
  size_t dash = name.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  std::string_view representation = name.substr(0, dash);
  std::string_view number = name.substr(dash + 1);
  if (!all_digits(representation) || !all_digits(number)) return std::nullopt;
  SegmentName parsed{std::string(representation), 0};
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), parsed.number);
  // Numbering starts at 1; 0 would be taken for an init segment.
  if (ec != std::errc() || parsed.number == 0) return std::nullopt;
  return parsed;
}

// Stores run this many at a time: in cluster mode each is a round trip to R
// nodes and an fsync on each, so one after another they add up (a dozen
// files when ffmpeg closes its first segments, as many again at the end).
constexpr size_t kParallelStores = 4;

// Names the calling thread (for top -H, perf, /proc) and lowers its nice value
// to `nice` if that is lower priority than its own. Threads it creates
// afterwards inherit both. Best effort: a failure leaves it as it was.
void LowerThisThread(int nice) {
  ::pthread_setname_np(::pthread_self(), "sg-publish");
  if (nice <= 0) return;
  const pid_t tid = static_cast<pid_t>(::syscall(SYS_gettid));
  errno = 0;
  const int current = ::getpriority(PRIO_PROCESS, tid);
  if (errno != 0 || current >= nice) return;
  // Lowering needs no privilege; with PRIO_PROCESS and a thread id it touches
  // this thread only (Linux), not the server's other threads or ffmpeg.
  ::setpriority(PRIO_PROCESS, tid, nice);
}

// Runs `tasks` on up to kParallelStores threads (the caller's among them),
// starting no new one after one has returned false. True if all returned true.
bool RunParallel(const std::vector<std::function<bool()>>& tasks) {
  if (tasks.empty()) return true;
  if (tasks.size() == 1) return tasks.front()();
  std::atomic<size_t> next = 0;
  std::atomic<bool> ok = true;
  auto worker = [&] {
    while (ok) {
      const size_t i = next++;
      if (i >= tasks.size()) return;
      if (!tasks[i]()) ok = false;
    }
  };
  std::vector<std::thread> threads;
  for (size_t i = 1; i < std::min(kParallelStores, tasks.size()); ++i) threads.emplace_back(worker);
  worker();
  for (std::thread& thread : threads) thread.join();
  return ok;
}

// Files of one stage may be stored together; a later stage may name files of
// an earlier one, so it waits for all of them: segments and anything else,
// then the media playlists and the DASH manifest (both name only segments),
// then the master playlist (it names the media playlists). One round trip to
// the storage nodes fewer than a stage of its own for the manifest.
int Stage(std::string_view name) {
  if (name == "manifest.mpd") return 1;
  if (name == "master.m3u8") return 2;
  if (name.ends_with(".m3u8")) return 1;
  return 0;
}

bool IsMediaPlaylistName(std::string_view name) {
  return name.starts_with("media_") && name.ends_with(".m3u8");
}

// The whole of a small text file (a playlist), or nothing.
std::optional<std::string> ReadSmallFile(const fs::path& path) {
  constexpr std::streamsize kMaxBytes = 4 << 20;
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text(kMaxBytes, '\0');
  in.read(text.data(), kMaxBytes);
  if (in.bad()) return std::nullopt;
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

}  // namespace

std::vector<std::string> CompletedWhileEncoding(const std::vector<std::string>& names,
                                                const std::set<std::string>& listed) {
  // The highest media segment number seen per representation.
  std::map<std::string, uint64_t> last;
  for (const std::string& name : names) {
    std::optional<SegmentName> segment = ParseSegmentName(name);
    if (!segment || segment->number == 0) continue;
    uint64_t& highest = last[segment->representation];
    highest = std::max(highest, segment->number);
  }
  std::vector<std::string> complete;
  for (const std::string& name : names) {
    std::optional<SegmentName> segment = ParseSegmentName(name);
    if (!segment) continue;
    auto it = last.find(segment->representation);
    // The last segment may still be growing; an earlier one (or the init
    // segment) was closed before the next was opened, and one a playlist
    // lists was closed before the playlist was written.
    if ((it != last.end() && segment->number < it->second) ||
        (segment->number > 0 && listed.contains(name))) {
      complete.push_back(name);
    }
  }
  return complete;
}

OutputPublisher::OutputPublisher(fs::path dir, StoreFn store,
                                 std::chrono::milliseconds poll_interval,
                                 std::function<void(const absl::Status&)> on_error)
    : dir_(std::move(dir)),
      store_(std::move(store)),
      poll_interval_(poll_interval),
      on_error_(std::move(on_error)) {}

OutputPublisher::~OutputPublisher() { Stop().IgnoreError(); }

void OutputPublisher::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Loop(); });
}

absl::Status OutputPublisher::Stop() {
  std::thread thread;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    thread.swap(thread_);
  }
  cv_.notify_all();
  if (thread.joinable()) thread.join();
  std::lock_guard lock(mu_);
  return error_;
}

bool OutputPublisher::StampOf(const fs::path& path, Stamp* stamp) {
  std::error_code ec;
  stamp->size = fs::file_size(path, ec);
  if (ec) return false;
  stamp->mtime = fs::last_write_time(path, ec);
  return !ec;
}

bool OutputPublisher::Publish(const std::string& name) {
  const fs::path path = dir_ / name;
  // Stamped before storing: a change during the store shows at Finish().
  Stamp stamp;
  if (!StampOf(path, &stamp)) stamp = Stamp{};
  {
    std::lock_guard lock(mu_);
    if (attempted_set_.insert(name).second) attempted_.push_back(name);
  }
  absl::Status stored = store_(name, path);
  std::lock_guard lock(mu_);
  if (!stored.ok()) {
    if (error_.ok()) error_ = stored;
    return false;
  }
  published_[name] = stamp;
  return true;
}

void OutputPublisher::EnableLivePlaylists(fs::path scratch_dir, std::function<void()> on_playable,
                                          StoredSegmentsFn stored_segments) {
  live_dir_ = std::move(scratch_dir);
  on_playable_ = std::move(on_playable);
  stored_segments_ = std::move(stored_segments);
}

void OutputPublisher::SetBackgroundNice(int nice) { background_nice_ = nice; }

void OutputPublisher::Loop() {
  // RunParallel()'s threads are created from this one and inherit its nice
  // value. Without live playlists nothing waits for the stores before ffmpeg
  // exits; with them, the first playable does (PublishLive() lowers it then).
  LowerThisThread(live_dir_.empty() ? background_nice_ : 0);
  while (true) {
    {
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, poll_interval_, [this] { return stopping_; })) return;
    }
    if (!PublishCompleted()) return;
  }
}

bool OutputPublisher::PublishCompleted() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir_, ec)) {
    std::string name = entry.path().filename().string();
    // ffmpeg's temporary files ("....m4s.tmp" before the rename) are not
    // segment names, so CompletedWhileEncoding() passes them over.
    if (IsValidContentName(name)) names.push_back(std::move(name));
  }
  if (ec) return true;  // not created yet, or being removed: the next look decides
  std::sort(names.begin(), names.end());
  // What ffmpeg's playlists list is closed: no need to wait for the next
  // segment to appear (4 s of video later).
  std::set<std::string> listed;
  for (const std::string& name : names) {
    if (!IsMediaPlaylistName(name)) continue;
    if (std::optional<std::string> text = ReadSmallFile(dir_ / name)) {
      for (std::string& segment : PlaylistSegments(*text)) listed.insert(std::move(segment));
    }
  }
  std::vector<std::function<bool()>> stores;
  for (const std::string& name : CompletedWhileEncoding(names, listed)) {
    {
      std::lock_guard lock(mu_);
      if (published_.contains(name)) continue;
    }
    stores.push_back([this, name] {
      {
        std::lock_guard lock(mu_);
        if (stopping_) return false;
      }
      return Publish(name);
    });
  }
  if (!RunParallel(stores)) {
    absl::Status error;
    {
      std::lock_guard lock(mu_);
      if (error_.ok()) return false;  // stopping, not failing
      error = error_;
    }
    if (on_error_) on_error_(error);
    return false;
  }
  if (!live_dir_.empty() && !PublishLive(names)) {
    absl::Status error;
    {
      std::lock_guard lock(mu_);
      error = error_;
    }
    if (on_error_) on_error_(error);
    return false;
  }
  return true;
}

bool OutputPublisher::PublishUntracked(const std::string& name, const fs::path& path) {
  {
    std::lock_guard lock(mu_);
    if (attempted_set_.insert(name).second) attempted_.push_back(name);
  }
  absl::Status stored = store_(name, path);
  if (stored.ok()) return true;
  std::lock_guard lock(mu_);
  if (error_.ok()) error_ = stored;
  return false;
}

bool OutputPublisher::PublishLive(const std::vector<std::string>& names) {
  auto stored = [this](std::string_view name) {
    std::lock_guard lock(mu_);
    return published_.contains(std::string(name));
  };
  std::error_code ec;
  fs::create_directories(live_dir_, ec);
  std::vector<std::function<bool()>> stores;
  std::vector<std::pair<std::string, size_t>> written;
  for (const std::string& name : names) {
    if (!IsMediaPlaylistName(name)) continue;
    std::optional<std::string> text = ReadSmallFile(dir_ / name);
    if (!text) continue;
    size_t count = 0;
    std::optional<std::string> live = LiveMediaPlaylist(*text, stored, &count);
    if (!live) continue;
    auto floor = live_segments_.find(name);
    if (floor == live_segments_.end()) {
      // Asked once per playlist: what an earlier run left stays until this
      // run has more to list (a shorter playlist would move players back).
      floor = live_segments_.emplace(name, stored_segments_ ? stored_segments_(name) : 0).first;
    }
    if (count <= floor->second) continue;
    const fs::path path = live_dir_ / name;
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out << *live;
      out.close();
      if (!out) continue;  // scratch space trouble: the final playlists still come
    }
    written.emplace_back(name, count);
    stores.push_back([this, name, path] {
      {
        std::lock_guard lock(mu_);
        if (stopping_) return true;  // not an error; nothing more is stored
      }
      return PublishUntracked(name, path);
    });
  }
  if (!RunParallel(stores)) return false;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return true;
  }
  for (const auto& [name, count] : written) live_segments_[name] = count;
  if (master_live_) return true;
  std::optional<std::string> master = ReadSmallFile(dir_ / "master.m3u8");
  if (!master) return true;
  std::vector<std::string> uris = MasterPlaylistUris(*master);
  if (uris.empty()) return true;
  for (const std::string& uri : uris) {
    auto it = live_segments_.find(uri);
    if (it == live_segments_.end() || it->second == 0) return true;
  }
  // ffmpeg writes the master once, before it is complete for us: the stamp
  // lets Finish() store it again should it change after all.
  if (!Publish("master.m3u8")) return false;
  master_live_ = true;
  if (on_playable_) on_playable_();
  // Playable: from here the stores have slack until ffmpeg exits.
  LowerThisThread(background_nice_);
  return true;
}

absl::Status OutputPublisher::Finish(const std::vector<std::string>& files) {
  if (absl::Status background = Stop(); !background.ok()) return background;
  // Consecutive names of one stage are stored together; the next stage
  // starts once they all are.
  for (size_t begin = 0; begin < files.size();) {
    size_t end = begin;
    while (end < files.size() && Stage(files[end]) == Stage(files[begin])) ++end;
    std::vector<std::function<bool()>> stores;
    for (size_t i = begin; i < end; ++i) {
      const std::string& name = files[i];
      std::optional<Stamp> before;
      {
        std::lock_guard lock(mu_);
        if (auto it = published_.find(name); it != published_.end()) before = it->second;
      }
      Stamp now;
      if (before && StampOf(dir_ / name, &now) && now == *before) continue;
      stores.push_back([this, name] { return Publish(name); });
    }
    if (!RunParallel(stores)) {
      std::lock_guard lock(mu_);
      return error_;
    }
    begin = end;
  }
  return absl::OkStatus();
}

std::vector<std::string> OutputPublisher::attempted() const {
  std::lock_guard lock(mu_);
  return attempted_;
}

}  // namespace streamgrid
