#include "etcd/etcd_client.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "auth/tls.h"
#include "etcd/auth_token.h"
#include "etcd/convert.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace streamgrid::etcd {
namespace {

namespace pb = etcdserverpb;

// Pages of one ListPrefix at most: far beyond any store, yet an end.
constexpr int kMaxPages = 1'000'000;

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& endpoint,
                                           const std::shared_ptr<grpc::ChannelCredentials>& creds,
                                           const std::shared_ptr<AuthTokens>& tokens) {
  grpc::ChannelArguments args;
  // etcd refuses client pings closer than 5 s apart; ping only during calls.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  // A restarted member is found again within about a second. The minimum
  // reconnect back-off is left alone: gRPC uses it as the timeout of each
  // connection attempt, and one shorter than a handshake on a busy machine can
  // leave a channel failing every attempt long after the member is back.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 250);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1'000);
  if (!tokens) return grpc::CreateCustomChannel(endpoint, creds, args);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(tokens->InterceptorFactory());
  return grpc::experimental::CreateCustomChannelWithInterceptors(endpoint, creds, args,
                                                                 std::move(interceptors));
}

// Drops the endpoints' schemes; `*tls` tells whether TLS is to be used.
absl::Status ParseEndpoints(EtcdOptions& options, bool* tls) {
  bool any_http = false;
  bool any_https = false;
  for (std::string& endpoint : options.endpoints) {
    if (absl::StartsWith(endpoint, "http://")) {
      endpoint = endpoint.substr(7);
      any_http = true;
    } else if (absl::StartsWith(endpoint, "https://")) {
      endpoint = endpoint.substr(8);
      any_https = true;
    }
    const size_t colon = endpoint.rfind(':');
    uint32_t port = 0;
    if (colon == std::string::npos || colon == 0 ||
        !absl::SimpleAtoi(endpoint.substr(colon + 1), &port) || port == 0 || port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("etcd endpoint must be HOST:PORT, got '", endpoint, "'"));
    }
  }
  const bool tls_files = !options.tls_ca_file.empty() || !options.tls_cert_file.empty() ||
                         !options.tls_key_file.empty();
  if (any_http && any_https) {
    return absl::InvalidArgumentError("etcd endpoints mix http:// and https://");
  }
  if (any_http && tls_files) {
    return absl::InvalidArgumentError(
        "etcd endpoints are plain http:// but TLS files are given (use https:// or HOST:PORT)");
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "an etcd TLS client certificate needs its key, and a key its certificate");
  }
  *tls = any_https || tls_files;
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeCredentials(
    const EtcdOptions& options, bool tls) {
  if (!tls) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  // Empty root certificates: gRPC's default roots (the system's).
  if (!options.tls_ca_file.empty()) {
    absl::StatusOr<std::string> ca = auth::ReadPemFile(options.tls_ca_file, "etcd TLS CA file");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
  }
  if (!options.tls_cert_file.empty()) {
    absl::StatusOr<std::string> cert =
        auth::ReadPemFile(options.tls_cert_file, "etcd TLS certificate file");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = auth::ReadPemFile(options.tls_key_file, "etcd TLS key file");
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
  }
  return grpc::SslCredentials(ssl);
}

pb::Compare& AddCompare(Txn& txn, std::string_view key, pb::Compare::CompareResult result,
                        pb::Compare::CompareTarget target) {
  pb::Compare* compare = txn.request.add_compare();
  compare->set_key(std::string(key));
  compare->set_result(result);
  compare->set_target(target);
  return *compare;
}

void AddPut(google::protobuf::RepeatedPtrField<pb::RequestOp>* ops, std::string_view key,
            std::string_view value, int64_t lease) {
  pb::PutRequest* put = ops->Add()->mutable_request_put();
  put->set_key(std::string(key));
  put->set_value(std::string(value));
  put->set_lease(lease);
}

void AddGet(google::protobuf::RepeatedPtrField<pb::RequestOp>* ops, std::string_view key) {
  ops->Add()->mutable_request_range()->set_key(std::string(key));
}

}  // namespace

std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    unsigned char last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

Txn& Txn::IfVersion(std::string_view key, pb::Compare::CompareResult result, int64_t version) {
  AddCompare(*this, key, result, pb::Compare::VERSION).set_version(version);
  return *this;
}
Txn& Txn::IfCreateRevision(std::string_view key, pb::Compare::CompareResult result,
                           int64_t revision) {
  AddCompare(*this, key, result, pb::Compare::CREATE).set_create_revision(revision);
  return *this;
}
Txn& Txn::IfModRevision(std::string_view key, pb::Compare::CompareResult result, int64_t revision) {
  AddCompare(*this, key, result, pb::Compare::MOD).set_mod_revision(revision);
  return *this;
}
Txn& Txn::IfValue(std::string_view key, pb::Compare::CompareResult result, std::string_view value) {
  AddCompare(*this, key, result, pb::Compare::VALUE).set_value(std::string(value));
  return *this;
}
Txn& Txn::ThenPut(std::string_view key, std::string_view value, int64_t lease) {
  AddPut(request.mutable_success(), key, value, lease);
  return *this;
}
Txn& Txn::ThenDelete(std::string_view key) {
  request.add_success()->mutable_request_delete_range()->set_key(std::string(key));
  return *this;
}
Txn& Txn::ThenDeletePrefix(std::string_view prefix) {
  pb::DeleteRangeRequest* del = request.add_success()->mutable_request_delete_range();
  del->set_key(std::string(prefix));
  del->set_range_end(PrefixEnd(prefix));
  return *this;
}
Txn& Txn::ThenGet(std::string_view key) {
  AddGet(request.mutable_success(), key);
  return *this;
}
Txn& Txn::ElsePut(std::string_view key, std::string_view value, int64_t lease) {
  AddPut(request.mutable_failure(), key, value, lease);
  return *this;
}
Txn& Txn::ElseGet(std::string_view key) {
  AddGet(request.mutable_failure(), key);
  return *this;
}

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Create(EtcdOptions options) {
  if (options.endpoints.empty()) return absl::InvalidArgumentError("no etcd endpoints given");
  bool tls = false;
  if (absl::Status s = ParseEndpoints(options, &tls); !s.ok()) return s;
  if (options.username.empty() && !options.password.empty()) {
    return absl::InvalidArgumentError("an etcd password needs a username");
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeCredentials(options, tls);
  if (!credentials.ok()) return credentials.status();
  return std::unique_ptr<EtcdClient>(new EtcdClient(std::move(options), *std::move(credentials)));
}

EtcdClient::EtcdClient(EtcdOptions options, std::shared_ptr<grpc::ChannelCredentials> credentials)
    : options_(std::move(options)),
      credentials_(std::move(credentials)),
      channels_(options_.endpoints.size()) {
  if (!options_.username.empty()) {
    tokens_ =
        std::make_shared<AuthTokens>(options_.username, options_.password, options_.call_timeout);
  }
}

std::shared_ptr<grpc::Channel> EtcdClient::Channel(size_t index) {
  std::lock_guard lock(mu_);
  if (!channels_[index]) {
    channels_[index] = MakeChannel(options_.endpoints[index], credentials_, tokens_);
  }
  return channels_[index];
}

std::shared_ptr<grpc::Channel> EtcdClient::PreferredChannel(size_t* index) {
  size_t i;
  {
    std::lock_guard lock(mu_);
    i = preferred_;
  }
  if (index) *index = i;
  std::shared_ptr<grpc::Channel> channel = Channel(i);
  // A failure is remembered by tokens_, and calls on the channel report it.
  if (tokens_) tokens_->Ensure(channel).IgnoreError();
  return channel;
}

absl::Status EtcdClient::Authenticate() {
  if (!tokens_) return absl::OkStatus();
  absl::Status last;
  // Like a read: on another member when one cannot answer.
  for (size_t attempt = 0; attempt < options_.endpoints.size(); ++attempt) {
    size_t index = 0;
    {
      std::lock_guard lock(mu_);
      index = preferred_;
    }
    last = tokens_->Ensure(Channel(index));
    if (last.ok() || !IsRetriable(last)) return last;
    Failover(index);
  }
  return last;
}

std::string EtcdClient::AuthToken() const { return tokens_ ? tokens_->Current() : ""; }

void EtcdClient::InvalidateAuthToken(const std::string& token) {
  if (tokens_) tokens_->Invalidate(token);
}

int64_t EtcdClient::authentications() const { return tokens_ ? tokens_->authentications() : 0; }

bool EtcdClient::IsAuthTokenRefused(const absl::Status& status) {
  return AuthTokens::IsTokenRefused(status);
}

void EtcdClient::Failover(size_t from_index) {
  std::lock_guard lock(mu_);
  // Only the first of several callers failing on one member moves it on.
  if (preferred_ == from_index) preferred_ = (preferred_ + 1) % options_.endpoints.size();
}

bool EtcdClient::IsRetriable(const absl::Status& status) {
  // etcd answers some requests that timed out inside it with UNKNOWN
  // "context deadline exceeded" rather than DEADLINE_EXCEEDED.
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) ||
         (absl::IsUnknown(status) && absl::StrContains(status.message(), "deadline exceeded")) ||
         IsAuthTokenRefused(status);
}

bool EtcdClient::NeverSent(const absl::Status& status) {
  // gRPC fails a call fast, before sending anything, while the channel has
  // no connection; its message says so.
  return absl::IsUnavailable(status) && absl::StrContains(status.message(), "failed to connect");
}

template <typename Call>
auto EtcdClient::Run(bool is_read, Call call)
    -> decltype(call(std::declval<etcdserverpb::KV::Stub&>())) {
  const size_t members = options_.endpoints.size();
  const int attempts = is_read ? std::max(1, options_.read_attempts) : static_cast<int>(members);
  std::chrono::milliseconds backoff = options_.initial_backoff;
  absl::Status last;
  bool token_renewed = false;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    size_t index = 0;
    pb::KV::Stub stub(PreferredChannel(&index));
    auto result = call(stub);
    if (result.ok()) return result;
    last = result.status();
    if (IsAuthTokenRefused(last) && !token_renewed) {
      // Refused before anything was applied, so a write too is sent again,
      // once, with the new token PreferredChannel() gets; not counted as an
      // attempt.
      token_renewed = true;
      --attempt;
      continue;
    }
    if (!(is_read ? IsRetriable(last) : NeverSent(last))) {
      // A write that may have been applied is not resent, but the next call
      // should not go to a member that just failed to answer.
      if (IsRetriable(last)) Failover(index);
      return result;
    }
    Failover(index);
    // A pause after each round over all members, so a cluster electing a
    // leader gets the time to do it.
    if ((attempt + 1) % members == 0 && attempt + 1 < attempts) {
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, options_.max_backoff);
    }
  }
  return last;
}

absl::StatusOr<RangePage> EtcdClient::Range(std::string_view key, std::string_view range_end,
                                            int64_t limit, int64_t revision) {
  pb::RangeRequest request;
  request.set_key(std::string(key));
  request.set_range_end(std::string(range_end));
  request.set_limit(limit);
  request.set_revision(revision);
  return Run(true, [&](pb::KV::Stub& stub) -> absl::StatusOr<RangePage> {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + options_.call_timeout);
    pb::RangeResponse response;
    if (absl::Status s = FromGrpc(stub.Range(&context, request, &response), "range"); !s.ok()) {
      return s;
    }
    RangePage page{.more = response.more(), .revision = response.header().revision()};
    page.kvs.reserve(response.kvs_size());
    for (const mvccpb::KeyValue& kv : response.kvs()) page.kvs.push_back(FromProto(kv));
    return page;
  });
}

absl::StatusOr<std::optional<KeyValue>> EtcdClient::Get(std::string_view key) {
  absl::StatusOr<RangePage> page = Range(key, "", 1);
  if (!page.ok()) return page.status();
  if (page->kvs.empty()) return std::nullopt;
  return std::move(page->kvs.front());
}

absl::StatusOr<std::vector<KeyValue>> EtcdClient::ListPrefix(std::string_view prefix,
                                                             int64_t page_size, int64_t* revision) {
  const std::string end = PrefixEnd(prefix);
  std::string from(prefix);
  int64_t at = 0;
  std::vector<KeyValue> all;
  for (int page = 0; page < kMaxPages; ++page) {
    absl::StatusOr<RangePage> got = Range(from, end, std::max<int64_t>(page_size, 1), at);
    if (!got.ok()) return got.status();
    if (at == 0) at = got->revision;
    const bool more = got->more && !got->kvs.empty();
    if (more) from = got->kvs.back().key + '\0';
    for (KeyValue& kv : got->kvs) all.push_back(std::move(kv));
    if (!more) {
      if (revision) *revision = at;
      return all;
    }
  }
  return absl::InternalError("etcd listing did not end");
}

absl::StatusOr<int64_t> EtcdClient::Put(std::string_view key, std::string_view value,
                                        int64_t lease) {
  pb::PutRequest request;
  request.set_key(std::string(key));
  request.set_value(std::string(value));
  request.set_lease(lease);
  return Run(false, [&](pb::KV::Stub& stub) -> absl::StatusOr<int64_t> {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + options_.call_timeout);
    pb::PutResponse response;
    if (absl::Status s = FromGrpc(stub.Put(&context, request, &response), "put"); !s.ok()) {
      return s;
    }
    return response.header().revision();
  });
}

absl::StatusOr<int64_t> EtcdClient::Delete(std::string_view key) { return DeleteRange(key, ""); }

absl::StatusOr<int64_t> EtcdClient::DeletePrefix(std::string_view prefix) {
  return DeleteRange(prefix, PrefixEnd(prefix));
}

absl::StatusOr<int64_t> EtcdClient::DeleteRange(std::string_view key, std::string_view range_end) {
  pb::DeleteRangeRequest request;
  request.set_key(std::string(key));
  request.set_range_end(std::string(range_end));
  return Run(false, [&](pb::KV::Stub& stub) -> absl::StatusOr<int64_t> {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + options_.call_timeout);
    pb::DeleteRangeResponse response;
    if (absl::Status s = FromGrpc(stub.DeleteRange(&context, request, &response), "delete");
        !s.ok()) {
      return s;
    }
    return response.deleted();
  });
}

absl::StatusOr<TxnResult> EtcdClient::Commit(const Txn& txn) {
  return Run(false, [&](pb::KV::Stub& stub) -> absl::StatusOr<TxnResult> {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + options_.call_timeout);
    pb::TxnResponse response;
    if (absl::Status s = FromGrpc(stub.Txn(&context, txn.request, &response), "txn"); !s.ok()) {
      return s;
    }
    TxnResult result{.succeeded = response.succeeded(), .revision = response.header().revision()};
    for (const pb::ResponseOp& op : response.responses()) {
      if (op.has_response_range() && op.response_range().kvs_size() > 0) {
        result.gets.push_back(FromProto(op.response_range().kvs(0)));
      } else {
        result.gets.push_back(std::nullopt);
      }
    }
    return result;
  });
}

absl::Status EtcdClient::Compact(int64_t revision) {
  pb::CompactionRequest request;
  request.set_revision(revision);
  request.set_physical(true);
  absl::StatusOr<bool> done = Run(false, [&](pb::KV::Stub& stub) -> absl::StatusOr<bool> {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + options_.call_timeout);
    pb::CompactionResponse response;
    if (absl::Status s = FromGrpc(stub.Compact(&context, request, &response), "compact"); !s.ok()) {
      return s;
    }
    return true;
  });
  return done.status();
}

absl::StatusOr<EtcdClient::MemberStatus> EtcdClient::Status(std::string_view endpoint) {
  auto it = std::find(options_.endpoints.begin(), options_.endpoints.end(), endpoint);
  if (it == options_.endpoints.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not an endpoint of this client: ", std::string(endpoint)));
  }
  pb::Maintenance::Stub stub(Channel(it - options_.endpoints.begin()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + options_.call_timeout);
  pb::StatusResponse response;
  if (absl::Status s = FromGrpc(stub.Status(&context, {}, &response), "status"); !s.ok()) {
    return s;
  }
  return MemberStatus{.member_id = response.header().member_id(),
                      .leader_id = response.leader(),
                      .revision = response.header().revision()};
}

}  // namespace streamgrid::etcd
