#include "etcd/convert.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace streamgrid::etcd {

absl::Status FromGrpc(const grpc::Status& status, std::string_view what) {
  if (status.ok()) return absl::OkStatus();
  // What etcd says when a call without a token reaches it with authentication
  // enabled: name the cause.
  if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT &&
      absl::StrContains(status.error_message(), "user name is empty")) {
    return absl::UnauthenticatedError(
        absl::StrCat("etcd ", std::string(what),
                     ": etcd has authentication enabled and no etcd user was given (",
                     status.error_message(), ")"));
  }
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat("etcd ", std::string(what), ": ", status.error_message()));
}

KeyValue FromProto(const mvccpb::KeyValue& kv) {
  return {.key = kv.key(),
          .value = kv.value(),
          .create_revision = kv.create_revision(),
          .mod_revision = kv.mod_revision(),
          .version = kv.version(),
          .lease = kv.lease()};
}

}  // namespace streamgrid::etcd
