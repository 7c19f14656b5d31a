#include "storage/grpc_convert.h"

#include <string>

namespace streamgrid::storage {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Status ToAbslStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

void ToProto(const StoredFile& file, v1::FileInfo* proto) {
  proto->set_video_id(file.video_id);
  proto->set_name(file.name);
  proto->set_size(file.size);
  proto->set_sha256(file.sha256);
  proto->set_mtime_unix_nanos(file.mtime_unix_nanos);
}

StoredFile FromProto(const v1::FileInfo& proto) {
  return StoredFile{.video_id = proto.video_id(),
                    .name = proto.name(),
                    .size = proto.size(),
                    .sha256 = proto.sha256(),
                    .mtime_unix_nanos = proto.mtime_unix_nanos()};
}

}  // namespace streamgrid::storage
