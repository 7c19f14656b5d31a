#include "auth/grpc_auth.h"

#include <arpa/inet.h>

#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "auth/token.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/client_interceptor.h"
#include "grpcpp/support/interceptor.h"

namespace streamgrid::auth {
namespace {

// Adds the token to the initial metadata of every call it sees.
class TokenInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit TokenInterceptor(const std::string& bearer) : bearer_(bearer) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace(std::string(kAuthorizationKey), bearer_);
    }
    methods->Proceed();
  }

 private:
  const std::string& bearer_;  // owned by the factory, which the channel keeps
};

class TokenInterceptorFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit TokenInterceptorFactory(std::string_view token) : bearer_(BearerValue(token)) {}

  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new TokenInterceptor(bearer_);
  }

 private:
  const std::string bearer_;
};

}  // namespace

TokenCheck::TokenCheck(std::string token, std::string what)
    : token_(std::move(token)), what_(std::move(what)) {}

grpc::Status TokenCheck::Check(const grpc::ServerContext& context) const {
  return Check(context.client_metadata());
}

grpc::Status TokenCheck::Check(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const {
  if (token_.empty()) return grpc::Status::OK;
  auto it = metadata.find(grpc::string_ref(kAuthorizationKey.data(), kAuthorizationKey.size()));
  if (it == metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        absl::StrCat("this call needs the ", what_,
                                     " (metadata 'authorization: Bearer <token>'); none was sent"));
  }
  const std::string_view value(it->second.data(), it->second.size());
  const bool bearer = value.starts_with(kBearerPrefix);
  // Compared even when the scheme is wrong, so that timing tells nothing.
  const bool equal = TokensEqual(bearer ? value.substr(kBearerPrefix.size()) : value, token_);
  if (!bearer || !equal) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        absl::StrCat("the ", what_, " sent with this call is wrong"));
  }
  return grpc::Status::OK;
}

std::shared_ptr<grpc::Channel> CreateChannel(
    const std::string& target, const grpc::ChannelArguments& args, const ClientSecurity& security,
    std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
        interceptors) {
  std::shared_ptr<grpc::ChannelCredentials> credentials = ChannelCredentials(security.tls);
  if (!security.token.empty()) {
    interceptors.insert(interceptors.begin(),
                        std::make_unique<TokenInterceptorFactory>(security.token));
  }
  if (interceptors.empty()) return grpc::CreateCustomChannel(target, credentials, args);
  return grpc::experimental::CreateCustomChannelWithInterceptors(target, credentials, args,
                                                                 std::move(interceptors));
}

bool IsLoopbackHost(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string h(host);
  if (absl::AsciiStrToLower(h) == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    static const in6_addr kLoopback = IN6ADDR_LOOPBACK_INIT;
    return std::memcmp(&v6, &kLoopback, sizeof(v6)) == 0;
  }
  return false;
}

absl::Status CheckListenerProtected(std::string_view host, bool has_token,
                                    bool allow_unauthenticated, std::string_view token_flag) {
  if (has_token || allow_unauthenticated || IsLoopbackHost(host)) return absl::OkStatus();
  const std::string flag(token_flag);
  return absl::FailedPreconditionError(
      absl::StrCat("refusing to listen on ", std::string(host), " without ", flag,
                   ": anyone who can reach it could call it; give ", flag,
                   " (or --allow-unauthenticated if the network is trusted)"));
}

}  // namespace streamgrid::auth
