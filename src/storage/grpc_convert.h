#pragma once

// Conversions between the storage API's wire types and the C++ types the node
// and its clients use.

#include "absl/status/status.h"
#include "grpcpp/support/status.h"
#include "proto/storage.pb.h"
#include "storage/stored_file.h"

namespace streamgrid::storage {

// The same code and message; absl and gRPC number their codes alike.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status ToAbslStatus(const grpc::Status& status);

void ToProto(const StoredFile& file, v1::FileInfo* proto);
StoredFile FromProto(const v1::FileInfo& proto);

}  // namespace streamgrid::storage
