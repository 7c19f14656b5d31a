#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/file_writes.h"

namespace streamgrid::ingest {

struct TusStoreOptions {
  // Partial uploads live here: "<id>.part" (the bytes so far) beside
  // "<id>.json" (length, names, and once accepted the video id). Best on the
  // upload spool's filesystem, so a finished file is linked, not copied.
  std::filesystem::path dir;
  // Upload-Length above this is refused (OUT_OF_RANGE).
  uint64_t max_length = uint64_t{8} << 30;
  // An upload untouched this long (no byte written, or accepted that long
  // ago) is deleted by the sweep.
  std::chrono::milliseconds expiry = std::chrono::hours(24);
  // How often the sweep looks; 0: a quarter of `expiry`, between 100 ms and a
  // minute.
  std::chrono::milliseconds sweep_interval{0};
  // Uploads held at once at most (partial or accepted, until they expire);
  // more are refused (UNAVAILABLE).
  size_t max_uploads = 10000;
  // Pages are handed to the disk every this many bytes while a PATCH arrives,
  // so its final fsync finds little left.
  uint64_t writeback_bytes = uint64_t{8} << 20;
  // Wall-clock milliseconds (Upload-Expires is a date); tests move it.
  std::function<int64_t()> now_ms;
};

// What is known of one upload.
struct TusUploadInfo {
  std::string id;
  uint64_t length = 0;
  uint64_t offset = 0;  // bytes durably written
  std::string filename;
  std::string title;
  int64_t expires_at_ms = 0;
  // Set once the complete upload was accepted as this video.
  std::string video_id;
};

class TusStore;

// Exclusive write access to one upload, from its current offset on. Not
// thread-safe; every call blocks on the disk. Destroyed without Sync(), the
// bytes appended since are dropped (the next writer starts at the durable
// offset).
class TusWrite {
 public:
  ~TusWrite();
  TusWrite(const TusWrite&) = delete;
  TusWrite& operator=(const TusWrite&) = delete;

  const TusUploadInfo& info() const { return info_; }
  // Bytes written so far, durable or not.
  uint64_t written() const { return written_; }
  // The file holding the bytes.
  const std::filesystem::path& data_path() const { return data_path_; }

  // Appends bytes. OUT_OF_RANGE (and nothing of `data` written) when they
  // would go past the upload's length; after an error the write is unusable
  // but Sync() still makes what was appended before durable.
  absl::Status Append(std::span<const char> data);

  // Makes every appended byte durable (fsync), then reports them as the
  // upload's offset; the upload's expiry restarts. Returns the new offset.
  absl::StatusOr<uint64_t> Sync();

  // Drops what this write appended (back to the offset it began at).
  absl::Status Rollback();

  // Records the complete upload as accepted as video `video_id` and deletes
  // its bytes: HEAD and a repeated final PATCH then answer with the id until
  // the upload expires.
  absl::Status MarkAccepted(const std::string& video_id);

  // Deletes the upload entirely (its content was refused).
  void Discard();

 private:
  friend class TusStore;
  TusWrite(TusStore& store, TusUploadInfo info, std::filesystem::path data_path);

  TusStore& store_;
  TusUploadInfo info_;
  const std::filesystem::path data_path_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool failed_ = false;
  bool discarded_ = false;
  Writeback writeback_;
};

// The partial uploads of the tus protocol, apart from HTTP: create, look up,
// write at the current offset only, delete, expire, and recover after a
// restart (the offset is the durable size of the bytes file). One writer per
// upload at a time. Thread-safe.
class TusStore {
 public:
  explicit TusStore(TusStoreOptions options);
  ~TusStore();  // stops the sweep
  TusStore(const TusStore&) = delete;
  TusStore& operator=(const TusStore&) = delete;

  // Creates the directory and loads the uploads a previous run left (files
  // that belong to no upload are deleted). Call once, before anything else.
  absl::Status Open();

  // Starts the background sweep of expired uploads; Stop() (or the
  // destructor) ends it promptly.
  void StartSweep();
  void Stop();

  // A new, empty upload of `length` bytes. OUT_OF_RANGE above max_length;
  // UNAVAILABLE when max_uploads are held.
  absl::StatusOr<TusUploadInfo> Create(uint64_t length, std::string filename, std::string title);

  // NOT_FOUND for an id not held (malformed ids included; expired ones are
  // gone).
  absl::StatusOr<TusUploadInfo> Get(const std::string& id);

  // Write access at `offset`. NOT_FOUND; FAILED_PRECONDITION when `offset`
  // is not the upload's offset (the message says which it is); ABORTED when
  // another write holds it.
  absl::StatusOr<std::unique_ptr<TusWrite>> BeginWrite(const std::string& id, uint64_t offset);

  // Deletes an upload and its files. NOT_FOUND; ABORTED while written.
  absl::Status Delete(const std::string& id);

  // Deletes the uploads that expired by now (not those being written).
  // Returns how many.
  int SweepExpired();

  const TusStoreOptions& options() const { return options_; }

 private:
  friend class TusWrite;
  struct Entry {
    TusUploadInfo info;
    bool busy = false;
  };
  std::filesystem::path DataPath(const std::string& id) const;
  std::filesystem::path InfoPath(const std::string& id) const;
  absl::Status WriteInfo(const TusUploadInfo& info);
  void RemoveFiles(const std::string& id);
  void Release(const TusUploadInfo& info, bool removed);
  int64_t Now() const;
  void SweepLoop();

  const TusStoreOptions options_;
  std::mutex mu_;
  std::map<std::string, Entry> uploads_;  // guarded by mu_

  std::mutex sweep_mu_;
  std::condition_variable sweep_cv_;
  bool stop_ = false;  // guarded by sweep_mu_
  std::thread sweeper_;
};

}  // namespace streamgrid::ingest
