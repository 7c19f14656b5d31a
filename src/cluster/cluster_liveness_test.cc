#include <chrono>
#include <thread>

#include "cluster/cluster.h"
#include "gtest/gtest.h"

namespace streamgrid {
namespace {

using std::chrono::milliseconds;

Cluster ThreeNodeCluster(milliseconds down_after) {
  auto placement = Placement::Create({{.id = "a", .address = "127.0.0.1:1"},
                                      {.id = "b", .address = "127.0.0.1:2"},
                                      {.id = "c", .address = "127.0.0.1:3"}},
                                     2);
  return Cluster(ClusterState{.current = *placement}, {.down_after = down_after});
}

// Polls `condition` every few milliseconds for up to `timeout`.
template <typename F>
bool WaitFor(F condition, milliseconds timeout = milliseconds(5000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return condition();
}

TEST(ClusterLivenessTest, NeverMarkedIsUpSinceTheEpoch) {
  Cluster cluster = ThreeNodeCluster(milliseconds(50));
  NodeLivenessInfo info = cluster.Liveness("a");
  EXPECT_EQ(info.liveness, NodeLiveness::kUp);
  EXPECT_EQ(info.since, std::chrono::system_clock::time_point());
}

TEST(ClusterLivenessTest, FailuresMakeSuspectThenDownAndASuccessUpAgain) {
  Cluster cluster = ThreeNodeCluster(milliseconds(100));
  const auto before = std::chrono::system_clock::now();
  cluster.MarkFailure("b", "connection refused");
  NodeLivenessInfo suspect = cluster.Liveness("b");
  EXPECT_EQ(suspect.liveness, NodeLiveness::kSuspect);
  EXPECT_GE(suspect.since, before);
  EXPECT_EQ(suspect.last_error, "connection refused");
  // Further failures do not move the start of the outage.
  cluster.MarkFailure("b");
  EXPECT_EQ(cluster.Liveness("b").since, suspect.since);

  ASSERT_TRUE(WaitFor([&] { return cluster.Liveness("b").liveness == NodeLiveness::kDown; }));
  NodeLivenessInfo down = cluster.Liveness("b");
  // Down from when the outage crossed down_after, however late it is asked.
  EXPECT_EQ(down.since, suspect.since + milliseconds(100));
  EXPECT_EQ(cluster.Liveness("b").since, down.since);
  EXPECT_EQ(cluster.Liveness("a").liveness, NodeLiveness::kUp);

  cluster.MarkSuccess("b");
  NodeLivenessInfo up = cluster.Liveness("b");
  EXPECT_EQ(up.liveness, NodeLiveness::kUp);
  EXPECT_GE(up.since, down.since);
  EXPECT_TRUE(up.last_error.empty());
  EXPECT_TRUE(cluster.IsHealthy("b"));
}

TEST(ClusterLivenessTest, Names) {
  EXPECT_EQ(NodeLivenessName(NodeLiveness::kUp), "up");
  EXPECT_EQ(NodeLivenessName(NodeLiveness::kSuspect), "suspect");
  EXPECT_EQ(NodeLivenessName(NodeLiveness::kDown), "down");
}

TEST(ClusterDamageReportsTest, QueuedInOrderAndBounded) {
  Cluster cluster = ThreeNodeCluster(milliseconds(100));
  EXPECT_TRUE(cluster.TakeDamageReports().empty());
  for (size_t i = 0; i < Cluster::kMaxDamageReports + 2; ++i) {
    cluster.ReportDamage({.node_id = "a", .video_id = "v", .name = std::to_string(i)});
  }
  std::vector<DamageReport> reports = cluster.TakeDamageReports();
  ASSERT_EQ(reports.size(), Cluster::kMaxDamageReports);
  // The oldest were dropped.
  EXPECT_EQ(reports.front().name, "2");
  EXPECT_EQ(reports.back().name, std::to_string(Cluster::kMaxDamageReports + 1));
  EXPECT_TRUE(cluster.TakeDamageReports().empty());
}

}  // namespace
}  // namespace streamgrid
