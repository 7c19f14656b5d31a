#pragma once

// etcd's username/password authentication for EtcdClient: the token etcd hands
// out for the user (Auth.Authenticate), shared by every channel of one client,
// and the client interceptor that sends it as the "token" metadata of every
// call on those channels (KV, Lease, Watch, whoever made the stub).
//
// etcd 3.4 refuses a call whose token it no longer knows (a "simple" token
// expires after --auth-token-ttl unused, and every member forgets them all when
// it restarts) with UNAUTHENTICATED "etcdserver: invalid auth token", and one
// made under an older auth store with INVALID_ARGUMENT "etcdserver: revision of
// auth store is old". Both refusals come before anything is applied. The
// interceptor then forgets the token, and the next call through
// EtcdClient::PreferredChannel authenticates again.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "grpcpp/channel.h"
#include "grpcpp/support/client_interceptor.h"

namespace streamgrid::etcd {

// Thread-safe.
class AuthTokens : public std::enable_shared_from_this<AuthTokens> {
 public:
  // `timeout` bounds each Authenticate call.
  AuthTokens(std::string user, std::string password, std::chrono::milliseconds timeout);

  // Makes sure a token is held, authenticating on `channel` if none is:
  // UNAUTHENTICATED for a wrong user or password, FAILED_PRECONDITION when
  // etcd has authentication disabled, UNAVAILABLE (or DEADLINE_EXCEEDED) when
  // the member cannot answer. One caller authenticates at a time; the others
  // wait for its token. A refusal is remembered for a second, so a wrong
  // password does not make every call cost etcd a password hash.
  absl::Status Ensure(const std::shared_ptr<grpc::Channel>& channel);

  // The token held ("" if none).
  std::string Current() const;
  // Forgets `token` if it is still the one held (etcd refused it).
  void Invalidate(const std::string& token);
  // Why the last authentication failed (OK if it did not).
  absl::Status LastError() const;

  const std::string& user() const { return user_; }
  // How many tokens etcd has handed out to this client.
  int64_t authentications() const { return authentications_.load(); }

  // A factory of interceptors that send the token (for the channels' creation).
  std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface> InterceptorFactory();

  // Whether etcd refused a call's token (see the file comment): safe to send
  // again with a new token.
  static bool IsTokenRefused(const absl::Status& status);

 private:
  absl::Status Authenticate(const std::shared_ptr<grpc::Channel>& channel);

  const std::string user_;
  const std::string password_;
  const std::chrono::milliseconds timeout_;

  std::mutex authenticate_mu_;  // held while authenticating
  mutable std::mutex mu_;
  std::string token_;   // guarded by mu_
  absl::Status error_;  // guarded by mu_
  // Until when `error_` is returned without asking etcd; guarded by mu_.
  std::chrono::steady_clock::time_point error_until_;
  std::atomic<int64_t> authentications_{0};
};

}  // namespace streamgrid::etcd
