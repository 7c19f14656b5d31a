#include "admin/admin_service.h"

#include <algorithm>
#include <future>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "storage/grpc_convert.h"
#include "storage/storage_client.h"

namespace streamgrid {
namespace {

namespace v1 = admin::v1;

v1::MigrationState StateOf(MigrationPhase phase) {
  switch (phase) {
    case MigrationPhase::kCopying:
      return v1::MIGRATION_STATE_COPYING;
    case MigrationPhase::kCleaning:
      return v1::MIGRATION_STATE_CLEANING;
    case MigrationPhase::kDone:
      return v1::MIGRATION_STATE_DONE;
    case MigrationPhase::kFailed:
      return v1::MIGRATION_STATE_FAILED;
  }
  return v1::MIGRATION_STATE_UNSPECIFIED;
}

grpc::Status ToGrpc(const absl::Status& status) { return storage::ToGrpcStatus(status); }

v1::NodeHealth HealthOf(NodeLiveness liveness) {
  switch (liveness) {
    case NodeLiveness::kUp:
      return v1::NODE_HEALTH_UP;
    case NodeLiveness::kSuspect:
      return v1::NODE_HEALTH_SUSPECT;
    case NodeLiveness::kDown:
      return v1::NODE_HEALTH_DOWN;
  }
  return v1::NODE_HEALTH_UNSPECIFIED;
}

int64_t UnixMs(std::chrono::system_clock::time_point time) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

}  // namespace

void ToProto(const MigrationProgress& progress, v1::Migration* proto) {
  const MigrationRecord& r = progress.record;
  proto->set_state(StateOf(r.phase));
  proto->set_description(r.description);
  proto->set_partitions_total(r.partitions_total);
  proto->set_partitions_done(progress.partitions_done);
  proto->set_files_copied(r.files_copied);
  proto->set_bytes_copied(r.bytes_copied);
  proto->set_files_deleted(r.files_deleted);
  proto->set_error(r.error);
  proto->set_started_unix_ms(r.started_unix_ms);
  proto->set_finished_unix_ms(r.finished_unix_ms);
  proto->set_from_version(r.from_version);
  proto->set_to_version(r.to_version);
}

AdminServiceImpl::AdminServiceImpl(Cluster* cluster, Migrator* migrator,
                                   AdminServiceOptions options)
    : cluster_(cluster), migrator_(migrator), options_(options) {}

grpc::Status AdminServiceImpl::NoCluster() const {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      "this web server keeps content in a local directory (--content fs:...); "
                      "it has no storage nodes to manage");
}

std::vector<storage::NodeAnnouncement> AdminServiceImpl::Announced() const {
  if (!options_.announcements) return {};
  absl::StatusOr<std::vector<storage::NodeAnnouncement>> announced = options_.announcements();
  // Members are listed all the same; only "announced" and the available nodes
  // are missing then.
  return announced.ok() ? *std::move(announced) : std::vector<storage::NodeAnnouncement>{};
}

grpc::Status AdminServiceImpl::ListNodes(grpc::ServerContext* context, const v1::ListNodesRequest*,
                                         v1::ListNodesResponse* response) {
  if (grpc::Status denied = options_.auth.Check(*context); !denied.ok()) return denied;
  if (!cluster_) return NoCluster();
  std::shared_ptr<const ClusterState> state = cluster_->state();
  const Placement& current = state->current;
  const Placement* target = state->target ? &*state->target : nullptr;
  std::vector<ClusterNode> nodes = cluster_->AllNodes();
  const size_t members = nodes.size();
  std::map<std::string, storage::NodeAnnouncement> announced;
  for (storage::NodeAnnouncement& a : Announced()) announced[a.node_id] = std::move(a);
  for (const auto& [id, a] : announced) {
    if (!cluster_->Node(id)) nodes.push_back({.id = id, .address = a.address});
  }
  // Nodes taken out automatically (down too long): listed as out.
  std::map<std::string, const OutNode*> out_nodes;
  for (const OutNode& o : state->out) {
    out_nodes[o.node.id] = &o;
    if (!cluster_->Node(o.node.id) && !announced.contains(o.node.id)) {
      nodes.push_back({.id = o.node.id, .address = o.node.address});
    }
  }
  // Ask every node at once: one that does not answer costs its deadline once.
  std::vector<std::future<absl::StatusOr<storage::NodeHealth>>> health;
  for (const ClusterNode& node : nodes) {
    health.push_back(std::async(std::launch::async, [this, node] {
      std::unique_ptr<storage::StorageClient> client =
          node.channel ? std::make_unique<storage::StorageClient>(
                             node.channel,
                             storage::StorageClientOptions{.call_timeout = options_.health_timeout})
                       : cluster_->ClientFor(node.address, options_.health_timeout);
      return client->Health();
    }));
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    const ClusterNode& node = nodes[i];
    const bool member = i < members;
    v1::Node* out = response->add_nodes();
    out->set_id(node.id);
    out->set_address(node.address);
    out->set_announced(announced.contains(node.id));
    if (member) {
      const bool in_current = current.IndexOf(node.id).has_value();
      const bool in_target = target && target->IndexOf(node.id).has_value();
      const Placement& placement = in_current ? current : *target;
      out->set_weight(placement.node(*placement.IndexOf(node.id)).weight);
      if (target && !in_current) {
        out->set_state(v1::NODE_STATE_JOINING);
      } else if (target && !in_target) {
        out->set_state(v1::NODE_STATE_LEAVING);
      } else {
        out->set_state(v1::NODE_STATE_ACTIVE);
      }
      out->set_share_of_keyspace(current.ShareOfKeyspace(node.id));
      out->set_target_share_of_keyspace(target ? target->ShareOfKeyspace(node.id)
                                               : current.ShareOfKeyspace(node.id));
    } else if (auto o = out_nodes.find(node.id); o != out_nodes.end()) {
      out->set_state(v1::NODE_STATE_OUT);
      out->set_weight(o->second->node.weight);
    } else {
      out->set_state(v1::NODE_STATE_AVAILABLE);
    }
    absl::StatusOr<storage::NodeHealth> h = health[i].get();
    out->set_reachable(h.ok());
    if (h.ok()) {
      if (member) cluster_->MarkSuccess(node.id);
      out->set_files(h->files);
      out->set_bytes_used(h->bytes_used);
      out->set_free_bytes(h->free_bytes);
      out->set_total_bytes(h->total_bytes);
    } else {
      // This very check counts as the failure detector's evidence too.
      if (member && Cluster::IsNodeFailure(h.status())) {
        cluster_->MarkFailure(node.id, std::string(h.status().message()));
      }
      out->set_error(std::string(h.status().message()));
    }
    if (member) {
      const NodeLivenessInfo liveness = cluster_->Liveness(node.id);
      out->set_health(HealthOf(liveness.liveness));
      if (liveness.since.time_since_epoch().count() > 0) {
        out->set_health_since_unix_ms(UnixMs(liveness.since));
      }
    } else {
      out->set_health(h.ok() ? v1::NODE_HEALTH_UP : v1::NODE_HEALTH_DOWN);
    }
    if (options_.monitor) {
      if (std::optional<NodeReport> report = options_.monitor->Report(node.id)) {
        if (report->health) {
          const storage::v1::IntegrityStats& integrity = report->health->integrity();
          out->set_quarantined(integrity.quarantined_total());
          out->set_scrubbed_bytes(integrity.scrub().bytes_checked());
        }
        if (report->hints_pending) out->set_hints_pending(*report->hints_pending);
      }
    }
  }
  response->set_replication_factor(current.replication_factor());
  response->set_placement_version(current.version());
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::Finish(grpc::ServerContext* context,
                                      absl::StatusOr<MigrationProgress> started, bool wait,
                                      v1::MembershipChangeResponse* response) {
  if (!started.ok()) return ToGrpc(started.status());
  MigrationProgress progress = *std::move(started);
  if (wait) {
    const auto deadline =
        std::min(context->deadline(), std::chrono::system_clock::now() + options_.max_wait);
    absl::StatusOr<MigrationProgress> over = migrator_->WaitUntilOver(
        progress.record.to_version, deadline, [context] { return context->IsCancelled(); });
    if (!over.ok()) return ToGrpc(over.status());
    progress = *std::move(over);
  }
  ToProto(progress, response->mutable_migration());
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::AddNode(grpc::ServerContext* context,
                                       const v1::AddNodeRequest* request,
                                       v1::MembershipChangeResponse* response) {
  if (grpc::Status denied = options_.auth.Check(*context); !denied.ok()) return denied;
  if (!migrator_) return NoCluster();
  RingNode node{.id = request->id(), .address = request->address(), .weight = request->weight()};
  // A node announced in etcd is added by its id, or by its address under the
  // id it announces.
  const std::vector<storage::NodeAnnouncement> announced = Announced();
  if (options_.announcements && node.address.find(':') == std::string::npos &&
      std::none_of(announced.begin(), announced.end(),
                   [&](const auto& a) { return a.node_id == node.address; })) {
    return ToGrpc(absl::InvalidArgumentError(
        absl::StrCat("no storage node '", node.address,
                     "' announces itself in etcd, and it is not an address HOST:PORT")));
  }
  for (const storage::NodeAnnouncement& a : announced) {
    if (node.address == a.node_id && node.address.find(':') == std::string::npos) {
      node.address = a.address;
      if (node.id.empty()) node.id = a.node_id;
    } else if (node.address == a.address && node.id.empty()) {
      node.id = a.node_id;
    }
  }
  return Finish(context, migrator_->AddNode(std::move(node)), request->wait(), response);
}

grpc::Status AdminServiceImpl::RemoveNode(grpc::ServerContext* context,
                                          const v1::RemoveNodeRequest* request,
                                          v1::MembershipChangeResponse* response) {
  if (grpc::Status denied = options_.auth.Check(*context); !denied.ok()) return denied;
  if (!migrator_) return NoCluster();
  return Finish(context, migrator_->RemoveNode(request->node()), request->wait(), response);
}

grpc::Status AdminServiceImpl::ResumeMigration(grpc::ServerContext* context,
                                               const v1::ResumeMigrationRequest* request,
                                               v1::MembershipChangeResponse* response) {
  if (grpc::Status denied = options_.auth.Check(*context); !denied.ok()) return denied;
  if (!migrator_) return NoCluster();
  return Finish(context, migrator_->Resume(), request->wait(), response);
}

grpc::Status AdminServiceImpl::Status(grpc::ServerContext* context, const v1::StatusRequest*,
                                      v1::StatusResponse* response) {
  if (grpc::Status denied = options_.auth.Check(*context); !denied.ok()) return denied;
  if (!cluster_) return NoCluster();
  std::shared_ptr<const ClusterState> state = cluster_->state();
  if (std::optional<MigrationProgress> progress = migrator_->Progress()) {
    ToProto(*progress, response->mutable_migration());
  }
  if (options_.coordinator) {
    // Best effort: the cluster's own figures are answered all the same.
    if (auto servers = options_.coordinator->Servers(); servers.ok()) {
      for (const RegisteredServer& server : *servers) {
        v1::WebServer* out = response->add_web_servers();
        out->set_id(server.server_id);
        out->set_state_revision(server.state_revision);
        out->set_drained_revision(server.drained_revision);
      }
    }
    if (auto runner = options_.coordinator->Runner(); runner.ok()) {
      response->set_migration_runner(*runner);
    }
  }
  response->set_replication_factor(state->current.replication_factor());
  response->set_placement_version(state->current.version());
  response->set_nodes(static_cast<uint32_t>(state->current.nodes().size()));
  if (options_.repair) {
    const repair::RepairStats& stats = *options_.repair;
    v1::RepairStatus* repair = response->mutable_repair();
    repair->set_hints_pending(stats.hints_pending.load());
    repair->set_hints_handed_back(stats.hints_handed_back.load());
    repair->set_files_repaired(stats.files_repaired.load());
    repair->set_bytes_repaired(stats.bytes_repaired.load());
    repair->set_damaged_reported(stats.damaged_reported.load());
    repair->set_anti_entropy_passes(stats.anti_entropy_passes.load());
    repair->set_last_anti_entropy_unix_ms(stats.last_anti_entropy_unix_ms.load());
    repair->set_files_unrecoverable(stats.files_unrecoverable.load());
    repair->set_last_error(stats.LastError());
  }
  return grpc::Status::OK;
}

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(const std::string& listen_address,
                                                                AdminServiceImpl& service,
                                                                const auth::ServerTls& tls) {
  std::unique_ptr<AdminServer> server(new AdminServer);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen_address, auth::ServerCredentials(tls), &server->port_);
  builder.RegisterService(&service);
  // Two web servers must not share one admin port by accident.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  server->server_ = builder.BuildAndStart();
  if (!server->server_ || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen_address));
  }
  return server;
}

AdminServer::~AdminServer() { Shutdown(std::chrono::milliseconds(0)); }

void AdminServer::Shutdown(std::chrono::milliseconds grace) {
  if (shut_down_ || !server_) return;
  shut_down_ = true;
  server_->Shutdown(std::chrono::system_clock::now() + grace);
  server_->Wait();
}

}  // namespace streamgrid
