#include "migration/membership_changes.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/strings.h"
#include "storage/storage_client.h"

namespace streamgrid {

MembershipChanges::MembershipChanges(Cluster& cluster, MigrationRunner& runner,
                                     std::chrono::milliseconds probe_timeout)
    : cluster_(cluster), runner_(runner), probe_timeout_(probe_timeout) {}

absl::StatusOr<MigrationProgress> MembershipChanges::AddNode(RingNode node) {
  node.address = std::string(StripWhitespace(node.address));
  const size_t colon = node.address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == node.address.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("node address must be HOST:PORT, got '", node.address, "'"));
  }
  if (node.id.empty()) node.id = node.address;
  if (node.weight == 0) node.weight = 1.0;
  if (!std::isfinite(node.weight) || node.weight < 0) {
    return absl::InvalidArgumentError("node weight must be a positive number");
  }
  std::lock_guard lock(runner_.publish_mu());
  std::shared_ptr<const ClusterState> state = cluster_.state();
  if (absl::Status s = CheckIdle(*state); !s.ok()) return s;
  // Adding a node that was taken out puts it back (an operator's add wins
  // over the automatic one): it is no longer out.
  ClusterState seen = *state;
  std::erase_if(seen.out, [&](const OutNode& out) {
    return out.node.id == node.id || out.node.address == node.address;
  });
  for (const RingNode& member : state->current.nodes()) {
    if (member.id == node.id) {
      return absl::AlreadyExistsError(absl::StrCat("node ", node.id, " is already a member"));
    }
    if (member.address == node.address) {
      return absl::AlreadyExistsError(
          absl::StrCat("address ", node.address, " is already a member (node ", member.id, ")"));
    }
  }
  // A node that does not answer now would fail every copy: refuse it up front.
  absl::StatusOr<storage::NodeHealth> health =
      cluster_.ClientFor(node.address, probe_timeout_)->Health();
  if (absl::IsUnauthenticated(health.status())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "node ", node.address, " refuses this web server's calls (", health.status().message(),
        "): start the web server with the node's --cluster-token-file"));
  }
  if (!health.ok()) {
    return absl::UnavailableError(
        absl::StrCat("node ", node.address, " does not answer (", health.status().message(), ")"));
  }
  // It answers: whatever the failure detector remembers of it (a node put
  // back was down) must not make the copies skip it.
  cluster_.MarkSuccess(node.id);
  const std::string description =
      absl::StrCat(seen.out.size() < state->out.size() ? kPutBackPrefix : "add node ", node.id);
  absl::StatusOr<Placement> target = state->current.WithNodeAdded(std::move(node));
  if (!target.ok()) return target.status();
  return Begin(seen, *std::move(target), description);
}

absl::StatusOr<MigrationProgress> MembershipChanges::PutBack(std::string_view node) {
  std::optional<RingNode> out;
  for (const OutNode& o : cluster_.state()->out) {
    if (o.node.id == node || o.node.address == node) out = o.node;
  }
  if (!out) return absl::NotFoundError(absl::StrCat("node ", ToAbsl(node), " is not out"));
  return AddNode(*std::move(out));
}

absl::StatusOr<MigrationProgress> MembershipChanges::RemoveNode(std::string_view node) {
  return RemoveMember(node, /*take_out=*/false);
}

absl::StatusOr<MigrationProgress> MembershipChanges::TakeOut(std::string_view node) {
  return RemoveMember(node, /*take_out=*/true);
}

absl::StatusOr<MigrationProgress> MembershipChanges::RemoveMember(std::string_view node,
                                                                  bool take_out) {
  node = StripWhitespace(node);
  std::lock_guard lock(runner_.publish_mu());
  std::shared_ptr<const ClusterState> state = cluster_.state();
  const Placement& current = state->current;
  const RingNode* found = nullptr;
  for (const RingNode& member : current.nodes()) {
    if (member.id == node || member.address == node) found = &member;
  }
  if (!found && !take_out) {
    // An operator removing a node that is out: it is forgotten (its share
    // moved when it was taken out), so it will not be put back.
    ClusterState next = *state;
    if (std::erase_if(next.out, [&](const OutNode& out) {
          return out.node.id == node || out.node.address == node;
        }) > 0) {
      if (absl::Status s = runner_.Publish(std::move(next)); !s.ok()) return s;
      spdlog::info("node {} was out; it is removed and will not be put back", std::string(node));
      if (std::optional<MigrationProgress> last = runner_.Progress()) return *last;
      return MigrationProgress{
          .record = {.phase = MigrationPhase::kDone,
                     .description = absl::StrCat("remove node ", ToAbsl(node))}};
    }
  }
  if (!found) {
    return absl::NotFoundError(absl::StrCat("no node ", ToAbsl(node), " in the cluster"));
  }
  if (absl::Status s = CheckIdle(*state); !s.ok()) return s;
  const size_t remaining = current.nodes().size() - 1;
  if (remaining < static_cast<size_t>(current.replication_factor())) {
    return absl::FailedPreconditionError(
        absl::StrCat("removing node ", found->id, " would leave ", remaining,
                     remaining == 1 ? " node" : " nodes", ", fewer than the ",
                     current.replication_factor(), " replicas every file needs"));
  }
  const std::string description =
      absl::StrCat(take_out ? kTakeOutPrefix : "remove node ", found->id);
  absl::StatusOr<Placement> target = current.WithNodeRemoved(found->id);
  if (!target.ok()) return target.status();
  ClusterState seen = *state;
  if (take_out) seen.out.push_back({.node = *found, .since_unix_ms = NowMillis()});
  return Begin(seen, *std::move(target), description);
}

absl::StatusOr<MigrationProgress> MembershipChanges::Resume() {
  std::lock_guard lock(runner_.publish_mu());
  ClusterState next = *cluster_.state();
  if (!next.migration || next.migration->phase != MigrationPhase::kFailed) {
    return absl::FailedPreconditionError("there is no failed migration to resume");
  }
  MigrationRecord& record = *next.migration;
  record.phase = next.target ? MigrationPhase::kCopying : MigrationPhase::kCleaning;
  record.error.clear();
  record.finished_unix_ms = 0;
  const std::string what = record.description;
  runner_.NoteResumed();
  if (absl::Status s = runner_.Publish(std::move(next)); !s.ok()) return s;
  spdlog::info("migration resumed: {}", what);
  return *runner_.Progress();
}

absl::Status MembershipChanges::CheckIdle(const ClusterState& state) const {
  if (!state.migration) return absl::OkStatus();
  const MigrationRecord& record = *state.migration;
  switch (record.phase) {
    case MigrationPhase::kDone:
      return absl::OkStatus();
    case MigrationPhase::kFailed:
      return absl::FailedPreconditionError(absl::StrCat("the migration '", record.description,
                                                        "' failed (", record.error,
                                                        "); fix the cause and resume it first"));
    default:
      return absl::FailedPreconditionError(
          absl::StrCat("a migration is in progress (", record.description, ", ",
                       ToAbsl(MigrationPhaseName(record.phase)), "); wait for it to finish"));
  }
}

absl::StatusOr<MigrationProgress> MembershipChanges::Begin(const ClusterState& seen,
                                                           Placement target,
                                                           std::string description) {
  ClusterState next = seen;
  next.migration = MigrationRecord{
      .phase = MigrationPhase::kCopying,
      .description = std::move(description),
      .partitions_total = static_cast<uint32_t>(Diff(seen.current, target).size()),
      .started_unix_ms = NowMillis(),
      .from_version = seen.current.version(),
      .to_version = target.version(),
  };
  next.target = std::move(target);
  next.migrated_partitions.clear();
  next.previous.reset();
  const std::string what = next.migration->description;
  const uint32_t partitions = next.migration->partitions_total;
  if (absl::Status s = runner_.Publish(std::move(next)); !s.ok()) return s;
  spdlog::info("migration started: {} ({} partitions change owners)", what, partitions);
  return *runner_.Progress();
}

}  // namespace streamgrid
