#include "storage/node_puller.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <string_view>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/durations.h"
#include "storage/chunk_prefetcher.h"
#include "storage/sha256.h"

namespace streamgrid::storage {
namespace {

PullResult SourceFailed(absl::Status error) {
  PullResult result;
  result.source_error = std::move(error);
  return result;
}

// True for HOST:PORT with a DNS name, an IPv4 address or a bracketed IPv6
// address. gRPC reads a channel target as a URI, so anything else (a scheme
// such as unix: or a path) could make this node connect where the cluster
// never put a node.
bool IsHostPort(std::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = address.substr(0, colon);
  std::string_view port = address.substr(colon + 1);
  if (port.empty() || port.size() > 5 || !absl::c_all_of(port, absl::ascii_isdigit)) return false;
  uint32_t port_number = 0;
  for (char c : port) port_number = port_number * 10 + static_cast<uint32_t>(c - '0');
  if (port_number == 0 || port_number > 65535) return false;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    return !host.empty() && absl::c_all_of(host, [](char c) {
      return absl::ascii_isxdigit(c) || c == ':' || c == '.';
    });
  }
  return !host.empty() && host.size() <= 253 && host.front() != '-' &&
         absl::c_all_of(host,
                        [](char c) { return absl::ascii_isalnum(c) || c == '.' || c == '-'; });
}

}  // namespace

absl::Status NodePuller::ConfirmDamage(StorageClient& source, const PullSpec& spec,
                                       std::span<const BlockDigest> received,
                                       std::span<const BlockDigest> sent,
                                       const absl::Status& mismatch) {
  // The source sent its stored bytes unverified: the first block whose bytes
  // do not hash to the digest it has stored is read again, verified there,
  // which quarantines the copy if it is damaged on the source's disk.
  size_t block = 0;
  while (block < received.size() && block < sent.size() && received[block] == sent[block]) {
    ++block;
  }
  const std::string what =
      absl::StrCat("node ", spec.source_address, " sent ", spec.video_id, "/", spec.name,
                   " with block ", block, " not matching its stored digest");
  if (block >= received.size() || block >= sent.size()) {
    // Not a damaged block (a digest missing or too many): nothing to re-read.
    return absl::DataLossError(
        absl::StrCat(mismatch.message(), " (from node ", spec.source_address, "; nothing stored)"));
  }
  absl::StatusOr<std::unique_ptr<StorageClient::GetStream>> again =
      source.OpenGet(spec.video_id, spec.name, block * kChecksumBlockBytes, /*length=*/1,
                     /*verify=*/false);
  absl::Status reread = again.status();
  while (reread.ok()) {
    absl::StatusOr<std::span<const char>> next = (*again)->Next();
    if (!next.ok()) reread = next.status();
    if (!next.ok() || next->empty()) break;
  }
  if (absl::IsDataLoss(reread)) {
    spdlog::error("{}: its copy is damaged, and it quarantined it: {}", what, reread.ToString());
    return absl::DataLossError(
        absl::StrCat(what, ": its copy is damaged (", reread.message(), "); nothing stored"));
  }
  if (reread.ok()) {
    spdlog::error("{}: the block reads back intact there, so it was damaged on the way", what);
    return absl::DataLossError(absl::StrCat(what,
                                            ": damaged on the way (it reads back intact "
                                            "there); nothing stored"));
  }
  spdlog::error("{}: reading that block again failed: {}", what, reread.ToString());
  return absl::DataLossError(
      absl::StrCat(what, " (reading it again failed: ", reread.message(), "); nothing stored"));
}

NodePuller::NodePuller(StorageEngine& engine, NodePullerOptions options)
    : engine_(engine), options_(std::move(options)) {}

std::shared_ptr<StorageClient> NodePuller::ClientFor(const std::string& address) {
  std::lock_guard lock(mu_);
  auto it = clients_.find(address);
  if (it != clients_.end()) return it->second;
  // A cluster has few nodes; a bound keeps a caller naming many addresses
  // from growing the map without end.
  if (clients_.size() >= kMaxCachedClients) clients_.clear();
  // A fixed receive window of several chunks, so that the source can send
  // ahead of this node's reads (see receive_ahead_chunks).
  auto client = std::make_shared<StorageClient>(
      StorageClient::MakeChannel(address, options_.security, options_.receive_window_bytes),
      StorageClientOptions{.call_timeout = options_.call_timeout,
                           .transfer_timeout = options_.transfer_timeout});
  clients_.emplace(address, client);
  return client;
}

absl::StatusOr<PullResult> NodePuller::Pull(const PullSpec& spec,
                                            const std::function<bool()>& cancelled) {
  std::optional<std::string> sha256 = NormalizeSha256Hex(spec.sha256);
  if (!sha256) return absl::InvalidArgumentError("sha256 is not 64 hex digits");
  if (!IsHostPort(spec.source_address)) {
    return absl::InvalidArgumentError("source_address must be HOST:PORT of a storage node");
  }
  // Names are checked here, before anything is asked of the source. The
  // upload counts on the source's block digests (one hash pass here instead
  // of two); a source that does not send them gets a plain upload below.
  absl::StatusOr<std::unique_ptr<StorageEngine::Upload>> upload =
      engine_.StartUpload(spec.video_id, spec.name, spec.size, /*sender_block_digests=*/true);
  if (!upload.ok()) return upload.status();

  // No whole-file hash on the way in: the upload checks each block against
  // the digest the source has stored (or, from a source without digests,
  // hashes the whole file itself), so the source need not hash what it sends
  // (receiver_verifies_blocks); a damaged block is caught here, and the
  // source quarantines it when asked for that block again (ConfirmDamage).
  std::shared_ptr<StorageClient> source = ClientFor(spec.source_address);
  absl::StatusOr<std::unique_ptr<StorageClient::GetStream>> get =
      source->OpenGet(spec.video_id, spec.name, /*offset=*/0, /*length=*/0, /*verify=*/false,
                      /*block_digests=*/true, /*receiver_verifies_blocks=*/true);
  if (!get.ok()) return SourceFailed(get.status());
  const StoredFile& info = (*get)->file();
  if (info.size != spec.size || NormalizeSha256Hex(info.sha256) != sha256) {
    return SourceFailed(absl::AbortedError(absl::StrCat(
        "the source holds another version (", info.size, " bytes, sha256 ", info.sha256, ")")));
  }
  const bool digests = (*get)->block_digests_follow();
  if (!digests) {
    // An older node: nothing to check the blocks against, so the upload
    // hashes the whole file too (the first one is abandoned, its temp file
    // removed, before the new one starts).
    upload->reset();
    upload = engine_.StartUpload(spec.video_id, spec.name, spec.size);
    if (!upload.ok()) return upload.status();
  } else if ((*get)->block_algorithm() != (*upload)->block_algorithm()) {
    // The copy keeps the source's block algorithm (a file stored with
    // SHA-256 blocks stays so): its digests are what the blocks are checked
    // against and then recorded.
    upload->reset();
    upload = engine_.StartUpload(spec.video_id, spec.name, spec.size,
                                 /*sender_block_digests=*/true, (*get)->block_algorithm());
    if (!upload.ok()) return upload.status();
  }
  // Where a pull's time goes (logged below): waiting for the source's next
  // chunk, storing chunks here, and the commit (fsync and rename).
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  Clock::duration waiting{};
  Clock::duration storing{};
  // Chunks are received on a thread of their own, up to
  // receive_ahead_chunks ahead of the one being stored: the source reads and
  // sends the next ones while this node hashes and writes (one after the
  // other, each side waited for the other's disk). Destroyed before `get`.
  StorageClient::GetStream& stream = **get;
  ChunkPrefetcher ahead(
      // The received message's buffer is taken as it is (no copy).
      [&stream](std::string& chunk) { return stream.NextInto(chunk); },
      options_.receive_ahead_chunks, [&stream] { stream.Interrupt(); });
  std::string chunk;
  while (true) {
    if (cancelled && cancelled()) return absl::CancelledError("pull cancelled; nothing stored");
    const Clock::time_point asked = Clock::now();
    absl::Status next = ahead.Take(chunk);
    const Clock::time_point received = Clock::now();
    waiting += received - asked;
    if (!next.ok()) return SourceFailed(next);
    if (chunk.empty()) break;
    if (absl::Status s = (*upload)->Append(chunk); !s.ok()) return s;
    storing += Clock::now() - received;
  }
  const Clock::time_point committing = Clock::now();
  // With digests, every block must match the source's and the source's
  // whole-file digest (checked equal to the one asked for above) is kept.
  absl::StatusOr<StoredFile> file =
      digests ? (*upload)->Commit(*sha256, (*get)->block_digests()) : (*upload)->Commit(*sha256);
  // The upload hashes what it was given, so a mismatch is the bytes (or
  // digests) that came from the source (damaged there or in transit), not
  // this node.
  if (absl::IsDataLoss(file.status())) {
    if (!digests) return SourceFailed(file.status());
    return SourceFailed(ConfirmDamage(*source, spec, (*upload)->block_digests(),
                                      (*get)->block_digests(), file.status()));
  }
  if (!file.ok()) return file.status();
  spdlog::info(
      "pulled {}/{} from {}: {} bytes in {} ms (waiting for the source {} ms, storing {} ms, "
      "commit {} ms)",
      spec.video_id, spec.name, spec.source_address, spec.size, WholeMs(Clock::now() - start),
      WholeMs(waiting), WholeMs(storing), WholeMs(Clock::now() - committing));
  PullResult result;
  result.file = *std::move(file);
  return result;
}

}  // namespace streamgrid::storage
