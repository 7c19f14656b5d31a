#include "storage/node_puller.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "storage/sha256.h"

namespace streamgrid::storage {
namespace {

PullResult SourceFailed(absl::Status error) {
  PullResult result;
  result.source_error = std::move(error);
  return result;
}

}  // namespace

NodePuller::NodePuller(StorageEngine& engine, NodePullerOptions options)
    : engine_(engine), options_(std::move(options)) {}

std::shared_ptr<StorageClient> NodePuller::ClientFor(const std::string& address) {
  std::lock_guard lock(mu_);
  auto it = clients_.find(address);
  if (it != clients_.end()) return it->second;
  // A cluster has few nodes; a bound keeps a caller naming many addresses
  // from growing the map without end.
  if (clients_.size() >= kMaxCachedClients) clients_.clear();
  auto client = std::make_shared<StorageClient>(
      StorageClient::MakeChannel(address, options_.security),
      StorageClientOptions{.call_timeout = options_.call_timeout,
                           .transfer_timeout = options_.transfer_timeout});
  clients_.emplace(address, client);
  return client;
}

absl::StatusOr<PullResult> NodePuller::Pull(const PullSpec& spec,
                                            const std::function<bool()>& cancelled) {
  std::optional<std::string> sha256 = NormalizeSha256Hex(spec.sha256);
  if (!sha256) return absl::InvalidArgumentError("sha256 is not 64 hex digits");
  if (spec.source_address.empty()) return absl::InvalidArgumentError("no source address");
  // Names are checked here, before anything is asked of the source.
  absl::StatusOr<std::unique_ptr<StorageEngine::Upload>> upload =
      engine_.StartUpload(spec.video_id, spec.name, spec.size);
  if (!upload.ok()) return upload.status();

  // No whole-file hash on the way in: Commit checks the SHA-256 of what was
  // written, and the source verified every byte it sent.
  absl::StatusOr<std::unique_ptr<StorageClient::GetStream>> get =
      ClientFor(spec.source_address)
          ->OpenGet(spec.video_id, spec.name, /*offset=*/0, /*length=*/0, /*verify=*/false);
  if (!get.ok()) return SourceFailed(get.status());
  const StoredFile& info = (*get)->file();
  if (info.size != spec.size || NormalizeSha256Hex(info.sha256) != sha256) {
    return SourceFailed(absl::AbortedError(absl::StrCat(
        "the source holds another version (", info.size, " bytes, sha256 ", info.sha256, ")")));
  }
  while (true) {
    if (cancelled && cancelled()) return absl::CancelledError("pull cancelled; nothing stored");
    absl::StatusOr<std::span<const char>> chunk = (*get)->Next();
    if (!chunk.ok()) return SourceFailed(chunk.status());
    if (chunk->empty()) break;
    if (absl::Status s = (*upload)->Append(*chunk); !s.ok()) return s;
  }
  absl::StatusOr<StoredFile> file = (*upload)->Commit(*sha256);
  // The upload hashes what it was given, so a mismatch is the bytes that
  // came from the source (damaged there or in transit), not this node.
  if (absl::IsDataLoss(file.status())) return SourceFailed(file.status());
  if (!file.ok()) return file.status();
  PullResult result;
  result.file = *std::move(file);
  return result;
}

}  // namespace streamgrid::storage
