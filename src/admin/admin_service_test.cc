#include "admin/admin_service.h"

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "auth/testing/call_every_method.h"
#include "cluster/cluster.h"
#include "cluster/sqlite_cluster_state_store.h"
#include "cluster/test_nodes.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "storage/test_util.h"

namespace streamgrid {
namespace {

namespace v1 = admin::v1;
using storage::testing::TempDir;
using ::testing::HasSubstr;
using testing::TestNodes;

// An AdminServer on an ephemeral port and a stub talking to it.
class AdminHarness {
 public:
  // The stub sends `token` with every call, if given.
  AdminHarness(Cluster* cluster, Migrator* migrator, AdminServiceOptions options = {},
               const std::string& token = "")
      : service_(cluster, migrator, std::move(options)) {
    auto server = AdminServer::Start("127.0.0.1:0", service_);
    EXPECT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    target_ = absl::StrCat("127.0.0.1:", server_->port());
    stub_ = v1::AdminService::NewStub(
        auth::CreateChannel(target_, grpc::ChannelArguments(), {.token = token}));
  }

  v1::AdminService::Stub& stub() { return *stub_; }
  const std::string& target() const { return target_; }

  static std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return context;
  }

 private:
  AdminServiceImpl service_;
  std::unique_ptr<AdminServer> server_;
  std::string target_;
  std::unique_ptr<v1::AdminService::Stub> stub_;
};

// A cluster of the first three of `nodes` (R = 2), its state in SQLite, and a
// migrator that is not started, so a change stays pending.
struct PendingCluster {
  explicit PendingCluster(TestNodes& nodes, ClusterOptions options = {}) {
    auto opened = SqliteClusterStateStore::Open(dir.path() / "cluster.db");
    EXPECT_TRUE(opened.ok()) << opened.status();
    store = *std::move(opened);
    std::vector<RingNode> first_three = nodes.RingNodes();
    first_three.pop_back();
    ClusterState state{.current = *Placement::Create(first_three, 2)};
    state.revision = *store->Save(state, 0);
    cluster = std::make_unique<Cluster>(state, std::move(options));
    migrator = std::make_unique<Migrator>(*cluster, *store);
  }

  TempDir dir;
  std::unique_ptr<ClusterStateStore> store;
  std::unique_ptr<Cluster> cluster;
  std::unique_ptr<Migrator> migrator;
};

TEST(AdminServiceTest, WithoutAClusterEveryCallSaysSo) {
  AdminHarness admin(nullptr, nullptr);
  v1::ListNodesResponse nodes;
  grpc::Status status = admin.stub().ListNodes(AdminHarness::Context().get(), {}, &nodes);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("local directory"));
  v1::MembershipChangeResponse change;
  v1::AddNodeRequest add;
  add.set_address("127.0.0.1:1");
  status = admin.stub().AddNode(AdminHarness::Context().get(), add, &change);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST(AdminServiceTest, ListsNodesWithStateReachabilityAndShares) {
  TestNodes nodes(4);
  PendingCluster pending(nodes);
  Cluster& cluster = *pending.cluster;
  Migrator& migrator = *pending.migrator;
  AdminHarness admin(&cluster, &migrator);

  v1::ListNodesResponse before;
  ASSERT_TRUE(admin.stub().ListNodes(AdminHarness::Context().get(), {}, &before).ok());
  ASSERT_EQ(before.nodes_size(), 3);
  EXPECT_EQ(before.replication_factor(), 2);
  EXPECT_EQ(before.placement_version(), 1u);
  for (const v1::Node& node : before.nodes()) {
    EXPECT_EQ(node.state(), v1::NODE_STATE_ACTIVE);
    EXPECT_TRUE(node.reachable()) << node.error();
    EXPECT_GT(node.total_bytes(), 0u);
    EXPECT_NEAR(node.share_of_keyspace(), 1.0 / 3, 0.001);
  }

  // Mid-change: node3 joining, node0 down.
  v1::AddNodeRequest add;
  add.set_address(nodes.address(3));
  add.set_id(nodes.id(3));
  v1::MembershipChangeResponse change;
  ASSERT_TRUE(admin.stub().AddNode(AdminHarness::Context().get(), add, &change).ok());
  EXPECT_EQ(change.migration().state(), v1::MIGRATION_STATE_COPYING);
  EXPECT_EQ(change.migration().description(), "add node node3");
  nodes.Stop(0);
  v1::ListNodesResponse during;
  ASSERT_TRUE(admin.stub().ListNodes(AdminHarness::Context().get(), {}, &during).ok());
  ASSERT_EQ(during.nodes_size(), 4);
  for (const v1::Node& node : during.nodes()) {
    if (node.id() == nodes.id(3)) {
      EXPECT_EQ(node.state(), v1::NODE_STATE_JOINING);
      EXPECT_EQ(node.share_of_keyspace(), 0);
      EXPECT_NEAR(node.target_share_of_keyspace(), 0.25, 0.001);
    } else {
      EXPECT_EQ(node.state(), v1::NODE_STATE_ACTIVE);
    }
    if (node.id() == nodes.id(0)) {
      EXPECT_FALSE(node.reachable());
      EXPECT_FALSE(node.error().empty());
    } else {
      EXPECT_TRUE(node.reachable()) << node.error();
    }
  }

  v1::StatusResponse status;
  ASSERT_TRUE(admin.stub().Status(AdminHarness::Context().get(), {}, &status).ok());
  EXPECT_EQ(status.migration().state(), v1::MIGRATION_STATE_COPYING);
  EXPECT_EQ(status.migration().partitions_done(), 0u);
  EXPECT_GT(status.migration().partitions_total(), 0u);
  EXPECT_EQ(status.nodes(), 3u);

  // Another change is refused while this one runs, with the reason.
  v1::RemoveNodeRequest remove;
  remove.set_node(nodes.id(1));
  grpc::Status refused = admin.stub().RemoveNode(AdminHarness::Context().get(), remove, &change);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.error_message(), HasSubstr("in progress"));
}

TEST(AdminServiceTest, OffersAnnouncedNodesAndAddsOneByItsId) {
  TestNodes nodes(4);
  PendingCluster pending(nodes);
  Cluster& cluster = *pending.cluster;
  Migrator& migrator = *pending.migrator;
  // What etcd would list: node0 (a member) and node3 (not yet one) announce
  // themselves; node1 and node2 run without --etcd.
  std::vector<storage::NodeAnnouncement> announced = {
      {.node_id = nodes.id(0), .address = nodes.address(0)},
      {.node_id = nodes.id(3), .address = nodes.address(3)},
  };
  AdminHarness admin(
      &cluster, &migrator,
      {.announcements = [&]() -> absl::StatusOr<std::vector<storage::NodeAnnouncement>> {
        return announced;
      }});

  v1::ListNodesResponse listed;
  // The first connection to a node just started can fail on a loaded
  // machine; ask again until the offered node answers (bounded).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (true) {
    listed.Clear();
    ASSERT_TRUE(admin.stub().ListNodes(AdminHarness::Context().get(), {}, &listed).ok());
    ASSERT_EQ(listed.nodes_size(), 4);
    if (listed.nodes(3).reachable() || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(listed.nodes(i).state(), v1::NODE_STATE_ACTIVE);
    EXPECT_EQ(listed.nodes(i).announced(), i == 0) << listed.nodes(i).id();
  }
  const v1::Node& offered = listed.nodes(3);
  EXPECT_EQ(offered.id(), nodes.id(3));
  EXPECT_EQ(offered.address(), nodes.address(3));
  EXPECT_EQ(offered.state(), v1::NODE_STATE_AVAILABLE);
  EXPECT_TRUE(offered.announced());
  EXPECT_TRUE(offered.reachable()) << offered.error();
  EXPECT_EQ(offered.share_of_keyspace(), 0);

  // An id that nobody announces is not an address.
  v1::AddNodeRequest add;
  add.set_address("node9");
  v1::MembershipChangeResponse change;
  grpc::Status status = admin.stub().AddNode(AdminHarness::Context().get(), add, &change);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("no storage node 'node9' announces itself"));
  EXPECT_THAT(status.error_message(), HasSubstr("HOST:PORT"));

  // The announced id is enough.
  add.set_address(nodes.id(3));
  status = admin.stub().AddNode(AdminHarness::Context().get(), add, &change);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(change.migration().description(), "add node " + nodes.id(3));
  ASSERT_TRUE(cluster.state()->target.has_value());
  auto index = cluster.state()->target->IndexOf(nodes.id(3));
  ASSERT_TRUE(index.has_value());
  EXPECT_EQ(cluster.state()->target->node(*index).address, nodes.address(3));
}

TEST(AdminServiceTest, ListsEachMembersHealthWithSinceWhen) {
  TestNodes nodes(4);
  ClusterOptions options;
  options.down_after = std::chrono::hours(1);  // stays suspect for the test
  PendingCluster pending(nodes, options);
  NodeMonitor monitor(*pending.cluster, {.probe_timeout = std::chrono::seconds(10)});
  AdminHarness admin(pending.cluster.get(), pending.migrator.get(), {.monitor = &monitor});
  const int64_t start_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  monitor.ProbeOnce();
  v1::ListNodesResponse listed;
  ASSERT_TRUE(admin.stub().ListNodes(AdminHarness::Context().get(), {}, &listed).ok());
  ASSERT_EQ(listed.nodes_size(), 3);
  for (const v1::Node& node : listed.nodes()) {
    EXPECT_EQ(node.health(), v1::NODE_HEALTH_UP) << node.id();
    EXPECT_GE(node.health_since_unix_ms(), start_ms - 1000) << node.id();
  }

  nodes.Stop(1);
  monitor.ProbeOnce();
  ASSERT_TRUE(admin.stub().ListNodes(AdminHarness::Context().get(), {}, &listed).ok());
  for (const v1::Node& node : listed.nodes()) {
    if (node.id() == nodes.id(1)) {
      EXPECT_EQ(node.health(), v1::NODE_HEALTH_SUSPECT);
      EXPECT_FALSE(node.reachable());
      EXPECT_GE(node.health_since_unix_ms(), start_ms - 1000);
    } else {
      EXPECT_EQ(node.health(), v1::NODE_HEALTH_UP) << node.id();
    }
  }

  // With no down_after to wait, the listing's own failed check makes it down.
  ClusterOptions quick;
  quick.down_after = std::chrono::milliseconds(0);
  PendingCluster other(nodes, quick);
  AdminHarness admin2(other.cluster.get(), other.migrator.get());
  ASSERT_TRUE(admin2.stub().ListNodes(AdminHarness::Context().get(), {}, &listed).ok());
  for (const v1::Node& node : listed.nodes()) {
    EXPECT_EQ(node.health(), node.id() == nodes.id(1) ? v1::NODE_HEALTH_DOWN : v1::NODE_HEALTH_UP)
        << node.id();
  }
  // Back: up again once a probe gets through (the channel may still be backing
  // off from the outage for a moment).
  nodes.Start(1);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  monitor.ProbeOnce();
  while (pending.cluster->Liveness(nodes.id(1)).liveness != NodeLiveness::kUp &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    monitor.ProbeOnce();
  }
  ASSERT_TRUE(admin.stub().ListNodes(AdminHarness::Context().get(), {}, &listed).ok());
  for (const v1::Node& node : listed.nodes()) EXPECT_EQ(node.health(), v1::NODE_HEALTH_UP);
}

TEST(AdminServiceTest, StatusReportsWhatRepairHasDone) {
  TestNodes nodes(4);
  PendingCluster pending(nodes);
  repair::RepairStats stats;
  stats.hints_pending = 3;
  stats.hints_handed_back = 5;
  stats.files_repaired = 7;
  stats.bytes_repaired = 7000;
  stats.damaged_reported = 2;
  stats.anti_entropy_passes = 4;
  stats.last_anti_entropy_unix_ms = 1714564800000;
  stats.files_unrecoverable = 1;
  stats.SetLastError("node1: no live replica of v/seg");
  AdminHarness admin(pending.cluster.get(), pending.migrator.get(), {.repair = &stats});
  v1::StatusResponse status;
  ASSERT_TRUE(admin.stub().Status(AdminHarness::Context().get(), {}, &status).ok());
  ASSERT_TRUE(status.has_repair());
  const v1::RepairStatus& repair = status.repair();
  EXPECT_EQ(repair.hints_pending(), 3u);
  EXPECT_EQ(repair.hints_handed_back(), 5u);
  EXPECT_EQ(repair.files_repaired(), 7u);
  EXPECT_EQ(repair.bytes_repaired(), 7000u);
  EXPECT_EQ(repair.damaged_reported(), 2u);
  EXPECT_EQ(repair.anti_entropy_passes(), 4u);
  EXPECT_EQ(repair.last_anti_entropy_unix_ms(), 1714564800000);
  EXPECT_EQ(repair.files_unrecoverable(), 1u);
  EXPECT_EQ(repair.last_error(), "node1: no live replica of v/seg");

  // Without repair figures the field stays unset.
  AdminHarness bare(pending.cluster.get(), pending.migrator.get());
  v1::StatusResponse plain;
  ASSERT_TRUE(bare.stub().Status(AdminHarness::Context().get(), {}, &plain).ok());
  EXPECT_FALSE(plain.has_repair());
}

// Every method of the admin API refuses a call without the admin token, or
// with a wrong one, before doing anything.
TEST(AdminServiceAuthTest, EveryMethodRequiresTheAdminToken) {
  TestNodes nodes(3);
  PendingCluster pending(nodes);
  AdminHarness admin(pending.cluster.get(), pending.migrator.get(),
                     {.auth = auth::TokenCheck("admin-secret", "admin token")});
  auto channel = grpc::CreateChannel(admin.target(), grpc::InsecureChannelCredentials());
  const auto& service = *google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
      v1::AdminService::service_full_name());
  ASSERT_EQ(service.method_count(), 5);
  const uint64_t revision = pending.cluster->state()->revision;
  auth::testing::ExpectEveryMethodRequiresToken(channel, service, "admin-secret");
  // The refused calls changed nothing.
  EXPECT_EQ(pending.cluster->state()->revision, revision);
}

// With nodes that require the cluster token, the admin API's node probes
// (members, announced nodes) and the migrator's probe of a node being added
// carry it.
TEST(AdminServiceAuthTest, NodeProbesCarryTheClusterToken) {
  TestNodes nodes(4, "cluster-secret");
  ClusterOptions options;
  options.client.security.token = "cluster-secret";
  PendingCluster pending(nodes, options);
  std::vector<storage::NodeAnnouncement> announced = {
      {.node_id = nodes.id(3), .address = nodes.address(3)}};
  AdminHarness admin(
      pending.cluster.get(), pending.migrator.get(),
      {.announcements = [&]() -> absl::StatusOr<std::vector<storage::NodeAnnouncement>> {
         return announced;
       },
       .auth = auth::TokenCheck("admin-secret", "admin token")},
      "admin-secret");
  v1::ListNodesResponse listed;
  ASSERT_TRUE(admin.stub().ListNodes(AdminHarness::Context().get(), {}, &listed).ok());
  ASSERT_EQ(listed.nodes_size(), 4);
  for (const v1::Node& node : listed.nodes()) {
    EXPECT_TRUE(node.reachable()) << node.id() << ": " << node.error();
  }
  v1::AddNodeRequest add;
  add.set_address(nodes.address(3));
  v1::MembershipChangeResponse change;
  grpc::Status status = admin.stub().AddNode(AdminHarness::Context().get(), add, &change);
  EXPECT_TRUE(status.ok()) << status.error_message();

  // Without the cluster token, the same nodes refuse the probes.
  TestNodes locked(4, "cluster-secret");
  PendingCluster tokenless(locked);
  AdminHarness admin2(tokenless.cluster.get(), tokenless.migrator.get());
  ASSERT_TRUE(admin2.stub().ListNodes(AdminHarness::Context().get(), {}, &listed).ok());
  for (const v1::Node& node : listed.nodes()) {
    EXPECT_FALSE(node.reachable()) << node.id();
    EXPECT_THAT(node.error(), HasSubstr("cluster token")) << node.id();
  }
  add.set_address(locked.address(3));
  status = admin2.stub().AddNode(AdminHarness::Context().get(), add, &change);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("--cluster-token-file"));
}

}  // namespace
}  // namespace streamgrid
