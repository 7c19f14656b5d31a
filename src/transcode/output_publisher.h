#pragma once

// Stores the files of a running ladder encode while ffmpeg is still writing the
// rest, so that distributing the renditions overlaps with encoding them. Up to
// four stores run at once (each is a round trip to the storage nodes).
// Internal to src/transcode.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"

namespace streamgrid {

// The names among `names` (one listing of the output directory of a running
// ladder encode) that ffmpeg has finished writing and will not touch again:
// every media segment "chunk-N-K.m4s" for which a later segment of the same
// representation N exists, and the init segment "init-N.m4s" once any media
// segment of N exists (the dash muxer writes a representation's segments one
// after another and its init segment before them). Manifests, playlists,
// temporary files and anything else are never complete while ffmpeg runs.
// A segment named in `listed` (the segments ffmpeg's media playlists list: it
// rewrites them after closing each segment) is complete too, even when it is
// its representation's last so far.
std::vector<std::string> CompletedWhileEncoding(const std::vector<std::string>& names,
                                                const std::set<std::string>& listed = {});

class OutputPublisher {
 public:
  // Stores `path` as `name`; returns when it is stored or has failed for good
  // (the callee retries what is worth retrying).
  using StoreFn =
      std::function<absl::Status(const std::string& name, const std::filesystem::path& path)>;

  // Publishes files of `dir` through `store`, looking for newly completed ones
  // every `poll_interval` once started. `on_error` (may be empty) is called once,
  // on the publishing thread, when a store fails: the caller should stop the
  // encode, which can no longer succeed.
  OutputPublisher(std::filesystem::path dir, StoreFn store, std::chrono::milliseconds poll_interval,
                  std::function<void(const absl::Status&)> on_error);
  // Stops the background thread (see Stop()).
  ~OutputPublisher();

  OutputPublisher(const OutputPublisher&) = delete;
  OutputPublisher& operator=(const OutputPublisher&) = delete;

  // Makes the video playable while it is encoded: after each look, the HLS
  // media playlists ffmpeg keeps in `dir` are stored as EVENT playlists
  // (LiveMediaPlaylist(), written to `scratch_dir` first) listing only segments
  // already stored, and once every playlist the master names lists a segment,
  // the master playlist is stored and `on_playable` (may be empty) is called
  // once, on the publishing thread. Finish() then stores the final playlists
  // over the EVENT ones. Call before Start().
  //
  // `stored_segments` (may be empty) tells how many segments the copy of a
  // media playlist already stored (by an earlier, interrupted run of the
  // job) lists, 0 if none: a live playlist is stored only once it lists more,
  // so a player watching the video never sees its playlist shrink when
  // another run takes over.
  using StoredSegmentsFn = std::function<size_t(const std::string& name)>;
  void EnableLivePlaylists(std::filesystem::path scratch_dir, std::function<void()> on_playable,
                           StoredSegmentsFn stored_segments = {});

  // The background thread, and the stores it runs, lower their own nice value
  // to `nice` (per thread; never raised, 0 or less leaves them at the
  // caller's): ffmpeg then gets the cores first and the stores, which have
  // slack until it exits, run in what it leaves idle. With live playlists,
  // only once the video is playable (the master stored): the way to the
  // first playable stays at the caller's priority. Finish() runs on the
  // caller's thread at the caller's priority. Call before Start().
  void SetBackgroundNice(int nice);

  // Starts publishing completed files in the background. Call at most once.
  void Start();

  // Stops the background thread after the stores under way, if any, and joins
  // it; returns the first store error. Callable more than once.
  absl::Status Stop();

  // After ffmpeg has exited and the outputs are final: stops the background
  // thread, then stores, in the order given, every name of `files` (in `dir`)
  // not yet stored or changed (size or modification time) since it was. Names
  // of one stage (segments and other files; media playlists and the DASH
  // manifest; the master) next to each other in `files` are stored a few at a time;
  // a later stage starts once the earlier one is stored. Stops at the first
  // error and returns it (or an earlier background error).
  absl::Status Finish(const std::vector<std::string>& files);

  // Every name a store was started for (stored, failed or half written), in
  // the order they were started, without repeats: what to delete to undo.
  std::vector<std::string> attempted() const;

 private:
  struct Stamp {
    uintmax_t size = 0;
    std::filesystem::file_time_type mtime;
    bool operator==(const Stamp&) const = default;
  };

  void Loop();
  // One look at `dir_`: stores what is complete, then the live playlists.
  // False once a store has failed (on_error_ called) or a stop was asked.
  bool PublishCompleted();
  // Stores the EVENT playlists that list more than last time, and the master
  // once all of them list something. False on a failed store.
  bool PublishLive(const std::vector<std::string>& names);
  // Stores `path` as `name` without remembering a stamp: Finish() stores the
  // final file of that name whatever happens. False (error kept) on failure.
  bool PublishUntracked(const std::string& name, const std::filesystem::path& path);
  // Stores `name` and remembers its stamp; false (and the error kept) on failure.
  bool Publish(const std::string& name);
  static bool StampOf(const std::filesystem::path& path, Stamp* stamp);

  const std::filesystem::path dir_;
  const StoreFn store_;
  const std::chrono::milliseconds poll_interval_;
  const std::function<void(const absl::Status&)> on_error_;
  int background_nice_ = 0;
  std::filesystem::path live_dir_;  // empty: no live playlists
  std::function<void()> on_playable_;
  StoredSegmentsFn stored_segments_;
  std::map<std::string, size_t> live_segments_;  // per media playlist, as stored
  bool master_live_ = false;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  absl::Status error_;                      // first store error
  std::map<std::string, Stamp> published_;  // stored, with the file's stamp then
  std::vector<std::string> attempted_;      // in order
  std::set<std::string> attempted_set_;
  std::thread thread_;
};

}  // namespace streamgrid
