#include "repair/hint_handoff.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace streamgrid::repair {
namespace {

using storage::Hint;
using storage::StoredFile;

// The result of EnsureCopy that means the hint is stale: the stand-in's copy
// is gone or is another version, so there is nothing to hand back.
bool IsStale(const absl::Status& status) { return absl::IsNotFound(status); }

// The SHA-256 of the stand-in's copy of the hinted file when every owner holds
// that same version (so the copy is surplus), else nothing.
std::optional<std::string> VersionAllOwnersHold(const ClusterNode& stand_in,
                                                const std::vector<ClusterNode>& owners,
                                                const Hint& hint) {
  absl::StatusOr<StoredFile> mine = stand_in.client->Stat(hint.video_id, hint.name);
  if (!mine.ok()) return std::nullopt;
  for (const ClusterNode& owner : owners) {
    absl::StatusOr<StoredFile> theirs = owner.client->Stat(hint.video_id, hint.name);
    if (!theirs.ok() || theirs->sha256 != mine->sha256) return std::nullopt;
  }
  return mine->sha256;
}

// Makes sure `dst` holds the version of the file `hint` names, copying it
// from `src` (streamed a chunk at a time; the receiving node checks the
// SHA-256 before it commits). OK when `dst` has it, or has a newer version;
// NOT_FOUND when `src` no longer has that version (stale hint); otherwise the
// error that stopped the copy (CANCELLED once `stopping` says so, checked
// between chunks, so that Stop() need not wait for a large file).
absl::Status EnsureCopy(Cluster& cluster, const ClusterNode& src, const ClusterNode& dst,
                        const Hint& hint, const std::function<bool()>& stopping) {
  absl::StatusOr<StoredFile> there = dst.client->Stat(hint.video_id, hint.name);
  if (there.ok()) {
    if (there->sha256 == hint.sha256) return absl::OkStatus();
    // A write after the hint's reached the owner directly: it wins. (Clocks
    // of the nodes are compared here; see docs/handoff.md.)
    if (there->mtime_unix_nanos / 1'000'000 > hint.created_unix_ms) return absl::OkStatus();
  } else if (!absl::IsNotFound(there.status())) {
    return there.status();
  }
  auto get = src.client->OpenGet(hint.video_id, hint.name);
  if (!get.ok()) {
    if (absl::IsDataLoss(get.status())) {
      cluster.ReportDamage({.node_id = src.id,
                            .video_id = hint.video_id,
                            .name = hint.name,
                            .reason = std::string(get.status().message())});
    }
    return absl::IsNotFound(get.status())
               ? absl::NotFoundError("the stand-in no longer has the copy")
               : get.status();
  }
  if ((*get)->file().sha256 != hint.sha256) {
    return absl::NotFoundError("the stand-in holds another version now");
  }
  auto put = dst.client->StartPut(hint.video_id, hint.name,
                                  {.size = (*get)->file().size, .sha256 = hint.sha256});
  if (!put.ok()) return put.status();
  while (true) {
    if (stopping()) return absl::CancelledError("hinted handoff stopping");
    absl::StatusOr<std::span<const char>> chunk = (*get)->Next();
    if (!chunk.ok()) {
      if (absl::IsDataLoss(chunk.status())) {
        cluster.ReportDamage({.node_id = src.id,
                              .video_id = hint.video_id,
                              .name = hint.name,
                              .reason = std::string(chunk.status().message())});
      }
      return chunk.status();  // destroying the put cancels it
    }
    if (chunk->empty()) break;
    if (absl::Status s = (*put)->Append(*chunk); !s.ok()) return s;
  }
  return (*put)->Commit().status();
}

}  // namespace

HintHandoff::HintHandoff(Cluster& cluster, RepairStats& stats, HintHandoffOptions options)
    : cluster_(cluster), stats_(stats), options_(options) {}

HintHandoff::~HintHandoff() { Stop(); }

void HintHandoff::Start() {
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      HintHandoffPass pass = RunOnce();
      if (pass.handed_back > 0 || pass.dropped_stale > 0) {
        spdlog::info("hinted handoff: {} hints handed back, {} stale dropped, {} kept",
                     pass.handed_back, pass.dropped_stale, pass.kept);
      }
      lock.lock();
      wake_.wait_for(lock, options_.interval, [this] { return stop_; });
    }
  });
}

void HintHandoff::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool HintHandoff::stopping() const {
  std::lock_guard lock(mu_);
  return stop_;
}

bool HintHandoff::Reachable(const ClusterNode& node, std::map<std::string, bool>& reachable) {
  auto it = reachable.find(node.id);
  if (it != reachable.end()) return it->second;
  absl::StatusOr<storage::NodeHealth> health = node.client->Health();
  // A node just back may find its channel still backing off from the outage.
  if (absl::IsUnavailable(health.status()) && Cluster::Reconnect(node, std::chrono::seconds(2))) {
    health = node.client->Health();
  }
  // The probe also tells the write path that a returning node is up again.
  if (health.ok()) {
    cluster_.MarkSuccess(node.id);
  } else if (Cluster::IsNodeFailure(health.status())) {
    cluster_.MarkFailure(node.id, health.status().ToString());
  }
  reachable[node.id] = health.ok();
  return health.ok();
}

HintHandoffPass HintHandoff::RunOnce() {
  HintHandoffPass pass;
  std::map<std::string, bool> reachable;
  for (const ClusterNode& stand_in : cluster_.AllNodes()) {
    std::string token;
    size_t seen = 0;
    do {
      if (stopping()) break;
      absl::StatusOr<storage::HintPage> page =
          stand_in.client->ListHints("", token, options_.page_size);
      if (!page.ok()) {
        if (Cluster::IsNodeFailure(page.status())) {
          cluster_.MarkFailure(stand_in.id, page.status().ToString());
        }
        reachable[stand_in.id] = false;
        spdlog::debug("hinted handoff: cannot list the hints of {}: {}", stand_in.id,
                      page.status().ToString());
        break;
      }
      cluster_.MarkSuccess(stand_in.id);
      reachable[stand_in.id] = true;
      for (const Hint& hint : page->hints) {
        if (stopping()) break;
        ++pass.hints_seen;
        ++seen;
        HandBack(stand_in, hint, reachable, pass);
      }
      token = std::move(page->next_page_token);
    } while (!token.empty() && seen < options_.max_hints_per_node);
    // A node's hints not seen in this pass (past the bound) still count.
    if (!token.empty() && seen >= options_.max_hints_per_node) ++pass.kept;
  }
  stats_.hints_pending.store(pass.kept);
  return pass;
}

void HintHandoff::HandBack(const ClusterNode& stand_in, const Hint& hint,
                           std::map<std::string, bool>& reachable, HintHandoffPass& pass) {
  const std::vector<ClusterNode> owners = cluster_.WriteNodes(hint.video_id, hint.name);
  auto is_owner = [&](std::string_view id) {
    return std::any_of(owners.begin(), owners.end(),
                       [&](const ClusterNode& n) { return n.id == id; });
  };
  // The hinted node if it still owns the key; otherwise every owner (but the
  // stand-in itself) must hold the copy before the hint may go.
  std::vector<ClusterNode> targets;
  if (is_owner(hint.intended_node)) {
    for (const ClusterNode& n : owners) {
      if (n.id == hint.intended_node) targets.push_back(n);
    }
  } else {
    for (const ClusterNode& n : owners) {
      if (n.id != stand_in.id) targets.push_back(n);
    }
  }
  bool stale = false;
  for (const ClusterNode& target : targets) {
    if (!Reachable(target, reachable)) {
      ++pass.kept;
      return;
    }
    absl::Status copied =
        EnsureCopy(cluster_, stand_in, target, hint, [this] { return stopping(); });
    if (IsStale(copied)) {
      stale = true;
      break;
    }
    if (!copied.ok()) {
      ++pass.kept;
      if (stopping()) return;
      if (Cluster::IsNodeFailure(copied)) reachable[target.id] = false;
      spdlog::warn("hinted handoff: cannot copy {}/{} from {} to {}: {}", hint.video_id, hint.name,
                   stand_in.id, target.id, copied.ToString());
      stats_.SetLastError(absl::StrCat("hinted handoff of ", hint.video_id, "/", hint.name, ": ",
                                       copied.message()));
      return;
    }
  }
  // The stand-in keeps its copy when it owns the key itself now. Otherwise it
  // removes the hinted version, or whatever version it holds once every owner
  // holds that too: a file rewritten while owners were down (playlists
  // growing during an encode) can leave the stand-in with a version its hint
  // does not name (stale), or one an owner got directly (no copy made).
  std::optional<std::string> delete_sha256;
  if (!is_owner(stand_in.id)) {
    delete_sha256 = VersionAllOwnersHold(stand_in, owners, hint);
    if (!delete_sha256 && !stale) delete_sha256 = hint.sha256;
  }
  // Only the hint as listed: a hinted rewrite since then recorded a hint of
  // its newer version, which the owner still lacks and the next pass hands
  // back.
  absl::StatusOr<storage::StorageClient::DropHintResult> dropped = stand_in.client->DropHint(
      hint.video_id, hint.name, hint.intended_node, delete_sha256, hint.sha256);
  if (!dropped.ok()) {
    spdlog::warn("hinted handoff: cannot drop the hint of {}/{} on {}: {}", hint.video_id,
                 hint.name, stand_in.id, dropped.status().ToString());
    ++pass.kept;
    return;
  }
  if (dropped->hint_kept) {
    ++pass.kept;
    return;
  }
  if (stale) {
    spdlog::info("hinted handoff: dropped the stale hint of {}/{} for {} on {}", hint.video_id,
                 hint.name, hint.intended_node, stand_in.id);
    ++pass.dropped_stale;
    return;
  }
  ++pass.handed_back;
  ++stats_.hints_handed_back;
}

}  // namespace streamgrid::repair
