#pragma once

// The web server's admin API (proto/admin.proto): storage cluster membership
// and migrations, over gRPC.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "auth/grpc_auth.h"
#include "auth/tls.h"
#include "cluster/cluster.h"
#include "cluster/node_monitor.h"
#include "grpcpp/server.h"
#include "migration/etcd_migration_coordinator.h"
#include "migration/migrator.h"
#include "proto/admin.grpc.pb.h"
#include "repair/repair_stats.h"
#include "storage/node_announcement.h"

namespace streamgrid {

struct AdminServiceOptions {
  // Deadline of the health check ListNodes makes of each node.
  std::chrono::milliseconds health_timeout = std::chrono::seconds(2);
  // The longest a `wait` call waits for its migration, whatever its deadline.
  std::chrono::hours max_wait = std::chrono::hours(24);
  // The storage nodes announced in etcd now (ListNodeAnnouncements); null
  // without etcd.
  std::function<absl::StatusOr<std::vector<storage::NodeAnnouncement>>()> announcements;
  // The web servers' registry in etcd, for Status; null without etcd.
  EtcdMigrationCoordinator* coordinator = nullptr;
  // The admin token every call must carry (none by default); each handler
  // checks it before anything else.
  auth::TokenCheck auth;
  // The failure detector, for each node's last known hints, quarantine and
  // scrub figures in ListNodes; null: those stay 0.
  const NodeMonitor* monitor = nullptr;
  // What the self-repair loops have done, for Status; null: left unset.
  const repair::RepairStats* repair = nullptr;
};

// AdminService over a live Cluster and its Migrator. Without them (the web
// server keeps content in a local directory) every call fails with
// FAILED_PRECONDITION saying so.
class AdminServiceImpl final : public admin::v1::AdminService::Service {
 public:
  // `cluster` and `migrator` (both or neither null) must outlive the service.
  AdminServiceImpl(Cluster* cluster, Migrator* migrator, AdminServiceOptions options = {});

  grpc::Status ListNodes(grpc::ServerContext* context, const admin::v1::ListNodesRequest* request,
                         admin::v1::ListNodesResponse* response) override;
  grpc::Status AddNode(grpc::ServerContext* context, const admin::v1::AddNodeRequest* request,
                       admin::v1::MembershipChangeResponse* response) override;
  grpc::Status RemoveNode(grpc::ServerContext* context, const admin::v1::RemoveNodeRequest* request,
                          admin::v1::MembershipChangeResponse* response) override;
  grpc::Status Status(grpc::ServerContext* context, const admin::v1::StatusRequest* request,
                      admin::v1::StatusResponse* response) override;
  grpc::Status ResumeMigration(grpc::ServerContext* context,
                               const admin::v1::ResumeMigrationRequest* request,
                               admin::v1::MembershipChangeResponse* response) override;

 private:
  grpc::Status NoCluster() const;
  // options_.announcements(), empty without it or when etcd does not answer.
  std::vector<storage::NodeAnnouncement> Announced() const;
  // Answers with `started`, or with the end of its migration when `wait`.
  grpc::Status Finish(grpc::ServerContext* context, absl::StatusOr<MigrationProgress> started,
                      bool wait, admin::v1::MembershipChangeResponse* response);

  Cluster* const cluster_;
  Migrator* const migrator_;
  const AdminServiceOptions options_;
};

// The admin gRPC server of a web server.
class AdminServer {
 public:
  // Listens on `listen_address` (HOST:PORT, port 0 picks one), over TLS if
  // `tls` is enabled, and serves `service`, which must outlive the server.
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(const std::string& listen_address,
                                                            AdminServiceImpl& service,
                                                            const auth::ServerTls& tls = {});
  ~AdminServer();  // Shutdown(0) if not done

  // The bound port.
  int port() const { return port_; }

  // Stops accepting calls and cancels running ones after `grace`. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  AdminServer() = default;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

// A migration's progress as the admin API reports it.
void ToProto(const MigrationProgress& progress, admin::v1::Migration* proto);

}  // namespace streamgrid
