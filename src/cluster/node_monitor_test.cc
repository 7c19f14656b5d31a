#include "cluster/node_monitor.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cluster/cluster.h"
#include "cluster/test_nodes.h"
#include "gmock/gmock.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"

namespace streamgrid {
namespace {

using ::testing::HasSubstr;
using testing::TestNodes;

// Polls `condition` every 20 ms until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& condition,
             std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

ClusterOptions Options(std::chrono::milliseconds down_after) {
  ClusterOptions options;
  options.client.call_timeout = std::chrono::seconds(5);
  options.down_after = down_after;
  return options;
}

class NodeMonitorTest : public ::testing::Test {
 protected:
  NodeMonitorTest()
      : nodes_(3),
        cluster_(ClusterState{.current = *Placement::Create(nodes_.RingNodes(), 2)},
                 Options(std::chrono::seconds(3))) {}

  NodeLiveness LivenessOf(int i) { return cluster_.Liveness(nodes_.id(i)).liveness; }

  TestNodes nodes_;
  Cluster cluster_;
};

TEST_F(NodeMonitorTest, ARoundProbesEveryNodeAndKeepsItsAnswer) {
  NodeMonitor monitor(cluster_, {.probe_timeout = std::chrono::seconds(5)});
  EXPECT_FALSE(monitor.Report(nodes_.id(0)).has_value());
  monitor.ProbeOnce();
  EXPECT_EQ(monitor.rounds(), 1u);
  for (int i = 0; i < nodes_.size(); ++i) {
    std::optional<NodeReport> report = monitor.Report(nodes_.id(i));
    ASSERT_TRUE(report.has_value()) << i;
    ASSERT_TRUE(report->health.has_value()) << i;
    EXPECT_EQ(report->health->node_id(), nodes_.id(i));
    EXPECT_EQ(report->consecutive_successes, 1);
    EXPECT_EQ(LivenessOf(i), NodeLiveness::kUp);
    // Marked by the probe, so the since is a real time.
    EXPECT_GT(cluster_.Liveness(nodes_.id(i)).since.time_since_epoch().count(), 0);
  }
}

TEST_F(NodeMonitorTest, AStoppedNodeTurnsSuspectThenDownThenUpWhenBack) {
  NodeMonitor monitor(cluster_, {.probe_interval = std::chrono::milliseconds(50),
                                 .probe_timeout = std::chrono::seconds(2)});
  monitor.Start();
  ASSERT_TRUE(WaitFor([&] { return monitor.rounds() >= 1; }));
  EXPECT_EQ(LivenessOf(1), NodeLiveness::kUp);

  const auto stopped_at = std::chrono::system_clock::now();
  nodes_.Stop(1);
  ASSERT_TRUE(WaitFor([&] { return LivenessOf(1) != NodeLiveness::kUp; }));
  // down_after is 3 s: the first failed probes leave it suspect.
  NodeLivenessInfo suspect = cluster_.Liveness(nodes_.id(1));
  EXPECT_EQ(suspect.liveness, NodeLiveness::kSuspect);
  EXPECT_THAT(suspect.last_error, HasSubstr("health check"));
  EXPECT_GE(suspect.since, stopped_at - std::chrono::seconds(1));
  ASSERT_TRUE(WaitFor([&] { return LivenessOf(1) == NodeLiveness::kDown; }));
  NodeLivenessInfo down = cluster_.Liveness(nodes_.id(1));
  // Down from the moment it had failed for down_after.
  EXPECT_EQ(down.since - suspect.since, std::chrono::seconds(3));
  EXPECT_EQ(monitor.Report(nodes_.id(1))->consecutive_successes, 0);
  // The others stay up.
  EXPECT_EQ(LivenessOf(0), NodeLiveness::kUp);
  EXPECT_EQ(LivenessOf(2), NodeLiveness::kUp);

  nodes_.Start(1);
  ASSERT_TRUE(WaitFor([&] { return LivenessOf(1) == NodeLiveness::kUp; }));
  EXPECT_GT(cluster_.Liveness(nodes_.id(1)).since, down.since);
  ASSERT_TRUE(WaitFor([&] { return monitor.Report(nodes_.id(1))->consecutive_successes >= 2; }));

  const auto stop_started = std::chrono::steady_clock::now();
  monitor.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - stop_started, std::chrono::seconds(3));
  const uint64_t rounds = monitor.rounds();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(monitor.rounds(), rounds);  // no round after Stop()
}

TEST_F(NodeMonitorTest, StopEndsARoundWaitingOnANodeThatDoesNotAnswer) {
  // A listening socket that never speaks gRPC: the probe waits its deadline.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const std::string silent_address = absl::StrCat("127.0.0.1:", ntohs(address.sin_port));

  NodeMonitor monitor(cluster_,
                      {.probe_interval = std::chrono::milliseconds(50),
                       .probe_timeout = std::chrono::minutes(5),
                       .extra_nodes = [&] {
                         return std::map<std::string, std::string>{{"silent", silent_address}};
                       }});
  const auto started = std::chrono::steady_clock::now();
  monitor.Start();
  // The first round waits on "silent" (gRPC gives up connecting only after
  // 20 s); nothing is reported before the round ends.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(monitor.rounds(), 0u);
  monitor.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
  EXPECT_EQ(monitor.rounds(), 0u);
  // A stopped round marks nobody: the cancelled calls say nothing.
  EXPECT_EQ(cluster_.Liveness("silent").liveness, NodeLiveness::kUp);
  ::close(fd);
}

TEST_F(NodeMonitorTest, ExtraNodesAreProbedToo) {
  const int extra = nodes_.Add();  // not a member
  NodeMonitor monitor(
      cluster_,
      {.probe_timeout = std::chrono::seconds(5), .extra_nodes = [&] {
         return std::map<std::string, std::string>{{nodes_.id(extra), nodes_.address(extra)}};
       }});
  monitor.ProbeOnce();
  std::optional<NodeReport> report = monitor.Report(nodes_.id(extra));
  ASSERT_TRUE(report && report->health);
  EXPECT_EQ(report->health->node_id(), nodes_.id(extra));
  EXPECT_EQ(LivenessOf(extra), NodeLiveness::kUp);
  nodes_.Stop(extra);
  monitor.ProbeOnce();
  EXPECT_EQ(LivenessOf(extra), NodeLiveness::kSuspect);
  EXPECT_EQ(monitor.Report(nodes_.id(extra))->consecutive_successes, 0);
  // The last answer is kept for the admin view.
  EXPECT_TRUE(monitor.Report(nodes_.id(extra))->health.has_value());
}

TEST_F(NodeMonitorTest, ALapsedAnnouncementMakesAMemberSuspectAtOnce) {
  std::mutex mu;
  std::vector<std::string> announced = {nodes_.id(0), nodes_.id(1), nodes_.id(2), "stranger"};
  bool etcd_down = false;
  NodeMonitor monitor(cluster_, {.probe_timeout = std::chrono::seconds(5),
                                 .announced = [&]() -> absl::StatusOr<std::vector<std::string>> {
                                   std::lock_guard lock(mu);
                                   if (etcd_down) return absl::UnavailableError("etcd is down");
                                   return announced;
                                 }});
  monitor.ProbeOnce();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(LivenessOf(i), NodeLiveness::kUp);
  {
    std::lock_guard lock(mu);
    etcd_down = true;  // says nothing about the nodes
  }
  monitor.ProbeOnce();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(LivenessOf(i), NodeLiveness::kUp);
  {
    std::lock_guard lock(mu);
    etcd_down = false;
    announced = {nodes_.id(0), nodes_.id(1)};  // node2 and the non-member lapse
  }
  monitor.ProbeOnce();
  EXPECT_EQ(LivenessOf(0), NodeLiveness::kUp);
  NodeLivenessInfo lapsed = cluster_.Liveness(nodes_.id(2));
  EXPECT_EQ(lapsed.liveness, NodeLiveness::kSuspect);
  EXPECT_THAT(lapsed.last_error, HasSubstr("announcement"));
  EXPECT_EQ(cluster_.Liveness("stranger").liveness, NodeLiveness::kUp);  // never marked
  // Its process still answers: the next probe says so.
  monitor.ProbeOnce();
  EXPECT_EQ(LivenessOf(2), NodeLiveness::kUp);
}

// A node that answers Health with a settable instance id and hint count, and
// ListHints with its hints two at a time.
class FakeNode final : public storage::v1::StorageService::Service {
 public:
  FakeNode() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakeNode() override { server_->Shutdown(std::chrono::system_clock::now()); }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  void Set(std::string instance_id, std::vector<std::string> hinted_for) {
    std::lock_guard lock(mu_);
    instance_id_ = std::move(instance_id);
    hinted_for_ = std::move(hinted_for);
  }

  grpc::Status Health(grpc::ServerContext*, const storage::v1::HealthRequest*,
                      storage::v1::HealthResponse* response) override {
    std::lock_guard lock(mu_);
    response->set_node_id("fake");
    response->set_instance_id(instance_id_);
    response->mutable_integrity()->set_hints(hinted_for_.size());
    response->mutable_integrity()->set_quarantined_total(4);
    return grpc::Status::OK;
  }

  grpc::Status ListHints(grpc::ServerContext*, const storage::v1::ListHintsRequest* request,
                         storage::v1::ListHintsResponse* response) override {
    std::lock_guard lock(mu_);
    size_t start = 0;
    if (!request->page_token().empty()) start = std::stoul(request->page_token());
    const size_t end = std::min(start + 2, hinted_for_.size());
    for (size_t i = start; i < end; ++i) {
      storage::v1::HintInfo* hint = response->add_hints();
      hint->set_video_id("v");
      hint->set_name(absl::StrCat("f", i));
      hint->set_intended_node(hinted_for_[i]);
    }
    if (end < hinted_for_.size()) response->set_next_page_token(absl::StrCat(end));
    return grpc::Status::OK;
  }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::mutex mu_;
  std::string instance_id_;              // guarded by mu_
  std::vector<std::string> hinted_for_;  // guarded by mu_
};

TEST_F(NodeMonitorTest, CountsTheHintsHeldForEachNodeAndNoticesARestart) {
  FakeNode fake;
  fake.Set("first", {nodes_.id(0), nodes_.id(1), nodes_.id(0), nodes_.id(0), "gone-node"});
  std::mutex mu;
  std::vector<std::string> restarted;
  NodeMonitor monitor(cluster_,
                      {.probe_timeout = std::chrono::seconds(5),
                       .extra_nodes =
                           [&] {
                             return std::map<std::string, std::string>{{"fake", fake.address()}};
                           },
                       .hint_count_interval = std::chrono::milliseconds(0),
                       .on_restart =
                           [&](const std::string& id) {
                             std::lock_guard lock(mu);
                             restarted.push_back(id);
                           }});
  monitor.ProbeOnce();
  EXPECT_EQ(monitor.Report(nodes_.id(0))->hints_pending, 3u);
  EXPECT_EQ(monitor.Report(nodes_.id(1))->hints_pending, 1u);
  EXPECT_EQ(monitor.Report(nodes_.id(2))->hints_pending, 0u);
  EXPECT_EQ(monitor.Report("fake")->health->integrity().quarantined_total(), 4u);
  {
    std::lock_guard lock(mu);
    EXPECT_TRUE(restarted.empty());  // a first answer is no restart
  }

  // Handed back: the counts follow; a new instance id is a restart.
  fake.Set("second", {nodes_.id(1)});
  monitor.ProbeOnce();
  EXPECT_EQ(monitor.Report(nodes_.id(0))->hints_pending, 0u);
  EXPECT_EQ(monitor.Report(nodes_.id(1))->hints_pending, 1u);
  std::lock_guard lock(mu);
  EXPECT_THAT(restarted, ::testing::ElementsAre("fake"));
}

}  // namespace
}  // namespace streamgrid
