#pragma once

// Internal to the storage engine: what its .cc files share (storage_engine.cc,
// storage_engine_recovery.cc, storage_engine_integrity.cc, storage_engine_list.cc).
// Not for use outside src/storage.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/checksum_store.h"
#include "storage/env.h"
#include "storage/quarantine.h"
#include "storage/storage_engine.h"
#include "storage/stored_file.h"

namespace streamgrid::storage {
namespace engine_internal {

// Temp-file prefixes inside content/<video_id>/ (see StorageEngine's comment).
inline constexpr std::string_view kUploadPrefix = ".tmp-up-";
inline constexpr std::string_view kDeletePrefix = ".tmp-del-";

// INVALID_ARGUMENT naming the video id.
absl::Status InvalidVideoId(std::string_view video_id);

// OK if both are valid, else INVALID_ARGUMENT naming the bad one.
absl::Status Validate(std::string_view video_id, std::string_view name);

// NOT_FOUND naming the file.
absl::Status NotFound(std::string_view video_id, std::string_view name);

// The file's description from its checksum record.
StoredFile MakeStoredFile(std::string_view video_id, std::string_view name,
                          const ChecksumRecord& record);

// Sorted names of the video directories under `root`; other entries are skipped.
absl::StatusOr<std::vector<std::string>> VideoIds(const std::filesystem::path& root);

}  // namespace engine_internal

// What StorageEngine::Inspect() found: the record and the data file as they
// are, and the damage if they do not agree (nothing else set then but detail).
struct StorageEngine::Inspection {
  std::optional<ChecksumRecord> record;
  std::optional<FileStat> data;
  std::optional<Damage> damage;
  std::string detail;
};

}  // namespace streamgrid::storage
