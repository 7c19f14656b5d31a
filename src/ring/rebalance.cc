#include "ring/rebalance.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>
#include <tuple>
#include <utility>

namespace streamgrid::ring_internal {
namespace {

constexpr uint32_t kPartitions = Placement::kPartitionCount;
// Marks a slot not assigned yet while a table is being built. Placement caps
// node counts at kMaxNodes, so no real index reaches it.
constexpr NodeIndex kNone = std::numeric_limits<NodeIndex>::max();
static_assert(Placement::kMaxNodes <= kNone);

// splitmix64's finaliser: a cheap, well-mixed 64-bit permutation.
uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// FNV-1a. Tie-breaks are keyed by node id rather than index so that they do
// not shift when other nodes join or leave.
uint64_t HashId(std::string_view id) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : id) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::vector<double> WeightsOf(const std::vector<RingNode>& nodes) {
  std::vector<double> weights;
  weights.reserve(nodes.size());
  for (const RingNode& node : nodes) weights.push_back(node.weight);
  return weights;
}

// Slot and primary counts per node against their targets, plus the moves that
// change them.
//
// Two levels of balance are kept apart. Which nodes hold a row decides where
// data lives: those moves are chosen by slot counts alone, and each one
// rewrites a single slot, so only the two nodes at its ends gain or lose
// data. Which member of a row is its primary moves no data, so primaries are
// balanced afterwards by reordering rows that were rewritten anyway.
class Balancer {
 public:
  Balancer(const std::vector<RingNode>& nodes, const std::vector<double>& weights, int r,
           std::vector<NodeIndex>& table)
      : r_(r),
        n_(static_cast<NodeIndex>(nodes.size())),
        table_(table),
        targets_(ComputeTargets(weights, r)),
        slots_(n_, 0),
        primaries_(n_, 0),
        touched_(kPartitions, false) {
    tie_keys_.reserve(n_);
    for (const RingNode& node : nodes) tie_keys_.push_back(HashId(node.id));
    for (size_t s = 0; s < table_.size(); ++s) {
      if (table_[s] == kNone) continue;
      ++slots_[table_[s]];
      if (s % r_ == 0) ++primaries_[table_[s]];
    }
  }

  // Fills an empty table row by row: each slot goes to the node furthest
  // below its slot target among those not in the row yet, then the member
  // furthest below its primary target becomes the row's primary.
  void FillAll() {
    for (uint32_t p = 0; p < kPartitions; ++p) {
      NodeIndex* row = &table_[size_t{p} * r_];
      for (int rank = 0; rank < r_; ++rank) {
        Assign(size_t{p} * r_ + rank, BestReceiver(p, rank == 0));
      }
      NodeIndex* primary = std::max_element(row, row + r_, [&](NodeIndex x, NodeIndex y) {
        return PrimaryDeficit(x) < PrimaryDeficit(y);
      });
      if (primary != row) {
        --primaries_[row[0]];
        ++primaries_[*primary];
        std::swap(row[0], *primary);
      }
    }
  }

  // Moves slots between `c` and the others until `c` holds `goal` slots (or
  // no allowed move is left): slots it lacks come from the nodes furthest
  // above their targets, slots it has in excess go to the nodes furthest
  // below theirs that are not in the row.
  void Settle(NodeIndex c, int goal) {
    if (slots_[c] < goal) Take(c, goal - slots_[c]);
    if (slots_[c] > goal) Give(c, slots_[c] - goal);
  }

  // Moves primaries towards their targets by reordering rewritten rows only.
  // Each step follows a chain of rows: `a` hands its primary in one row to a
  // member `x1` of that row, `x1` hands its primary in another row to `x2`,
  // ..., ending at `b`; only `a` (one fewer) and `b` (one more) change count.
  // Chains are found breadth-first from the nodes furthest above target and
  // taken when they bring `a` and `b` closer to their targets; every step
  // lowers the sum of squared deviations, so this ends.
  void BalancePrimaries() {
    if (r_ == 1) return;  // one member per row: nothing to reorder
    std::vector<uint32_t> rows;
    for (uint32_t p = 0; p < kPartitions; ++p) {
      if (touched_[p]) rows.push_back(p);
    }
    std::vector<std::vector<uint32_t>> primary_rows(n_);
    std::vector<NodeIndex> from(n_);
    std::vector<uint32_t> via(n_);
    std::vector<NodeIndex> queue;
    for (uint32_t p : rows) primary_rows[table_[size_t{p} * r_]].push_back(p);
    while (true) {
      std::vector<NodeIndex> sources(n_);
      for (NodeIndex j = 0; j < n_; ++j) sources[j] = j;
      std::sort(sources.begin(), sources.end(), [&](NodeIndex x, NodeIndex y) {
        return std::make_pair(PrimaryDeficit(x), x) < std::make_pair(PrimaryDeficit(y), y);
      });
      const double most_needed = PrimaryDeficit(sources.back());
      bool improved = false;
      for (NodeIndex a : sources) {
        // Sources come most over-served first: once even the neediest node
        // could not gain from `a`, it cannot from any later one either.
        if (most_needed - PrimaryDeficit(a) <= 1) break;
        if (primary_rows[a].empty()) continue;
        std::fill(from.begin(), from.end(), kNone);
        from[a] = a;
        queue.assign(1, a);
        NodeIndex best = kNone;
        for (size_t head = 0; head < queue.size(); ++head) {
          NodeIndex x = queue[head];
          for (uint32_t p : primary_rows[x]) {
            for (int rank = 1; rank < r_; ++rank) {
              NodeIndex y = table_[size_t{p} * r_ + rank];
              if (from[y] != kNone) continue;
              from[y] = x;
              via[y] = p;
              queue.push_back(y);
              if (best == kNone || PrimaryDeficit(y) > PrimaryDeficit(best)) best = y;
            }
          }
        }
        if (best == kNone || PrimaryDeficit(best) - PrimaryDeficit(a) <= 1) continue;
        for (NodeIndex y = best; y != a; y = from[y]) {
          const uint32_t p = via[y];
          NodeIndex* row = &table_[size_t{p} * r_];
          std::vector<uint32_t>& old_rows = primary_rows[row[0]];
          *std::find(old_rows.begin(), old_rows.end(), p) = old_rows.back();
          old_rows.pop_back();
          primary_rows[y].push_back(p);
          --primaries_[row[0]];
          ++primaries_[y];
          std::swap(row[0], *std::find(row + 1, row + r_, y));
        }
        improved = true;
        break;
      }
      if (!improved) return;
    }
  }

  double slot_target(NodeIndex j) const { return targets_.slots[j]; }

 private:
  double SlotDeficit(NodeIndex j) const { return targets_.slots[j] - slots_[j]; }
  double PrimaryDeficit(NodeIndex j) const { return targets_.primaries[j] - primaries_[j]; }
  double SecondaryDeficit(NodeIndex j) const {
    return (targets_.slots[j] - targets_.primaries[j]) - (slots_[j] - primaries_[j]);
  }
  // Deficit in the primaries (rank 0) or in the secondaries (other ranks).
  double RankDeficit(NodeIndex j, bool primary) const {
    return primary ? PrimaryDeficit(j) : SecondaryDeficit(j);
  }

  bool RowHolds(uint32_t p, NodeIndex j) const {
    const NodeIndex* row = &table_[size_t{p} * r_];
    return std::find(row, row + r_, j) != row + r_;
  }

  void Assign(size_t slot, NodeIndex j) {
    bool primary = slot % r_ == 0;
    if (NodeIndex old = table_[slot]; old != kNone) {
      --slots_[old];
      if (primary) --primaries_[old];
    }
    table_[slot] = j;
    touched_[slot / r_] = true;
    ++slots_[j];
    if (primary) ++primaries_[j];
  }

  uint64_t TieKey(uint32_t p, NodeIndex j) const {
    return Mix64(tie_keys_[j] ^ (uint64_t{p} * 0x9e3779b97f4a7c15ULL));
  }

  // The node that should receive a slot (a primary one or not) of row `p`:
  // the one furthest below its slot target among those not in the row, then
  // furthest below target for that rank. Remaining ties go by a hash of
  // (partition, node id), which spreads each node's partners over many others
  // instead of pairing neighbours in id order, so a failed node's data is
  // re-copied from many nodes.
  NodeIndex BestReceiver(uint32_t p, bool primary) const {
    NodeIndex best = kNone;
    std::tuple<double, double, uint64_t> best_key;
    for (NodeIndex j = 0; j < n_; ++j) {
      if (RowHolds(p, j)) continue;
      std::tuple<double, double, uint64_t> key(SlotDeficit(j), RankDeficit(j, primary),
                                               TieKey(p, j));
      if (best == kNone || key > best_key) {
        best = j;
        best_key = key;
      }
    }
    return best;
  }

  // The order in which `c` visits rows when taking or giving slots: a
  // shuffle keyed by its id. In partition order, every node would take its
  // rows from the low partitions, which the previous newcomer already holds
  // much of, so newcomers would end up sharing rows unevenly.
  std::vector<uint32_t> VisitOrder(NodeIndex c) const {
    std::vector<std::pair<uint64_t, uint32_t>> keyed(kPartitions);
    for (uint32_t p = 0; p < kPartitions; ++p) keyed[p] = {TieKey(p, c), p};
    std::sort(keyed.begin(), keyed.end());
    std::vector<uint32_t> order(kPartitions);
    for (uint32_t i = 0; i < kPartitions; ++i) order[i] = keyed[i].second;
    return order;
  }

  // The slot of row `p` in ranks [first, end) that node `j` holds, if any.
  std::optional<size_t> SlotOf(uint32_t p, NodeIndex j, int first, int end) const {
    for (int rank = first; rank < end; ++rank) {
      if (table_[size_t{p} * r_ + rank] == j) return size_t{p} * r_ + rank;
    }
    return std::nullopt;
  }

  // `c` takes `count` slots in rows it is not in yet, each from the node
  // currently furthest above its slot target, preferring that node's primary
  // or secondary slots by which of the two it has more of than its target
  // (so donors stay balanced in both and only `c` needs reordering).
  void Take(NodeIndex c, int count) {
    const std::vector<uint32_t> order = VisitOrder(c);
    std::vector<bool> c_holds(kPartitions, false);
    for (uint32_t p = 0; p < kPartitions; ++p) c_holds[p] = RowHolds(p, c);
    // While taking, donors only lose slots and `c` only gains rows, so a row
    // found ineligible for a donor stays so: each donor's scan (a position
    // in `order`, indexed by `primary`: [0] for its secondaries, [1] for its
    // primaries) resumes where it stopped.
    std::vector<uint32_t> cursor[2] = {std::vector<uint32_t>(n_, 0), std::vector<uint32_t>(n_, 0)};
    std::vector<bool> exhausted(n_, false);
    exhausted[c] = true;
    auto next_slot = [&](NodeIndex donor, bool primary) -> std::optional<size_t> {
      const int first = primary ? 0 : 1;
      const int end = primary ? 1 : r_;
      for (uint32_t& i = cursor[primary][donor]; i < kPartitions; ++i) {
        if (c_holds[order[i]]) continue;
        if (std::optional<size_t> slot = SlotOf(order[i], donor, first, end)) return slot;
      }
      return std::nullopt;
    };
    while (count > 0) {
      NodeIndex donor = kNone;
      for (NodeIndex d = 0; d < n_; ++d) {
        if (exhausted[d]) continue;
        // Furthest above target first; equal ones in id order.
        if (donor == kNone || SlotDeficit(d) < SlotDeficit(donor)) donor = d;
      }
      if (donor == kNone) return;
      bool primary = r_ == 1 || PrimaryDeficit(donor) < SecondaryDeficit(donor);
      std::optional<size_t> slot = next_slot(donor, primary);
      if (!slot && r_ > 1) slot = next_slot(donor, !primary);
      if (!slot) {
        exhausted[donor] = true;
        continue;
      }
      c_holds[*slot / r_] = true;
      Assign(*slot, c);
      --count;
    }
  }

  // `c` hands `count` of its slots to others, each to the node currently
  // furthest below its slot target, in a row of `c`'s that it is not in yet.
  // `c` gives up a primary or a secondary slot by which of the two it has
  // more of than its target: the rows it keeps are not reordered, so its own
  // balance must come from what it gives.
  void Give(NodeIndex c, int count) {
    const std::vector<uint32_t> order = VisitOrder(c);
    // While giving, `c` only loses rows and receivers only gain them, so a
    // row found ineligible for a receiver stays so (see Take).
    std::vector<uint32_t> cursor[2] = {std::vector<uint32_t>(n_, 0), std::vector<uint32_t>(n_, 0)};
    std::vector<bool> exhausted(n_, false);
    exhausted[c] = true;
    auto next_slot = [&](NodeIndex receiver, bool primary) -> std::optional<size_t> {
      const int first = primary ? 0 : 1;
      const int end = primary ? 1 : r_;
      for (uint32_t& i = cursor[primary][receiver]; i < kPartitions; ++i) {
        if (RowHolds(order[i], receiver)) continue;
        if (std::optional<size_t> slot = SlotOf(order[i], c, first, end)) return slot;
      }
      return std::nullopt;
    };
    while (count > 0) {
      NodeIndex receiver = kNone;
      for (NodeIndex j = 0; j < n_; ++j) {
        if (exhausted[j]) continue;
        // Furthest below target first; equal ones in id order.
        if (receiver == kNone || SlotDeficit(j) > SlotDeficit(receiver)) receiver = j;
      }
      if (receiver == kNone) return;
      bool primary = r_ == 1 || PrimaryDeficit(c) < SecondaryDeficit(c);
      std::optional<size_t> slot = next_slot(receiver, primary);
      if (!slot && r_ > 1) slot = next_slot(receiver, !primary);
      if (!slot) {
        exhausted[receiver] = true;
        continue;
      }
      Assign(*slot, receiver);
      --count;
    }
  }

  const int r_;
  const NodeIndex n_;
  std::vector<NodeIndex>& table_;
  const Targets targets_;
  std::vector<uint64_t> tie_keys_;
  std::vector<int> slots_;
  std::vector<int> primaries_;
  std::vector<bool> touched_;  // rows rewritten by this balancer
};

}  // namespace

Targets ComputeTargets(const std::vector<double>& weights, int replication_factor) {
  const size_t n = weights.size();
  Targets targets{std::vector<double>(n, 0.0), std::vector<double>(n, 0.0)};
  double total_weight = 0;
  for (double w : weights) total_weight += w;
  if (total_weight <= 0) return targets;
  for (size_t i = 0; i < n; ++i) targets.primaries[i] = kPartitions * weights[i] / total_weight;

  // Water-filling: share the slots by weight; whoever would get more than one
  // slot per partition is capped at kPartitions and the rest is shared again.
  std::vector<bool> capped(n, false);
  double remaining = static_cast<double>(kPartitions) * replication_factor;
  while (true) {
    double active_weight = 0;
    for (size_t i = 0; i < n; ++i) {
      if (!capped[i]) active_weight += weights[i];
    }
    if (active_weight <= 0) break;
    bool capped_any = false;
    for (size_t i = 0; i < n; ++i) {
      if (!capped[i] && remaining * weights[i] / active_weight > kPartitions) {
        capped[i] = true;
        capped_any = true;
        targets.slots[i] = kPartitions;
        remaining -= kPartitions;
      }
    }
    if (capped_any) continue;
    for (size_t i = 0; i < n; ++i) {
      if (!capped[i]) targets.slots[i] = remaining * weights[i] / active_weight;
    }
    break;
  }
  return targets;
}

std::vector<NodeIndex> BuildTable(const std::vector<RingNode>& nodes, int replication_factor) {
  std::vector<NodeIndex> table(size_t{kPartitions} * replication_factor, kNone);
  Balancer balancer(nodes, WeightsOf(nodes), replication_factor, table);
  balancer.FillAll();
  balancer.BalancePrimaries();
  return table;
}

void Rebalance(const std::vector<RingNode>& nodes, int replication_factor, NodeIndex node,
               std::vector<NodeIndex>& table) {
  Balancer balancer(nodes, WeightsOf(nodes), replication_factor, table);
  // Whole slots nearest the node's exact share; the other nodes absorb the
  // rounding, each within a slot of its own share.
  balancer.Settle(node, static_cast<int>(std::lround(balancer.slot_target(node))));
  balancer.BalancePrimaries();
}

void Drain(const std::vector<RingNode>& nodes, int replication_factor, NodeIndex node,
           std::vector<NodeIndex>& table) {
  std::vector<double> weights = WeightsOf(nodes);
  weights[node] = 0;
  Balancer balancer(nodes, weights, replication_factor, table);
  balancer.Settle(node, 0);
  balancer.BalancePrimaries();
}

}  // namespace streamgrid::ring_internal
