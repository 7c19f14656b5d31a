// Runs real etcd processes: a three-member cluster that loses and regains its
// leader, and a single member stopped, restarted and cleaned up.
#include "etcd/testing/etcd_test_cluster.h"

#include <chrono>
#include <filesystem>
#include <set>
#include <string>

#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace streamgrid::etcd::testing {
namespace {

using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

TEST(EtcdTestClusterTest, ThreeMembersElectNewLeaderAndRejoin) {
  absl::StatusOr<std::unique_ptr<EtcdTestCluster>> started = EtcdTestCluster::Start(3);
  ASSERT_TRUE(started.ok()) << started.status();
  EtcdTestCluster& cluster = **started;

  ASSERT_EQ(cluster.size(), 3);
  std::vector<std::string> endpoints = cluster.client_endpoints();
  ASSERT_EQ(endpoints.size(), 3u);
  for (const std::string& endpoint : endpoints) {
    EXPECT_THAT(endpoint, MatchesRegex(R"(127\.0\.0\.1:[0-9]+)"));
  }
  EXPECT_EQ(std::set<std::string>(endpoints.begin(), endpoints.end()).size(), 3u);
  EXPECT_EQ(cluster.endpoints_flag(), absl::StrJoin(endpoints, ","));

  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(cluster.IsRunning(i));
    EXPECT_TRUE(cluster.WaitHealthy(i, seconds(5)).ok()) << cluster.LogTail(i);
  }
  absl::StatusOr<int> leader = cluster.LeaderIndex();
  ASSERT_TRUE(leader.ok()) << leader.status() << "\n" << cluster.AllLogTails();
  ASSERT_GE(*leader, 0);
  ASSERT_LT(*leader, 3);

  absl::StatusOr<std::string> put = cluster.Etcdctl({"put", "/sg-test/key", "value-1"});
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_THAT(*put, HasSubstr("OK"));
  absl::StatusOr<std::string> got = cluster.Etcdctl({"get", "--print-value-only", "/sg-test/key"});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "value-1\n");

  // Lose the leader: the other two elect one of themselves and keep serving.
  const int old_leader = *leader;
  ASSERT_TRUE(cluster.Kill(old_leader).ok());
  EXPECT_FALSE(cluster.IsRunning(old_leader));
  absl::StatusOr<int> new_leader = cluster.WaitForLeader(seconds(10), old_leader);
  ASSERT_TRUE(new_leader.ok()) << new_leader.status() << "\n" << cluster.AllLogTails();
  EXPECT_NE(*new_leader, old_leader);
  EXPECT_TRUE(cluster.IsRunning(*new_leader));
  put = cluster.Etcdctl({"put", "/sg-test/key", "value-2"});
  ASSERT_TRUE(put.ok()) << put.status();

  // The old leader comes back on its data directory and catches up.
  ASSERT_TRUE(cluster.Restart(old_leader).ok());
  absl::Status healthy = cluster.WaitHealthy(old_leader, seconds(10));
  ASSERT_TRUE(healthy.ok()) << healthy;
  healthy = cluster.WaitClusterHealthy(seconds(10));
  ASSERT_TRUE(healthy.ok()) << healthy << "\n" << cluster.AllLogTails();
  got = cluster.Etcdctl(
      {"--endpoints=" + endpoints[old_leader], "get", "--print-value-only", "/sg-test/key"});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "value-2\n");
  EXPECT_THAT(cluster.LogTail(old_leader, 1 << 20), HasSubstr("initial-cluster-state existing"));
}

TEST(EtcdTestClusterTest, SingleMemberStopsRestartsAndIsCleanedUp) {
  std::filesystem::path data_dir;
  {
    absl::StatusOr<std::unique_ptr<EtcdTestCluster>> started = EtcdTestCluster::Start(1);
    ASSERT_TRUE(started.ok()) << started.status();
    EtcdTestCluster& cluster = **started;
    ASSERT_EQ(cluster.size(), 1);
    data_dir = cluster.data_dir(0);
    EXPECT_TRUE(std::filesystem::is_directory(data_dir));
    EXPECT_EQ(cluster.LeaderIndex().value_or(-1), 0);

    ASSERT_TRUE(cluster.Stop(0).ok());
    EXPECT_FALSE(cluster.IsRunning(0));
    EXPECT_FALSE(cluster.WaitHealthy(0, seconds(1)).ok());
    EXPECT_FALSE(cluster.LeaderIndex().ok());
    EXPECT_EQ(cluster.Restart(0), absl::OkStatus());
    EXPECT_EQ(cluster.Restart(0).code(), absl::StatusCode::kFailedPrecondition);
    absl::Status healthy = cluster.WaitClusterHealthy(seconds(10));
    ASSERT_TRUE(healthy.ok()) << healthy << "\n" << cluster.LogTail(0);
    EXPECT_THAT(cluster.LogTail(0), HasSubstr("\"level\""));
  }
  EXPECT_FALSE(std::filesystem::exists(data_dir));
  EXPECT_FALSE(std::filesystem::exists(data_dir.parent_path()));
}

}  // namespace
}  // namespace streamgrid::etcd::testing
