#pragma once

// A synchronous client of the web server's AdminService
// (proto/admin.proto), with gRPC's statuses turned into absl's.

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "auth/grpc_auth.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"
#include "proto/admin.grpc.pb.h"

namespace streamgrid::admin_cli {

namespace v1 = ::streamgrid::admin::v1;

using Deadline = std::chrono::system_clock::time_point;

// The same code and message (absl and gRPC number their codes alike).
absl::Status FromGrpcStatus(const grpc::Status& status);

// One channel to the admin API at `server` ("host:port"), shared by every
// call; thread-safe. Every call has the deadline it is given. ListNodes and
// Status, which the server never fails with UNAVAILABLE itself, reword that
// code's message to name the server they could not reach; the membership
// calls return the server's errors as they are (UNAVAILABLE from AddNode can
// be the server's own answer: the new node does not answer).
class AdminClient {
 public:
  // Every call carries `security`'s admin token, if any, over TLS if it says so.
  explicit AdminClient(std::string server, const auth::ClientSecurity& security = {});

  const std::string& server() const { return server_; }

  absl::StatusOr<v1::ListNodesResponse> ListNodes(Deadline deadline);
  absl::StatusOr<v1::StatusResponse> Status(Deadline deadline);
  // Status in a context the caller owns, e.g. to cancel it from another
  // thread; the caller sets its deadline.
  absl::StatusOr<v1::StatusResponse> Status(grpc::ClientContext& context);

  // The migration each call answers with (see proto/admin.proto for `wait`).
  absl::StatusOr<v1::Migration> AddNode(const v1::AddNodeRequest& request, Deadline deadline);
  absl::StatusOr<v1::Migration> RemoveNode(const v1::RemoveNodeRequest& request, Deadline deadline);
  absl::StatusOr<v1::Migration> ResumeMigration(const v1::ResumeMigrationRequest& request,
                                                Deadline deadline);

 private:
  // `status` with an UNAVAILABLE or DEADLINE_EXCEEDED message naming the server.
  absl::Status Unreached(const grpc::Status& status) const;

  std::string server_;
  std::unique_ptr<v1::AdminService::Stub> stub_;
};

}  // namespace streamgrid::admin_cli
