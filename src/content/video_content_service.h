#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace streamgrid {

// A stored file's description.
struct ContentInfo {
  std::string name;  // file name within its video, e.g. "manifest.mpd"
  uint64_t size = 0;
  // Opaque validator that changes whenever the content does; used as the HTTP ETag.
  std::string etag;
};

// A file being written. Nothing is visible to readers until Commit() returns OK;
// a writer destroyed without a successful Commit() leaves no trace.
class ContentWriter {
 public:
  virtual ~ContentWriter() = default;
  // Appends bytes. After an error the writer is unusable.
  virtual absl::Status Append(std::span<const char> data) = 0;
  // Makes the file durable and visible, atomically replacing any earlier file of
  // the same name. Returns the committed file's info.
  virtual absl::StatusOr<ContentInfo> Commit() = 0;
  // Abandons the write from any thread, e.g. while another thread is blocked
  // in Append() on a storage node that stopped reading: that call and every
  // later Append() or Commit() return promptly with an error, and nothing is
  // stored. Called during a Commit(), the file may or may not end up stored.
  // Idempotent. The default does nothing, for writers that never block long
  // (local disk); the writer must still be destroyed by its owner.
  virtual void Cancel() {}
};

// A byte range of a stored file, read sequentially.
class ContentReader {
 public:
  virtual ~ContentReader() = default;
  // Fills up to `buffer.size()` bytes; returns 0 at the end of the range.
  virtual absl::StatusOr<size_t> Read(std::span<char> buffer) = 0;
  // The whole file's info (not just the range).
  virtual const ContentInfo& info() const = 0;
  // Optional: a descriptor the rest of the range can be read from directly.
  // Its bytes from `*position` on are what Read() would return next (as many
  // as remain of the range); it belongs to the reader and stays open as long
  // as the reader. Lets a server send them with sendfile(2) instead of
  // reading them. -1 (the default): none (remote readers, memory).
  virtual int SendableFd(uint64_t* position) const { return -1; }
};

// Where video files (the original upload, manifests, segments, thumbnails) live,
// addressed as `video_id/name`. Implementations are thread-safe; calls may block
// on disk or network, so callers on an event loop run them off it. Files are
// streamed in chunks both ways: no call holds a whole file in memory.
//
// Every call validates its arguments with IsValidVideoId / IsValidContentName
// (common/names.h) and answers INVALID_ARGUMENT before touching storage.
class VideoContentService {
 public:
  virtual ~VideoContentService() = default;

  // Starts writing `video_id/name`.
  virtual absl::StatusOr<std::unique_ptr<ContentWriter>> OpenWriter(std::string_view video_id,
                                                                    std::string_view name) = 0;

  // Reads `length` bytes (to the end when nullopt) from `offset`. NOT_FOUND if the
  // file does not exist; OUT_OF_RANGE if `offset` is past its end.
  virtual absl::StatusOr<std::unique_ptr<ContentReader>> OpenReader(
      std::string_view video_id, std::string_view name, uint64_t offset = 0,
      std::optional<uint64_t> length = std::nullopt) = 0;

  // The file's info, or NOT_FOUND.
  virtual absl::StatusOr<ContentInfo> Stat(std::string_view video_id, std::string_view name) = 0;

  // Every file of a video, sorted by name; empty when there are none.
  virtual absl::StatusOr<std::vector<ContentInfo>> List(std::string_view video_id) = 0;

  // Removes one file. NOT_FOUND if it does not exist.
  virtual absl::Status Delete(std::string_view video_id, std::string_view name) = 0;

  // Removes every file of a video; OK when there were none.
  virtual absl::Status DeleteVideo(std::string_view video_id) = 0;

  // OK if a new video's files can be stored now; UNAVAILABLE saying why not
  // (e.g. a storage node that would hold some of them is down). A cheap
  // up-front check, so an upload is refused before it is accepted rather than
  // failing in transcoding; writes still report their own errors.
  virtual absl::Status CheckWritable() { return absl::OkStatus(); }

  // Stores the complete local file `file` as `video_id/name`, with the same
  // all-or-nothing visibility as a writer's Commit(); `file` itself stays in
  // place. An implementation may share `file`'s storage (a hard link) instead
  // of copying it, so the caller must never modify `file` afterwards (renaming
  // or deleting it is fine). The default copies it through OpenWriter() in
  // chunks.
  virtual absl::StatusOr<ContentInfo> StoreLocalFile(std::string_view video_id,
                                                     std::string_view name,
                                                     const std::filesystem::path& file);

  // True when StoreLocalFile() costs no copy of the bytes (same machine, same
  // filesystem), so a caller that has the whole file on local disk anyway
  // should store it that way rather than stream it through OpenWriter().
  virtual bool StoresLocalFilesWithoutCopy() const { return false; }
};

// Whether a video's file `name` never changes once stored: segments and init
// segments (an encode writes new names rather than rewriting old ones) and
// the storyboard (sheet and track, stored once with the last segments).
// Caches may keep such files for good; manifests, playlists and thumbnails
// may be rewritten.
bool IsImmutableContentName(std::string_view name);

// The default StoreLocalFile(): streams `file` through `content.OpenWriter()`
// in chunks and commits. For implementations whose fast path cannot be used.
absl::StatusOr<ContentInfo> CopyLocalFile(VideoContentService& content, std::string_view video_id,
                                          std::string_view name, const std::filesystem::path& file);

}  // namespace streamgrid
