#include "ring/placement.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace streamgrid {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr int kKeys = 1'000'000;

// Positions of 1,000,000 keys shaped like real content (20,000 videos of 50
// files each), hashed once for the whole binary.
const std::vector<uint64_t>& Positions() {
  static const std::vector<uint64_t>* positions = [] {
    auto* out = new std::vector<uint64_t>;
    out->reserve(kKeys);
    for (int i = 0; i < kKeys; ++i) {
      uint64_t video = static_cast<uint64_t>(i / 50) * 0x9e3779b97f4a7c15ULL;
      out->push_back(
          Placement::KeyPosition(absl::StrFormat("%026x/chunk-%d-%05d.m4s", video, i % 3, i % 50)));
    }
    return out;
  }();
  return *positions;
}

std::vector<RingNode> EqualNodes(int count) {
  std::vector<RingNode> nodes;
  for (int i = 0; i < count; ++i) {
    nodes.push_back({absl::StrFormat("node-%02d", i), absl::StrCat("10.0.0.", i, ":7000"), 1.0});
  }
  return nodes;
}

Placement Make(std::vector<RingNode> nodes, int r) {
  absl::StatusOr<Placement> placement = Placement::Create(std::move(nodes), r);
  EXPECT_TRUE(placement.ok()) << placement.status();
  return *std::move(placement);
}

// Keys (replica copies) and primaries per node, counted key by key.
struct Loads {
  std::vector<int64_t> replicas;
  std::vector<int64_t> primaries;
};

Loads KeyLoads(const Placement& placement) {
  Loads loads{std::vector<int64_t>(placement.nodes().size()),
              std::vector<int64_t>(placement.nodes().size())};
  for (uint64_t position : Positions()) {
    std::span<const NodeIndex> row = placement.ReplicasForPosition(position);
    ++loads.primaries[row[0]];
    for (NodeIndex n : row) ++loads.replicas[n];
  }
  return loads;
}

double MaxOverMean(const std::vector<int64_t>& loads) {
  int64_t sum = 0;
  for (int64_t load : loads) sum += load;
  return *std::max_element(loads.begin(), loads.end()) / (static_cast<double>(sum) / loads.size());
}

// Every row names distinct, valid nodes.
void ExpectDistinctReplicas(const Placement& placement) {
  const int r = placement.replication_factor();
  for (uint32_t p = 0; p < Placement::kPartitionCount; ++p) {
    std::span<const NodeIndex> row = placement.ReplicasForPartition(p);
    ASSERT_EQ(row.size(), static_cast<size_t>(r));
    for (int i = 0; i < r; ++i) {
      ASSERT_LT(row[i], placement.nodes().size()) << "partition " << p;
      for (int j = 0; j < i; ++j) ASSERT_NE(row[i], row[j]) << "partition " << p;
    }
  }
}

// Replica copies that changed node between `before` and `after` (same
// replication factor), counted key by key. `stray` counts copies that moved
// between two nodes other than `changed` (the node added, removed or
// reweighted), and `reordered` keys whose row kept its nodes but not their
// order.
struct Movement {
  int64_t moved = 0;
  int64_t stray = 0;
  int64_t reordered = 0;
};

Movement Measure(const Placement& before, const Placement& after, const std::string& changed) {
  std::vector<int> in_after;
  for (const RingNode& node : before.nodes()) {
    std::optional<NodeIndex> index = after.IndexOf(node.id);
    in_after.push_back(index ? *index : -1);
  }
  const int changed_after = after.IndexOf(changed) ? *after.IndexOf(changed) : -1;
  Movement movement;
  for (uint64_t position : Positions()) {
    std::span<const NodeIndex> old_row = before.ReplicasForPosition(position);
    std::span<const NodeIndex> new_row = after.ReplicasForPosition(position);
    auto in_new = [&](NodeIndex o) {
      return std::find(new_row.begin(), new_row.end(), in_after[o]) != new_row.end();
    };
    auto in_old = [&](NodeIndex n) {
      return std::any_of(old_row.begin(), old_row.end(),
                         [&](NodeIndex o) { return in_after[o] == n; });
    };
    // A copy may go from anyone to `changed`, or from `changed` to anyone.
    int64_t gained = 0;
    int64_t lost = 0;
    bool gained_by_others = false;
    bool lost_by_others = false;
    for (NodeIndex n : new_row) {
      if (in_old(n)) continue;
      ++gained;
      if (n != changed_after) gained_by_others = true;
    }
    for (NodeIndex o : old_row) {
      if (in_new(o)) continue;
      ++lost;
      if (before.node(o).id != changed) lost_by_others = true;
    }
    movement.moved += gained;
    if (gained != lost || (gained_by_others && lost_by_others)) movement.stray += gained;
    bool row_changed = gained > 0;
    if (!row_changed) {
      for (size_t rank = 0; rank < old_row.size(); ++rank) {
        if (in_after[old_row[rank]] != new_row[rank]) {
          ++movement.reordered;
          break;
        }
      }
    }
  }
  return movement;
}

TEST(PlacementBalanceTest, EqualNodesWithinFivePercentOfMean) {
  for (int r : {1, 2}) {
    for (int n = 3; n <= 20; ++n) {
      Placement placement = Make(EqualNodes(n), r);
      Loads loads = KeyLoads(placement);
      double replicas = MaxOverMean(loads.replicas);
      double primaries = MaxOverMean(loads.primaries);
      EXPECT_LE(replicas, 1.05) << "N=" << n << " R=" << r << " max/mean=" << replicas;
      EXPECT_LE(primaries, 1.05) << "N=" << n << " R=" << r << " primaries max/mean=" << primaries;
    }
  }
}

TEST(PlacementBalanceTest, ThreeReplicasSpreadPrimariesAndCopies) {
  Placement placement = Make(EqualNodes(10), 3);
  ExpectDistinctReplicas(placement);
  Loads loads = KeyLoads(placement);
  EXPECT_LE(MaxOverMean(loads.replicas), 1.05);
  EXPECT_LE(MaxOverMean(loads.primaries), 1.05);
}

TEST(PlacementMovementTest, AddingMovesOnlyItsShareAndOnlyToTheNewNode) {
  for (int r : {1, 2}) {
    for (int n : {3, 4, 5, 7, 10, 13, 16, 19}) {
      Placement before = Make(EqualNodes(n), r);
      absl::StatusOr<Placement> after = before.WithNodeAdded({"new-node", "10.0.1.1:7000", 1.0});
      ASSERT_TRUE(after.ok()) << after.status();
      Movement movement = Measure(before, *after, "new-node");
      double fraction = static_cast<double>(movement.moved) / (static_cast<double>(kKeys) * r);
      double ideal = 1.0 / (n + 1);
      EXPECT_LE(fraction, 1.05 * ideal)
          << "N=" << n << " R=" << r << " moved=" << fraction << " ideal=" << ideal;
      EXPECT_GE(fraction, 0.95 * ideal) << "N=" << n << " R=" << r << " moved=" << fraction;
      EXPECT_EQ(movement.stray, 0) << "N=" << n << " R=" << r;
      EXPECT_EQ(movement.reordered, 0) << "N=" << n << " R=" << r;
      ExpectDistinctReplicas(*after);
      Loads loads = KeyLoads(*after);
      EXPECT_LE(MaxOverMean(loads.replicas), 1.05) << "N=" << n << " R=" << r;
      EXPECT_LE(MaxOverMean(loads.primaries), 1.05) << "N=" << n << " R=" << r;
    }
  }
}

TEST(PlacementMovementTest, RemovingMovesOnlyTheRemovedNodesKeys) {
  for (int r : {1, 2}) {
    for (int n : {4, 5, 8, 11, 14, 17, 20}) {
      Placement before = Make(EqualNodes(n), r);
      // The first, a middle and the last node in id order.
      for (int victim : {0, n / 2, n - 1}) {
        std::string id = before.node(victim).id;
        absl::StatusOr<Placement> after = before.WithNodeRemoved(id);
        ASSERT_TRUE(after.ok()) << after.status();
        EXPECT_FALSE(after->IndexOf(id).has_value());
        Movement movement = Measure(before, *after, id);
        double fraction = static_cast<double>(movement.moved) / (static_cast<double>(kKeys) * r);
        double ideal = 1.0 / n;
        EXPECT_LE(fraction, 1.05 * ideal)
            << "N=" << n << " R=" << r << " moved=" << fraction << " ideal=" << ideal;
        EXPECT_EQ(movement.stray, 0) << "N=" << n << " R=" << r;
        EXPECT_EQ(movement.reordered, 0) << "N=" << n << " R=" << r;
        ExpectDistinctReplicas(*after);
        Loads loads = KeyLoads(*after);
        EXPECT_LE(MaxOverMean(loads.replicas), 1.05) << "N=" << n << " R=" << r;
        EXPECT_LE(MaxOverMean(loads.primaries), 1.05) << "N=" << n << " R=" << r;
      }
    }
  }
}

TEST(PlacementMovementTest, SequencesOfChangesKeepReplicasDistinctAndBalanced) {
  for (int r : {2, 3}) {
    Placement placement = Make(EqualNodes(5), r);
    int next_id = 100;
    // Grow to 12, shrink to r, grow again, interleaved removals of nodes from
    // different places in id order.
    std::vector<char> steps;
    for (int i = 0; i < 7; ++i) steps.push_back('+');
    for (int i = 0; i < 12 - r; ++i) steps.push_back('-');
    for (int i = 0; i < 4; ++i) steps.insert(steps.end(), {'+', '+', '-'});
    uint64_t version = placement.version();
    for (size_t step = 0; step < steps.size(); ++step) {
      absl::StatusOr<Placement> next =
          steps[step] == '+'
              ? placement.WithNodeAdded({absl::StrCat("n", next_id++), "", 1.0})
              : placement.WithNodeRemoved(placement.node((step * 7) % placement.nodes().size()).id);
      ASSERT_TRUE(next.ok()) << "step " << step << ": " << next.status();
      EXPECT_EQ(next->version(), ++version);
      ExpectDistinctReplicas(*next);
      Loads loads = KeyLoads(*next);
      if (next->nodes().size() > static_cast<size_t>(r)) {
        EXPECT_LE(MaxOverMean(loads.replicas), 1.05) << "R=" << r << " step " << step;
        EXPECT_LE(MaxOverMean(loads.primaries), 1.05) << "R=" << r << " step " << step;
      }
      placement = *std::move(next);
    }
  }
}

// Slots (replica copies of partitions) and primaries per node.
std::pair<std::vector<int>, std::vector<int>> SlotCounts(const Placement& placement) {
  std::vector<int> slots(placement.nodes().size()), primaries(placement.nodes().size());
  for (uint32_t p = 0; p < Placement::kPartitionCount; ++p) {
    std::span<const NodeIndex> row = placement.ReplicasForPartition(p);
    ++primaries[row[0]];
    for (NodeIndex n : row) ++slots[n];
  }
  return {slots, primaries};
}

TEST(PlacementMovementTest, RandomChangesOnlyMoveTheChangedNodeAndStayWithinTwoSlots) {
  std::mt19937 random(20240611);
  const double kWeights[] = {0.5, 1, 1, 1.5, 2};
  for (int r : {1, 2, 3}) {
    Placement placement = Make(EqualNodes(6), r);
    int next_id = 0;
    for (int step = 0; step < 40; ++step) {
      const size_t n = placement.nodes().size();
      int op = random() % 3;
      if (n > 14) op = 1;
      if (n <= static_cast<size_t>(r) + 2) op = 0;
      std::string changed;
      absl::StatusOr<Placement> next;
      if (op == 0) {
        changed = absl::StrCat("added-", next_id++);
        next = placement.WithNodeAdded({changed, "", kWeights[random() % 5]});
      } else if (op == 1) {
        changed = placement.node(random() % n).id;
        next = placement.WithNodeRemoved(changed);
      } else {
        changed = placement.node(random() % n).id;
        next = placement.WithNodeWeight(changed, kWeights[random() % 5]);
      }
      ASSERT_TRUE(next.ok()) << next.status();
      SCOPED_TRACE(absl::StrCat("R=", r, " step ", step, " op ", op, " node ", changed));
      ExpectDistinctReplicas(*next);

      // Copies only move to or from `changed`; rows that keep their nodes keep
      // their order.
      std::vector<PartitionMove> moves = Diff(placement, *next);
      for (const PartitionMove& move : moves) {
        bool to_changed = move.gained == std::vector<std::string>{changed};
        bool from_changed = move.lost == std::vector<std::string>{changed};
        ASSERT_TRUE(to_changed || from_changed) << "partition " << move.partition;
        ASSERT_EQ(move.gained.size(), move.lost.size());
      }
      size_t next_move = 0;
      for (uint32_t p = 0; p < Placement::kPartitionCount; ++p) {
        if (next_move < moves.size() && moves[next_move].partition == p) {
          ++next_move;
          continue;
        }
        std::span<const NodeIndex> a = placement.ReplicasForPartition(p);
        std::span<const NodeIndex> b = next->ReplicasForPartition(p);
        for (int rank = 0; rank < r; ++rank) {
          ASSERT_EQ(placement.node(a[rank]).id, next->node(b[rank]).id) << "partition " << p;
        }
      }

      // Every node within two slots of its weighted share, for copies and for
      // primaries. A node that should hold nearly every partition may fall
      // short: the rows it lacks need not contain the changed node, and only
      // moves to or from that node are allowed.
      double total_weight = 0;
      double max_weight = 0;
      for (const RingNode& node : next->nodes()) {
        total_weight += node.weight;
        max_weight = std::max(max_weight, node.weight);
      }
      auto [slots, primaries] = SlotCounts(*next);
      for (size_t i = 0; i < next->nodes().size(); ++i) {
        double share = next->node(i).weight / total_weight;
        if (r * max_weight / total_weight <= 0.75) {
          EXPECT_NEAR(slots[i], r * share * Placement::kPartitionCount, 2) << next->node(i).id;
        }
        EXPECT_NEAR(primaries[i], share * Placement::kPartitionCount, 2) << next->node(i).id;
      }
      placement = *std::move(next);
    }
  }
}

TEST(PlacementWeightTest, WeightsAreHonouredInProportion) {
  std::vector<RingNode> nodes = EqualNodes(3);
  nodes[2].weight = 2;
  for (int r : {1, 2}) {
    Placement placement = Make(nodes, r);
    Loads loads = KeyLoads(placement);
    for (int i : {0, 1}) {
      double ratio = static_cast<double>(loads.replicas[2]) / loads.replicas[i];
      EXPECT_NEAR(ratio, 2.0, 0.1) << "R=" << r;
    }
    double primary_ratio = static_cast<double>(loads.primaries[2]) / loads.primaries[0];
    EXPECT_NEAR(primary_ratio, 2.0, 0.1) << "R=" << r;
    EXPECT_NEAR(placement.ShareOfKeyspace("node-02"), 0.5, 0.001);
    EXPECT_NEAR(placement.PrimaryShareOfKeyspace("node-02"), 0.5, 0.001);
  }
}

TEST(PlacementWeightTest, UnevenWeightsWithThreeReplicas) {
  std::vector<RingNode> nodes = EqualNodes(6);
  const double weights[] = {1, 1, 1, 2, 2, 0.5};
  for (int i = 0; i < 6; ++i) nodes[i].weight = weights[i];
  Placement placement = Make(nodes, 3);
  ExpectDistinctReplicas(placement);
  Loads loads = KeyLoads(placement);
  for (int i = 0; i < 6; ++i) {
    double expected = 3.0 * kKeys * weights[i] / 7.5;
    EXPECT_NEAR(loads.replicas[i] / expected, 1.0, 0.05) << placement.node(i).id;
    EXPECT_NEAR(loads.primaries[i] / (expected / 3), 1.0, 0.05) << placement.node(i).id;
  }
}

TEST(PlacementWeightTest, NodeTooHeavyForItsShareHoldsEveryPartitionOnce) {
  // Weight 4 of 6 asks for 2/3 of all copies with R = 2, but one copy per
  // partition is the most a node can usefully hold: it gets exactly that and
  // the other two split the rest.
  std::vector<RingNode> nodes = EqualNodes(3);
  nodes[2].weight = 4;
  Placement placement = Make(nodes, 2);
  ExpectDistinctReplicas(placement);
  EXPECT_DOUBLE_EQ(placement.ShareOfKeyspace("node-02"), 0.5);
  EXPECT_DOUBLE_EQ(placement.ShareOfKeyspace("node-00"), 0.25);
  EXPECT_NEAR(placement.PrimaryShareOfKeyspace("node-02"), 4.0 / 6, 0.001);
}

TEST(PlacementWeightTest, ChangingAWeightMovesOnlyThatNodesKeys) {
  for (int r : {1, 2}) {
    Placement before = Make(EqualNodes(8), r);
    absl::StatusOr<Placement> heavier = before.WithNodeWeight("node-03", 2);
    ASSERT_TRUE(heavier.ok()) << heavier.status();
    EXPECT_EQ(heavier->version(), before.version() + 1);
    ExpectDistinctReplicas(*heavier);
    Movement grow = Measure(before, *heavier, "node-03");
    EXPECT_EQ(grow.stray, 0);
    EXPECT_EQ(grow.reordered, 0);
    // 1/8 of the copies before, 2/9 after.
    double fraction = static_cast<double>(grow.moved) / (static_cast<double>(kKeys) * r);
    EXPECT_NEAR(fraction, 2.0 / 9 - 1.0 / 8, 0.005) << "R=" << r;
    Loads loads = KeyLoads(*heavier);
    EXPECT_NEAR(static_cast<double>(loads.replicas[3]) / loads.replicas[0], 2.0, 0.1);

    absl::StatusOr<Placement> lighter = heavier->WithNodeWeight("node-03", 0.5);
    ASSERT_TRUE(lighter.ok()) << lighter.status();
    ExpectDistinctReplicas(*lighter);
    Movement shrink = Measure(*heavier, *lighter, "node-03");
    EXPECT_EQ(shrink.stray, 0);
    EXPECT_EQ(shrink.reordered, 0);
    loads = KeyLoads(*lighter);
    for (int i = 0; i < 8; ++i) {
      double expected = static_cast<double>(kKeys) * r * (i == 3 ? 0.5 : 1.0) / 7.5;
      EXPECT_NEAR(loads.replicas[i] / expected, 1.0, 0.05) << "R=" << r << " node " << i;
      EXPECT_NEAR(loads.primaries[i] / (expected / r), 1.0, 0.05) << "R=" << r << " node " << i;
    }
  }
}

TEST(PlacementDeterminismTest, SameInputsGiveTheSameTable) {
  std::vector<RingNode> nodes = EqualNodes(9);
  nodes[4].weight = 1.5;
  std::vector<RingNode> reversed(nodes.rbegin(), nodes.rend());
  Placement a = Make(nodes, 3);
  Placement b = Make(reversed, 3);
  EXPECT_TRUE(a == b);
  EXPECT_EQ(a.nodes(), b.nodes());  // sorted by id either way

  auto evolve = [](Placement p) {
    p = *p.WithNodeAdded({"x", "", 2.0});
    p = *p.WithNodeRemoved("node-02");
    p = *p.WithNodeWeight("node-05", 0.5);
    return *p.WithNodeAdded({"a", "", 1.0});
  };
  EXPECT_TRUE(evolve(a) == evolve(b));
  EXPECT_FALSE(evolve(a) == a);
}

TEST(PlacementDiffTest, ListsExactlyThePartitionsThatMove) {
  Placement before = Make(EqualNodes(6), 2);
  EXPECT_THAT(Diff(before, before), IsEmpty());

  Placement added = *before.WithNodeAdded({"node-99", "", 1.0});
  std::vector<PartitionMove> moves = Diff(before, added);
  // One copy per moved partition, 2/7 of all 8192 copies.
  EXPECT_NEAR(static_cast<double>(moves.size()), 2.0 * Placement::kPartitionCount / 7, 1.0);
  // In strictly increasing partition order.
  EXPECT_TRUE(std::adjacent_find(moves.begin(), moves.end(), [](const auto& a, const auto& b) {
                return a.partition >= b.partition;
              }) == moves.end());
  for (const PartitionMove& move : moves) {
    EXPECT_THAT(move.gained, ElementsAre("node-99"));
    ASSERT_THAT(move.lost, SizeIs(1));
    EXPECT_NE(move.lost[0], "node-99");
    // The lost node really held it before; the rest of the row stayed.
    std::span<const NodeIndex> old_row = before.ReplicasForPartition(move.partition);
    EXPECT_TRUE(std::any_of(old_row.begin(), old_row.end(),
                            [&](NodeIndex n) { return before.node(n).id == move.lost[0]; }));
  }

  Placement removed = *added.WithNodeRemoved("node-01");
  for (const PartitionMove& move : Diff(added, removed)) {
    EXPECT_THAT(move.lost, ElementsAre("node-01"));
    ASSERT_THAT(move.gained, SizeIs(1));
  }
}

TEST(PlacementLookupTest, KeyPositionIsTheBigEndianSha256Prefix) {
  // SHA-256("abc") = ba7816bf8f01cfea 414140de...; SHA-256("") = e3b0c44298fc1c14...
  EXPECT_EQ(Placement::KeyPosition("abc"), 0xba7816bf8f01cfeaULL);
  EXPECT_EQ(Placement::KeyPosition(""), 0xe3b0c44298fc1c14ULL);
  EXPECT_EQ(Placement::PartitionOf(0xba7816bf8f01cfeaULL), 0xba7u);
  EXPECT_EQ(Placement::PartitionOfKey("abc"), 0xba7u);
  EXPECT_EQ(Placement::KeyPosition("01hx5v/chunk-0-00001.m4s"),
            Placement::KeyPosition("01hx5v", "chunk-0-00001.m4s"));
}

TEST(PlacementLookupTest, LookupsAgreeAcrossEntryPointsAndThreads) {
  Placement placement = Make(EqualNodes(7), 3);
  std::vector<std::string> keys;
  for (int i = 0; i < 2000; ++i) keys.push_back(absl::StrCat("video", i, "/manifest.mpd"));
  std::vector<std::vector<NodeIndex>> expected;
  for (const std::string& key : keys) {
    std::span<const NodeIndex> row = placement.ReplicasFor(key);
    expected.emplace_back(row.begin(), row.end());
    std::span<const NodeIndex> by_position =
        placement.ReplicasForPosition(Placement::KeyPosition(key));
    ASSERT_TRUE(std::equal(row.begin(), row.end(), by_position.begin(), by_position.end()));
    std::vector<std::string> ids = placement.ReplicaIdsFor(key);
    ASSERT_THAT(ids, SizeIs(3));
    for (int i = 0; i < 3; ++i) ASSERT_EQ(ids[i], placement.node(row[i]).id);
  }
  // Each thread hashes with its own digest context.
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round) {
        for (size_t i = 0; i < keys.size(); ++i) {
          std::span<const NodeIndex> row = placement.ReplicasFor(keys[i]);
          if (!std::equal(row.begin(), row.end(), expected[i].begin(), expected[i].end())) {
            ++mismatches[t];
          }
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_THAT(mismatches, ElementsAre(0, 0, 0, 0));
}

TEST(PlacementLookupTest, AccessorsAndShares) {
  Placement placement = Make(EqualNodes(4), 2);
  EXPECT_EQ(placement.version(), 1u);
  EXPECT_EQ(placement.replication_factor(), 2);
  ASSERT_THAT(placement.nodes(), SizeIs(4));
  EXPECT_EQ(placement.node(1).id, "node-01");
  EXPECT_EQ(placement.node(1).address, "10.0.0.1:7000");
  EXPECT_EQ(placement.IndexOf("node-03"), 3);
  EXPECT_FALSE(placement.IndexOf("node-04").has_value());
  double shares = 0;
  double primary_shares = 0;
  for (const RingNode& node : placement.nodes()) {
    EXPECT_NEAR(placement.ShareOfKeyspace(node.id), 0.25, 0.001);
    shares += placement.ShareOfKeyspace(node.id);
    primary_shares += placement.PrimaryShareOfKeyspace(node.id);
  }
  EXPECT_DOUBLE_EQ(shares, 1.0);
  EXPECT_DOUBLE_EQ(primary_shares, 1.0);
  EXPECT_EQ(placement.ShareOfKeyspace("nope"), 0);

  absl::StatusOr<Placement> moved = placement.WithNodeAddress("node-01", "10.9.9.9:7000");
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved->node(1).address, "10.9.9.9:7000");
  EXPECT_EQ(moved->version(), 2u);
  EXPECT_THAT(Diff(placement, *moved), IsEmpty());
  EXPECT_EQ(placement.node(1).address, "10.0.0.1:7000");  // the original is untouched
}

TEST(PlacementErrorTest, CreateRejectsBadInput) {
  auto code = [](std::vector<RingNode> nodes, int r) {
    return Placement::Create(std::move(nodes), r).status().code();
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code(EqualNodes(3), 0), kInvalid);
  EXPECT_EQ(code(EqualNodes(3), 4), kInvalid);
  EXPECT_EQ(code(EqualNodes(20), 17), kInvalid);
  EXPECT_EQ(code({}, 1), kInvalid);
  EXPECT_EQ(code({{"a", "", 1}, {"b", "", 1}, {"a", "", 1}}, 1), kInvalid);
  EXPECT_EQ(code({{"", "", 1}}, 1), kInvalid);
  for (double weight : {0.0, -1.0, std::nan(""), HUGE_VAL}) {
    EXPECT_EQ(code({{"a", "", 1}, {"b", "", weight}}, 1), kInvalid) << weight;
  }
  EXPECT_TRUE(Placement::Create({{"only", "", 1}}, 1).ok());
}

TEST(PlacementErrorTest, ChangesRejectBadInputAndLeaveTheOriginalAlone) {
  Placement placement = Make(EqualNodes(3), 2);
  EXPECT_EQ(placement.WithNodeAdded({"node-01", "", 1}).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(placement.WithNodeAdded({"new", "", 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(placement.WithNodeAdded({"", "", 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(placement.WithNodeRemoved("missing").status().code(), absl::StatusCode::kNotFound);
  Placement two = *placement.WithNodeRemoved("node-00");
  EXPECT_EQ(two.WithNodeRemoved("node-01").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(placement.WithNodeWeight("missing", 1).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(placement.WithNodeWeight("node-00", -2).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(placement.WithNodeAddress("missing", "x").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(placement.version(), 1u);
  EXPECT_THAT(placement.nodes(), SizeIs(3));
  EXPECT_TRUE(placement == Make(EqualNodes(3), 2));
}

}  // namespace
}  // namespace streamgrid
