#pragma once

// Token checks on gRPC servers, and channels whose every call carries a token
// (and optionally runs over TLS).
//
// gRPC C++ 1.51 refuses call credentials on insecure channels, so the token is
// attached by a client interceptor on the channel instead: every stub made on
// a channel from CreateChannel() sends it, whatever the call.

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "auth/tls.h"
#include "grpcpp/channel.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/client_interceptor.h"
#include "grpcpp/support/status.h"
#include "grpcpp/support/string_ref.h"

namespace streamgrid::auth {

// A server's check of the token each call carries. A default-constructed
// check lets every call through (no token configured).
class TokenCheck {
 public:
  TokenCheck() = default;
  // Calls must carry `token`; `what` names it in refusals ("admin token").
  TokenCheck(std::string token, std::string what);

  // Whether a token is required.
  bool enabled() const { return !token_.empty(); }

  // OK if no token is configured or the call's metadata has
  // "authorization: Bearer <token>"; otherwise UNAUTHENTICATED, saying whether
  // the token is missing or wrong (never what it should be). Handlers call
  // this first, before reading anything of the call.
  grpc::Status Check(const grpc::ServerContext& context) const;
  grpc::Status Check(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const;

 private:
  std::string token_;
  std::string what_;
};

// What a client needs to reach a protected server: a token for every call
// (empty: none) and TLS settings (off unless tls.enabled).
struct ClientSecurity {
  std::string token;
  ClientTls tls;
};

// A channel to `target` with `args` whose every call carries
// security.token (if set), over TLS if security.tls.enabled, else plaintext,
// and passes through `interceptors` too (after the token's).
std::shared_ptr<grpc::Channel> CreateChannel(
    const std::string& target, const grpc::ChannelArguments& args, const ClientSecurity& security,
    std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
        interceptors = {});

// Whether `host` (of a HOST:PORT listen address) is a loopback address:
// localhost, 127.0.0.0/8 or ::1. Anything else, 0.0.0.0 included, is
// reachable from other machines.
bool IsLoopbackHost(std::string_view host);

// The secure default for a listener on `host`: OK on loopback, with a token,
// or when `allow_unauthenticated` says so; otherwise FAILED_PRECONDITION
// telling which flags to give (`token_flag`, e.g. "--cluster-token-file").
absl::Status CheckListenerProtected(std::string_view host, bool has_token,
                                    bool allow_unauthenticated, std::string_view token_flag);

}  // namespace streamgrid::auth
