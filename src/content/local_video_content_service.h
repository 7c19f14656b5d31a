#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "content/video_content_service.h"

namespace streamgrid {

// VideoContentService on a local filesystem: `video_id/name` is the file
// `root/video_id/name`. A writer fills a hidden temp file (`.tmp-...`) beside its
// target and Commit() fsyncs it, renames it over the target and fsyncs the
// directory, so a committed file survives a crash or power loss and readers see
// either the old file or the new one, never a mix. An open reader keeps reading
// the file it opened even if that file is replaced or deleted meanwhile.
//
// One service (one process) per root: Open() deletes temp files it finds, which
// would break another process's writers.
//
// Errors beyond the interface's: RESOURCE_EXHAUSTED when the disk or quota is
// full, INTERNAL (with the errno text and path) for other I/O failures. A
// DeleteVideo() that races a writer of the same video may make its Commit() fail;
// UNAVAILABLE from DeleteVideo() means files kept appearing while it removed them.
class LocalVideoContentService : public VideoContentService {
 public:
  // A service over `root`, created if missing. Removes temp files that writers
  // left behind when a previous process died.
  static absl::StatusOr<std::unique_ptr<LocalVideoContentService>> Open(
      const std::filesystem::path& root);

  LocalVideoContentService(const LocalVideoContentService&) = delete;
  LocalVideoContentService& operator=(const LocalVideoContentService&) = delete;

  const std::filesystem::path& root() const { return root_; }

  absl::StatusOr<std::unique_ptr<ContentWriter>> OpenWriter(std::string_view video_id,
                                                            std::string_view name) override;
  absl::StatusOr<std::unique_ptr<ContentReader>> OpenReader(
      std::string_view video_id, std::string_view name, uint64_t offset = 0,
      std::optional<uint64_t> length = std::nullopt) override;
  absl::StatusOr<ContentInfo> Stat(std::string_view video_id, std::string_view name) override;
  absl::StatusOr<std::vector<ContentInfo>> List(std::string_view video_id) override;
  absl::Status Delete(std::string_view video_id, std::string_view name) override;
  absl::Status DeleteVideo(std::string_view video_id) override;
  // Hard-links `file` into place (flushed to disk first) when it is on the
  // root's filesystem, so nothing is copied; otherwise copies it.
  absl::StatusOr<ContentInfo> StoreLocalFile(std::string_view video_id, std::string_view name,
                                             const std::filesystem::path& file) override;
  bool StoresLocalFilesWithoutCopy() const override { return true; }

 private:
  explicit LocalVideoContentService(std::filesystem::path root) : root_(std::move(root)) {}

  std::filesystem::path VideoDir(std::string_view video_id) const;

  const std::filesystem::path root_;
};

}  // namespace streamgrid
