// StorageEngine::List: paged, optionally partition-filtered listings.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "common/strings.h"
#include "storage/sha256.h"
#include "storage/storage_engine.h"
#include "storage/storage_engine_internal.h"

namespace streamgrid::storage {
namespace {

using engine_internal::InvalidVideoId;
using engine_internal::MakeStoredFile;
using engine_internal::VideoIds;

// "video_id/name" ↔ a page token. Tokens are opaque to clients; this one only
// has to survive a round trip and be validated on the way back in.
std::string MakePageToken(std::string_view video_id, std::string_view name) {
  return absl::StrCat(ToAbsl(video_id), "/", ToAbsl(name));
}

absl::StatusOr<std::pair<std::string, std::string>> ParsePageToken(std::string_view token) {
  const size_t slash = token.find('/');
  if (slash == std::string_view::npos || !IsValidVideoId(token.substr(0, slash)) ||
      !IsValidContentName(token.substr(slash + 1))) {
    return absl::InvalidArgumentError("malformed page token");
  }
  return std::make_pair(std::string(token.substr(0, slash)), std::string(token.substr(slash + 1)));
}

// Tells whether a key is in a listing's partitions (see ListOptions). One
// hashing context serves every key, so checking one allocates nothing.
class PartitionFilter {
 public:
  // `bits` and `partitions` must have been validated.
  PartitionFilter(int bits, std::span<const uint32_t> partitions)
      : shift_(64 - bits), wanted_(size_t{1} << bits) {
    for (uint32_t partition : partitions) wanted_[partition] = true;
  }

  bool Matches(std::string_view video_id, std::string_view name) {
    static constexpr std::string_view kSlash = "/";
    hasher_.Reset();
    hasher_.Update(video_id);
    hasher_.Update(kSlash);
    hasher_.Update(name);
    const Sha256::Digest digest = hasher_.Finish();
    uint64_t position = 0;
    for (int i = 0; i < 8; ++i) position = position << 8 | digest[i];
    return wanted_[position >> shift_];
  }

 private:
  const int shift_;
  std::vector<bool> wanted_;  // indexed by partition
  Sha256 hasher_;
};

absl::Status ValidatePartitions(const ListOptions& options) {
  if (options.partitions.empty()) return absl::OkStatus();
  const int bits = options.partition_bits;
  if (bits < 1 || bits > kMaxListPartitionBits) {
    return absl::InvalidArgumentError(absl::StrCat(
        "partition_bits must be 1 to ", kMaxListPartitionBits, " with partitions, got ", bits));
  }
  for (uint32_t partition : options.partitions) {
    if (partition >> bits != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("partition ", partition, " does not fit in ", bits, " bits"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<StoredFilePage> StorageEngine::List(std::string_view video_id,
                                                   std::string_view page_token, size_t page_size) {
  return List(ListOptions{.video_id = std::string(video_id),
                          .page_token = std::string(page_token),
                          .page_size = static_cast<uint32_t>(std::min(page_size, kMaxPageSize))});
}

absl::StatusOr<StoredFilePage> StorageEngine::List(const ListOptions& options, size_t scan_limit) {
  const std::string& video_id = options.video_id;
  if (!video_id.empty() && !IsValidVideoId(video_id)) return InvalidVideoId(video_id);
  if (absl::Status s = ValidatePartitions(options); !s.ok()) return s;
  size_t page_size = options.page_size;
  if (page_size == 0 || page_size > kMaxPageSize) page_size = kMaxPageSize;
  scan_limit = std::max<size_t>(scan_limit, 1);
  std::string after_video, after_name;
  if (!options.page_token.empty()) {
    auto parsed = ParsePageToken(options.page_token);
    if (!parsed.ok()) return parsed.status();
    std::tie(after_video, after_name) = *std::move(parsed);
    if (!video_id.empty() && after_video != video_id) {
      return absl::InvalidArgumentError("page token belongs to another listing");
    }
  }
  std::optional<PartitionFilter> filter;
  if (!options.partitions.empty()) filter.emplace(options.partition_bits, options.partitions);
  std::vector<std::string> video_ids;
  if (!video_id.empty()) {
    video_ids.emplace_back(video_id);
  } else {
    auto all = VideoIds(content_->root());
    if (!all.ok()) return all.status();
    video_ids = *std::move(all);
  }

  StoredFilePage page;
  size_t scanned = 0;
  // The last file examined: where the next page resumes. Reassigned per file,
  // so the strings soon stop allocating.
  std::string last_video, last_name;
  auto first = std::lower_bound(video_ids.begin(), video_ids.end(), after_video);
  for (auto it = first; it != video_ids.end(); ++it) {
    const std::string& id = *it;
    std::shared_lock lock(LockFor(id));
    auto infos = content_->List(id);
    if (!infos.ok()) return infos.status();
    auto start = infos->begin();
    if (id == after_video) {
      // Sorted by name: skip what earlier pages examined.
      start = std::upper_bound(
          infos->begin(), infos->end(), after_name,
          [](const std::string& name, const ContentInfo& info) { return name < info.name; });
    }
    for (auto info = start; info != infos->end(); ++info) {
      if (page.files.size() == page_size || scanned == scan_limit) {
        // There is more to examine. `scanned` > 0 here (page_size and
        // scan_limit are at least 1), so last_name is set.
        page.next_page_token = MakePageToken(last_video, last_name);
        return page;
      }
      ++scanned;
      last_video.assign(id);
      last_name.assign(info->name);
      if (filter && !filter->Matches(id, info->name)) continue;
      // Only files whose record vouches for them: a damaged copy is not one
      // to offer (a read or the scrubber quarantines it).
      auto record = checksums_.Read(id, info->name);
      if (!record.ok()) {
        if (absl::IsDataLoss(record.status())) continue;
        return record.status();
      }
      if (!*record || (*record)->legacy || (*record)->etag != info->etag) continue;
      page.files.push_back(MakeStoredFile(id, info->name, **record));
    }
  }
  return page;
}
}  // namespace streamgrid::storage
