#include "admin_cli/admin_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/support/channel_arguments.h"

namespace streamgrid::admin_cli {
namespace {

std::shared_ptr<grpc::Channel> Connect(const std::string& server,
                                       const auth::ClientSecurity& security) {
  grpc::ChannelArguments args;
  // gRPC's default backoff grows to two minutes between connection attempts;
  // after the web server restarts, the fallback polling should find it again
  // within a second or so.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 250);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 250);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return auth::CreateChannel(server, args, security);
}

absl::StatusOr<v1::Migration> MigrationOf(const grpc::Status& status,
                                          const v1::MembershipChangeResponse& response) {
  if (!status.ok()) return FromGrpcStatus(status);
  return response.migration();
}

}  // namespace

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

AdminClient::AdminClient(std::string server, const auth::ClientSecurity& security)
    : server_(std::move(server)), stub_(v1::AdminService::NewStub(Connect(server_, security))) {}

absl::Status AdminClient::Unreached(const grpc::Status& status) const {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return absl::UnavailableError(absl::StrCat("cannot reach the admin API at ", server_, " (",
                                                 status.error_message(), ")"));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::DeadlineExceededError(
          absl::StrCat("the admin API at ", server_, " did not answer in time"));
    default:
      return FromGrpcStatus(status);
  }
}

absl::StatusOr<v1::ListNodesResponse> AdminClient::ListNodes(Deadline deadline) {
  grpc::ClientContext context;
  context.set_deadline(deadline);
  v1::ListNodesResponse response;
  grpc::Status status = stub_->ListNodes(&context, v1::ListNodesRequest(), &response);
  if (!status.ok()) return Unreached(status);
  return response;
}

absl::StatusOr<v1::StatusResponse> AdminClient::Status(Deadline deadline) {
  grpc::ClientContext context;
  context.set_deadline(deadline);
  return Status(context);
}

absl::StatusOr<v1::StatusResponse> AdminClient::Status(grpc::ClientContext& context) {
  v1::StatusResponse response;
  grpc::Status status = stub_->Status(&context, v1::StatusRequest(), &response);
  if (!status.ok()) return Unreached(status);
  return response;
}

absl::StatusOr<v1::Migration> AdminClient::AddNode(const v1::AddNodeRequest& request,
                                                   Deadline deadline) {
  grpc::ClientContext context;
  context.set_deadline(deadline);
  v1::MembershipChangeResponse response;
  return MigrationOf(stub_->AddNode(&context, request, &response), response);
}

absl::StatusOr<v1::Migration> AdminClient::RemoveNode(const v1::RemoveNodeRequest& request,
                                                      Deadline deadline) {
  grpc::ClientContext context;
  context.set_deadline(deadline);
  v1::MembershipChangeResponse response;
  return MigrationOf(stub_->RemoveNode(&context, request, &response), response);
}

absl::StatusOr<v1::Migration> AdminClient::ResumeMigration(
    const v1::ResumeMigrationRequest& request, Deadline deadline) {
  grpc::ClientContext context;
  context.set_deadline(deadline);
  v1::MembershipChangeResponse response;
  return MigrationOf(stub_->ResumeMigration(&context, request, &response), response);
}

}  // namespace streamgrid::admin_cli
