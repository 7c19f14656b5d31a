#include "etcd/auth_token.h"

#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "etcd/convert.h"
#include "proto/etcd/rpc.grpc.pb.h"

namespace streamgrid::etcd {
namespace {

namespace pb = etcdserverpb;
namespace gx = grpc::experimental;

constexpr char kAuthenticateMethod[] = "/etcdserverpb.Auth/Authenticate";
// etcd's metadata key for the token (the Go client's rpctypes.TokenFieldNameGRPC).
constexpr char kTokenKey[] = "token";
// How long a refused authentication is answered from memory.
constexpr std::chrono::seconds kRefusalHoldoff(1);

// Sends the token held with the call, and forgets it when etcd refuses it.
class TokenInterceptor : public gx::Interceptor {
 public:
  explicit TokenInterceptor(std::shared_ptr<AuthTokens> tokens) : tokens_(std::move(tokens)) {}

  void Intercept(gx::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            gx::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      sent_ = tokens_->Current();
      if (!sent_.empty()) methods->GetSendInitialMetadata()->emplace(kTokenKey, sent_);
    }
    if (methods->QueryInterceptionHookPoint(gx::InterceptionHookPoints::POST_RECV_STATUS)) {
      grpc::Status* status = methods->GetRecvStatus();
      if (status != nullptr && !status->ok()) Inspect(*status);
    }
    methods->Proceed();
  }

 private:
  void Inspect(grpc::Status& status) {
    const absl::Status got(static_cast<absl::StatusCode>(status.error_code()),
                           status.error_message());
    if (AuthTokens::IsTokenRefused(got)) {
      if (!sent_.empty()) tokens_->Invalidate(sent_);
      return;
    }
    // Without a token etcd answers "user name is empty", which says nothing
    // of why: either authenticating failed (tell that), or another call had
    // the token refused just before this one started (a refused token too,
    // so callers renew it and send again).
    if (sent_.empty() && status.error_code() == grpc::StatusCode::INVALID_ARGUMENT &&
        absl::StrContains(status.error_message(), "user name is empty")) {
      const absl::Status error = tokens_->LastError();
      if (!error.ok()) {
        status =
            grpc::Status(static_cast<grpc::StatusCode>(error.code()), std::string(error.message()));
      } else {
        status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                              "sent before the renewal of an invalid auth token");
      }
    }
  }

  const std::shared_ptr<AuthTokens> tokens_;
  std::string sent_;
};

class TokenInterceptorFactory : public gx::ClientInterceptorFactoryInterface {
 public:
  explicit TokenInterceptorFactory(std::shared_ptr<AuthTokens> tokens)
      : tokens_(std::move(tokens)) {}

  gx::Interceptor* CreateClientInterceptor(gx::ClientRpcInfo* info) override {
    // Authenticate itself goes without a token.
    if (std::strcmp(info->method(), kAuthenticateMethod) == 0) return nullptr;
    return new TokenInterceptor(tokens_);
  }

 private:
  const std::shared_ptr<AuthTokens> tokens_;
};

}  // namespace

AuthTokens::AuthTokens(std::string user, std::string password, std::chrono::milliseconds timeout)
    : user_(std::move(user)), password_(std::move(password)), timeout_(timeout) {}

bool AuthTokens::IsTokenRefused(const absl::Status& status) {
  return (absl::IsUnauthenticated(status) &&
          absl::StrContains(status.message(), "invalid auth token")) ||
         (absl::IsInvalidArgument(status) &&
          absl::StrContains(status.message(), "revision of auth store is old")) ||
         (absl::IsUnauthenticated(status) &&
          absl::StrContains(status.message(), "renewal of an invalid auth token"));
}

std::string AuthTokens::Current() const {
  std::lock_guard lock(mu_);
  return token_;
}

void AuthTokens::Invalidate(const std::string& token) {
  std::lock_guard lock(mu_);
  if (token_ == token) token_.clear();
}

absl::Status AuthTokens::LastError() const {
  std::lock_guard lock(mu_);
  return error_;
}

absl::Status AuthTokens::Ensure(const std::shared_ptr<grpc::Channel>& channel) {
  {
    std::lock_guard lock(mu_);
    if (!token_.empty()) return absl::OkStatus();
  }
  std::lock_guard authenticating(authenticate_mu_);
  {
    // Whoever held authenticate_mu_ before may have just got one.
    std::lock_guard lock(mu_);
    if (!token_.empty()) return absl::OkStatus();
    if (!error_.ok() && std::chrono::steady_clock::now() < error_until_) return error_;
  }
  absl::Status status = Authenticate(channel);
  std::lock_guard lock(mu_);
  error_ = status;
  // Only a refusal is held: an unreachable member is worth asking again soon.
  const bool refusal = absl::IsUnauthenticated(status) || absl::IsFailedPrecondition(status);
  error_until_ = refusal ? std::chrono::steady_clock::now() + kRefusalHoldoff
                         : std::chrono::steady_clock::time_point();
  return status;
}

absl::Status AuthTokens::Authenticate(const std::shared_ptr<grpc::Channel>& channel) {
  pb::Auth::Stub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout_);
  pb::AuthenticateRequest request;
  request.set_name(user_);
  request.set_password(password_);
  pb::AuthenticateResponse response;
  const grpc::Status status = stub.Authenticate(&context, request, &response);
  // Messages name the user, never the password.
  if (status.ok()) {
    if (response.token().empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("etcd authentication as user '", user_,
                       "' gave no token (is authentication enabled in etcd?)"));
    }
    std::lock_guard lock(mu_);
    token_ = response.token();
    ++authentications_;
    return absl::OkStatus();
  }
  // etcd says INVALID_ARGUMENT "etcdserver: authentication failed, invalid
  // user ID or password"; that is an authentication failure.
  if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT &&
      absl::StrContains(status.error_message(), "authentication failed")) {
    return absl::UnauthenticatedError(
        absl::StrCat("etcd authentication as user '", user_, "' failed: ", status.error_message()));
  }
  return FromGrpc(status, absl::StrCat("authentication as user '", user_, "'"));
}

std::unique_ptr<gx::ClientInterceptorFactoryInterface> AuthTokens::InterceptorFactory() {
  return std::make_unique<TokenInterceptorFactory>(shared_from_this());
}

}  // namespace streamgrid::etcd
