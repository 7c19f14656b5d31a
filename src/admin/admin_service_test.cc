#include "admin/admin_service.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
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
  AdminHarness(Cluster* cluster, Migrator* migrator) : service_(cluster, migrator) {
    auto server = AdminServer::Start("127.0.0.1:0", service_);
    EXPECT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = v1::AdminService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials()));
  }

  v1::AdminService::Stub& stub() { return *stub_; }

  static std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return context;
  }

 private:
  AdminServiceImpl service_;
  std::unique_ptr<AdminServer> server_;
  std::unique_ptr<v1::AdminService::Stub> stub_;
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
  TempDir dir;
  auto store = SqliteClusterStateStore::Open(dir.path() / "cluster.db");
  ASSERT_TRUE(store.ok());
  std::vector<RingNode> first_three = nodes.RingNodes();
  first_three.pop_back();
  ClusterState state{.current = *Placement::Create(first_three, 2)};
  state.revision = *(*store)->Save(state, 0);
  Cluster cluster(state);
  Migrator migrator(cluster, **store);  // not started: the change stays pending
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

}  // namespace
}  // namespace streamgrid
