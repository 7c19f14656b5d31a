#pragma once

// Conversions between etcd's wire types and the client's, shared by the
// client's KV, lease and watch code.

#include <string_view>

#include "absl/status/status.h"
#include "etcd/etcd_client.h"
#include "grpcpp/support/status.h"
#include "proto/etcd/kv.pb.h"

namespace streamgrid::etcd {

// gRPC's status as absl's (the codes number alike), the message prefixed
// with "etcd <what>: ".
absl::Status FromGrpc(const grpc::Status& status, std::string_view what);

KeyValue FromProto(const mvccpb::KeyValue& kv);

}  // namespace streamgrid::etcd
