#pragma once

// For tests that prove a service checks every call: calls each method of a
// gRPC service descriptor, whatever its kind (unary or streaming), with an
// empty request message.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "grpcpp/channel.h"
#include "grpcpp/support/status.h"

namespace streamgrid::auth::testing {

struct MethodCall {
  std::string method;  // "/package.Service/Method"
  grpc::Status status;
};

// Calls every method of `service` once on `channel`, each with `timeout` as
// its deadline: one empty message, half-close, read whatever comes, finish.
// `metadata` is added to each call's initial metadata.
std::vector<MethodCall> CallEveryMethod(
    const std::shared_ptr<grpc::Channel>& channel,
    const google::protobuf::ServiceDescriptor& service,
    const std::vector<std::pair<std::string, std::string>>& metadata = {},
    std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Adds a GoogleTest failure for every method of `service` that is not refused
// with UNAUTHENTICATED when called with no token, a token differing in its
// last character, a longer one, or `token` without the "Bearer " scheme; and
// for every method refused so when called with "Bearer <token>".
void ExpectEveryMethodRequiresToken(const std::shared_ptr<grpc::Channel>& channel,
                                    const google::protobuf::ServiceDescriptor& service,
                                    const std::string& token);

}  // namespace streamgrid::auth::testing
