#include "ring/placement.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "ring/placement_state.h"
#include "ring/rebalance.h"

namespace streamgrid {
namespace {

[[noreturn]] void DieOpenSsl(const char* what) {
  // Hashing cannot report errors (lookups return spans); without SHA-256 no
  // key can be placed, so nothing sensible remains.
  std::fprintf(stderr, "streamgrid: %s failed; cannot compute key positions\n", what);
  std::abort();
}

// Fetched once: an explicitly fetched EVP_MD spares every init the implicit
// provider lookup that EVP_sha256() triggers in OpenSSL 3. Never freed; it
// lives as long as the process.
const EVP_MD* Sha256() {
  static const EVP_MD* md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (fetched == nullptr) DieOpenSsl("EVP_MD_fetch(SHA256)");
    return fetched;
  }();
  return md;
}

// One digest context per thread, reused for every key: allocating a context
// per call costs more than hashing a short key.
class DigestContext {
 public:
  DigestContext() : ctx_(EVP_MD_CTX_new()) {
    if (ctx_ == nullptr) DieOpenSsl("EVP_MD_CTX_new");
  }
  ~DigestContext() { EVP_MD_CTX_free(ctx_); }
  DigestContext(const DigestContext&) = delete;
  DigestContext& operator=(const DigestContext&) = delete;

  uint64_t Position(std::initializer_list<std::string_view> parts) {
    if (EVP_DigestInit_ex2(ctx_, Sha256(), nullptr) != 1) DieOpenSsl("EVP_DigestInit_ex2");
    for (std::string_view part : parts) {
      if (EVP_DigestUpdate(ctx_, part.data(), part.size()) != 1) DieOpenSsl("EVP_DigestUpdate");
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(ctx_, digest, &length) != 1) DieOpenSsl("EVP_DigestFinal_ex");
    uint64_t position = 0;
    for (int i = 0; i < 8; ++i) position = (position << 8) | digest[i];
    return position;
  }

 private:
  EVP_MD_CTX* ctx_;
};

uint64_t HashParts(std::initializer_list<std::string_view> parts) {
  thread_local DigestContext context;
  return context.Position(parts);
}

absl::Status ValidateNode(const RingNode& node) {
  if (node.id.empty()) return absl::InvalidArgumentError("node id must not be empty");
  if (!std::isfinite(node.weight) || node.weight <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("node ", node.id, ": weight must be finite and positive, got ", node.weight));
  }
  return absl::OkStatus();
}

bool IdLess(const RingNode& a, const RingNode& b) { return a.id < b.id; }

// Where `id` is or would be inserted in `nodes` (sorted by id).
std::vector<RingNode>::const_iterator LowerBound(const std::vector<RingNode>& nodes,
                                                 std::string_view id) {
  return std::lower_bound(nodes.begin(), nodes.end(), id,
                          [](const RingNode& node, std::string_view key) { return node.id < key; });
}

absl::Status UnknownNode(std::string_view id) {
  return absl::NotFoundError(absl::StrCat("no node with id '", ToAbsl(id), "'"));
}

}  // namespace

namespace ring_internal {

absl::Status ValidateNodes(const std::vector<RingNode>& nodes, int replication_factor) {
  if (replication_factor < 1 || replication_factor > Placement::kMaxReplicationFactor) {
    return absl::InvalidArgumentError(absl::StrCat("replication factor must be between 1 and ",
                                                   Placement::kMaxReplicationFactor, ", got ",
                                                   replication_factor));
  }
  for (const RingNode& node : nodes) {
    if (absl::Status status = ValidateNode(node); !status.ok()) return status;
  }
  for (size_t i = 1; i < nodes.size(); ++i) {
    if (nodes[i - 1].id == nodes[i].id) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate node id '", nodes[i].id, "'"));
    }
  }
  if (nodes.size() < static_cast<size_t>(replication_factor)) {
    return absl::InvalidArgumentError(absl::StrCat("replication factor ", replication_factor,
                                                   " needs at least as many nodes, got ",
                                                   nodes.size()));
  }
  if (nodes.size() > Placement::kMaxNodes) {
    return absl::InvalidArgumentError(
        absl::StrCat("at most ", Placement::kMaxNodes, " nodes, got ", nodes.size()));
  }
  return absl::OkStatus();
}

}  // namespace ring_internal

absl::StatusOr<Placement> Placement::Create(std::vector<RingNode> nodes, int replication_factor) {
  std::sort(nodes.begin(), nodes.end(), IdLess);
  if (absl::Status status = ring_internal::ValidateNodes(nodes, replication_factor); !status.ok()) {
    return status;
  }
  auto state = std::make_shared<State>();
  state->nodes = std::move(nodes);
  state->replication_factor = replication_factor;
  state->version = 1;
  state->table = ring_internal::BuildTable(state->nodes, replication_factor);
  return Placement(std::move(state));
}

absl::StatusOr<Placement> Placement::WithNodeAdded(RingNode node) const {
  if (absl::Status status = ValidateNode(node); !status.ok()) return status;
  const State& old = *state_;
  auto at = LowerBound(old.nodes, node.id);
  if (at != old.nodes.end() && at->id == node.id) {
    return absl::AlreadyExistsError(absl::StrCat("node '", node.id, "' is already placed"));
  }
  if (old.nodes.size() >= kMaxNodes) {
    return absl::InvalidArgumentError(absl::StrCat("at most ", kMaxNodes, " nodes"));
  }
  auto state = std::make_shared<State>(old);
  const NodeIndex index = static_cast<NodeIndex>(at - old.nodes.begin());
  state->nodes.insert(state->nodes.begin() + index, std::move(node));
  for (NodeIndex& entry : state->table) {
    if (entry >= index) ++entry;
  }
  ring_internal::Rebalance(state->nodes, state->replication_factor, index, state->table);
  ++state->version;
  return Placement(std::move(state));
}

absl::StatusOr<Placement> Placement::WithNodeRemoved(std::string_view id) const {
  std::optional<NodeIndex> index = IndexOf(id);
  if (!index) return UnknownNode(id);
  const State& old = *state_;
  if (old.nodes.size() <= static_cast<size_t>(old.replication_factor)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "removing '", ToAbsl(id), "' would leave fewer nodes than the replication factor ",
        old.replication_factor));
  }
  auto state = std::make_shared<State>(old);
  ring_internal::Drain(state->nodes, state->replication_factor, *index, state->table);
  for (NodeIndex& entry : state->table) {
    // With at least R other nodes every row has a free node, so Drain always
    // empties the node; anything else is a bug worth failing loudly on.
    if (entry == *index) return absl::InternalError("placement: drained node still holds a slot");
    if (entry > *index) --entry;
  }
  state->nodes.erase(state->nodes.begin() + *index);
  ++state->version;
  return Placement(std::move(state));
}

absl::StatusOr<Placement> Placement::WithNodeWeight(std::string_view id, double weight) const {
  std::optional<NodeIndex> index = IndexOf(id);
  if (!index) return UnknownNode(id);
  auto state = std::make_shared<State>(*state_);
  state->nodes[*index].weight = weight;
  if (absl::Status status = ValidateNode(state->nodes[*index]); !status.ok()) return status;
  ring_internal::Rebalance(state->nodes, state->replication_factor, *index, state->table);
  ++state->version;
  return Placement(std::move(state));
}

absl::StatusOr<Placement> Placement::WithNodeAddress(std::string_view id,
                                                     std::string address) const {
  std::optional<NodeIndex> index = IndexOf(id);
  if (!index) return UnknownNode(id);
  auto state = std::make_shared<State>(*state_);
  state->nodes[*index].address = std::move(address);
  ++state->version;
  return Placement(std::move(state));
}

uint64_t Placement::KeyPosition(std::string_view key) { return HashParts({key}); }

uint64_t Placement::KeyPosition(std::string_view video_id, std::string_view filename) {
  return HashParts({video_id, "/", filename});
}

std::span<const NodeIndex> Placement::ReplicasForPartition(uint32_t partition) const {
  const State& state = *state_;
  const size_t r = static_cast<size_t>(state.replication_factor);
  return {state.table.data() + partition * r, r};
}

std::vector<std::string> Placement::ReplicaIdsFor(std::string_view key) const {
  std::vector<std::string> ids;
  for (NodeIndex index : ReplicasFor(key)) ids.push_back(node(index).id);
  return ids;
}

const std::vector<RingNode>& Placement::nodes() const { return state_->nodes; }

std::optional<NodeIndex> Placement::IndexOf(std::string_view id) const {
  auto at = LowerBound(state_->nodes, id);
  if (at == state_->nodes.end() || at->id != id) return std::nullopt;
  return static_cast<NodeIndex>(at - state_->nodes.begin());
}

int Placement::replication_factor() const { return state_->replication_factor; }

uint64_t Placement::version() const { return state_->version; }

double Placement::ShareOfKeyspace(std::string_view node_id) const {
  std::optional<NodeIndex> index = IndexOf(node_id);
  if (!index) return 0;
  const std::vector<NodeIndex>& table = state_->table;
  return static_cast<double>(std::count(table.begin(), table.end(), *index)) / table.size();
}

double Placement::PrimaryShareOfKeyspace(std::string_view node_id) const {
  std::optional<NodeIndex> index = IndexOf(node_id);
  if (!index) return 0;
  size_t primaries = 0;
  for (uint32_t p = 0; p < kPartitionCount; ++p) {
    if (ReplicasForPartition(p)[0] == *index) ++primaries;
  }
  return static_cast<double>(primaries) / kPartitionCount;
}

bool Placement::operator==(const Placement& other) const {
  if (state_ == other.state_) return true;
  const State& a = *state_;
  const State& b = *other.state_;
  return a.version == b.version && a.replication_factor == b.replication_factor &&
         a.nodes == b.nodes && a.table == b.table;
}

std::vector<PartitionMove> Diff(const Placement& before, const Placement& after) {
  // Each node of `before` as an index into `after` (-1 when gone), so rows
  // compare as small integers rather than strings.
  std::vector<int> in_after;
  in_after.reserve(before.nodes().size());
  for (const RingNode& node : before.nodes()) {
    std::optional<NodeIndex> index = after.IndexOf(node.id);
    in_after.push_back(index ? *index : -1);
  }
  std::vector<PartitionMove> moves;
  for (uint32_t p = 0; p < Placement::kPartitionCount; ++p) {
    std::span<const NodeIndex> old_row = before.ReplicasForPartition(p);
    std::span<const NodeIndex> new_row = after.ReplicasForPartition(p);
    PartitionMove move{.partition = p};
    for (NodeIndex n : new_row) {
      bool held = std::any_of(old_row.begin(), old_row.end(),
                              [&](NodeIndex o) { return in_after[o] == n; });
      if (!held) move.gained.push_back(after.node(n).id);
    }
    for (NodeIndex o : old_row) {
      bool kept = std::find(new_row.begin(), new_row.end(), in_after[o]) != new_row.end();
      if (!kept) move.lost.push_back(before.node(o).id);
    }
    if (!move.gained.empty() || !move.lost.empty()) moves.push_back(std::move(move));
  }
  return moves;
}

}  // namespace streamgrid
