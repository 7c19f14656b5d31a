#pragma once

// A client of etcd v3 over its gRPC API (proto/etcd/rpc.proto): KV with
// transactions, for the metadata and cluster state that web servers share.
//
// Error rules, which callers build on:
// - Every call has a deadline (EtcdOptions::call_timeout).
// - Reads (Get, Range, ListPrefix) are linearizable and retried with bounded
//   back-off on another member when one is unavailable or loses its leader.
// - Writes (Put, Delete, Txn) are sent at most once: a write is only retried
//   when it provably never left this process (the connection could not be
//   made). Any other failure is returned as UNAVAILABLE or DEADLINE_EXCEEDED,
//   and the write may or may not have been applied: callers guard writes with
//   Txn compares and resolve such an outcome by reading again.
// - With a username (etcd's authentication), every call carries the user's
//   token. A call whose token etcd refused (expired, or forgotten by a
//   restarted member: refused before anything is applied) is sent once more
//   with a new token, reads and writes alike (auth_token.h).
// - With TLS, every member is reached over TLS, verified against the CA, with
//   the client's own certificate when one is given.

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/channel.h"
#include "grpcpp/security/credentials.h"
#include "proto/etcd/rpc.grpc.pb.h"

namespace streamgrid::etcd {

class AuthTokens;

struct EtcdOptions {
  // Client endpoints of the members, "host:port", "http://host:port" (plain)
  // or "https://host:port" (TLS); all alike. Create() drops the scheme.
  std::vector<std::string> endpoints;
  // etcd's user and password (authentication enabled in etcd); no username:
  // calls carry no token. The password is never logged.
  std::string username;
  std::string password;
  // TLS: used with https:// endpoints or when a CA is given. The PEM file of
  // the CA that signed the members' certificates (empty: the system's roots),
  // and this client's certificate and key (PEM files, both or neither) for
  // members that require client certificates (etcd's --client-cert-auth).
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  // Deadline of each unary call.
  std::chrono::milliseconds call_timeout = std::chrono::seconds(5);
  // Attempts of a read in all, over the members, with back-off between rounds.
  int read_attempts = 6;
  std::chrono::milliseconds initial_backoff = std::chrono::milliseconds(100);
  std::chrono::milliseconds max_backoff = std::chrono::seconds(1);
};

// A key and its value with etcd's revisions.
struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;
  bool operator==(const KeyValue&) const = default;
};

// One page of a range read.
struct RangePage {
  std::vector<KeyValue> kvs;
  bool more = false;     // more keys in the range than returned
  int64_t revision = 0;  // the store's revision the page was read at
};

// A transaction: if every compare holds, the success operations run, else
// the failure ones; atomically. Build it with the helpers below.
struct Txn {
  etcdserverpb::TxnRequest request;

  // Compares on `key`: version (0 = absent), create/mod revision, value.
  Txn& IfVersion(std::string_view key, etcdserverpb::Compare::CompareResult result,
                 int64_t version);
  Txn& IfCreateRevision(std::string_view key, etcdserverpb::Compare::CompareResult result,
                        int64_t revision);
  Txn& IfModRevision(std::string_view key, etcdserverpb::Compare::CompareResult result,
                     int64_t revision);
  Txn& IfValue(std::string_view key, etcdserverpb::Compare::CompareResult result,
               std::string_view value);
  // Shorthands: the key does not exist / was last modified at `revision`.
  Txn& IfAbsent(std::string_view key) {
    return IfCreateRevision(key, etcdserverpb::Compare::EQUAL, 0);
  }
  Txn& IfUnchangedSince(std::string_view key, int64_t mod_revision) {
    return IfModRevision(key, etcdserverpb::Compare::EQUAL, mod_revision);
  }

  Txn& ThenPut(std::string_view key, std::string_view value, int64_t lease = 0);
  Txn& ThenDelete(std::string_view key);
  Txn& ThenDeletePrefix(std::string_view prefix);
  Txn& ThenGet(std::string_view key);
  Txn& ElsePut(std::string_view key, std::string_view value, int64_t lease = 0);
  Txn& ElseGet(std::string_view key);
};

struct TxnResult {
  bool succeeded = false;
  int64_t revision = 0;  // the store's revision after the transaction
  // The answers of the operations that ran, in order; a Get's value (or
  // nullopt when absent) for each Get, nullopt for the other operations.
  std::vector<std::optional<KeyValue>> gets;
};

// The end of the range holding every key that starts with `prefix` (etcd's
// range_end convention); "\0" for the empty prefix (every key).
std::string PrefixEnd(std::string_view prefix);

// Thread-safe. One channel per member, created on first use and kept.
class EtcdClient {
 public:
  // INVALID_ARGUMENT for no endpoints, one that is not host:port, mixed
  // http:// and https://, plain http:// with TLS files, a certificate without
  // its key (or the reverse), or a TLS file that cannot be read. Does not
  // connect yet.
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Create(EtcdOptions options);

  // With a username: authenticates now unless a token is held (a start-up
  // check of the credentials). UNAUTHENTICATED for a wrong user or password,
  // FAILED_PRECONDITION when etcd has authentication disabled, UNAVAILABLE
  // when no member answers. OK at once without a username.
  absl::Status Authenticate();

  // `key`'s value, nullopt if absent.
  absl::StatusOr<std::optional<KeyValue>> Get(std::string_view key);

  // Up to `limit` keys (0: no limit) of [key, range_end) in key order, at
  // `revision` (0: the newest). OUT_OF_RANGE when `revision` was compacted.
  absl::StatusOr<RangePage> Range(std::string_view key, std::string_view range_end, int64_t limit,
                                  int64_t revision = 0);

  // Every key starting with `prefix`, read in pages of `page_size` all at the
  // revision of the first page (one consistent snapshot), so it never holds
  // more than etcd's 4 MiB answer limit per call. The snapshot's revision is
  // stored in `*revision` when given.
  absl::StatusOr<std::vector<KeyValue>> ListPrefix(std::string_view prefix, int64_t page_size = 500,
                                                   int64_t* revision = nullptr);

  // Writes `key` (with `lease` attached when non-zero); returns the new
  // revision. At most once (see the file comment).
  absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value, int64_t lease = 0);

  // Deletes `key`, or every key under `prefix`; returns how many were deleted.
  absl::StatusOr<int64_t> Delete(std::string_view key);
  absl::StatusOr<int64_t> DeletePrefix(std::string_view prefix);

  // Runs `txn` at most once.
  absl::StatusOr<TxnResult> Commit(const Txn& txn);

  // Compacts the history before `revision` (for tests of watch resumption).
  absl::Status Compact(int64_t revision);

  // The member at `endpoint`'s own id and its view of the leader (for tests
  // and diagnostics); not retried elsewhere.
  struct MemberStatus {
    uint64_t member_id = 0;
    uint64_t leader_id = 0;
    int64_t revision = 0;
  };
  absl::StatusOr<MemberStatus> Status(std::string_view endpoint);

  const EtcdOptions& options() const { return options_; }

  // The channel to the member currently preferred, for the lease and watch
  // streams, and its index; Failover(index) moves the preference on from it.
  // With a username, authenticates first when no token is held (bounded by
  // call_timeout); if that fails, calls on the channel fail with its reason.
  // Every call on the channel carries the token.
  std::shared_ptr<grpc::Channel> PreferredChannel(size_t* index);
  void Failover(size_t from_index);

  // The auth token calls now carry ("" without a username or before the
  // first authentication), and a way to drop it when etcd refused it where
  // the channel's own check cannot see it (a watch canceled for it): the next
  // PreferredChannel() authenticates again.
  std::string AuthToken() const;
  void InvalidateAuthToken(const std::string& token);
  // How many times this client has authenticated (for tests and diagnostics).
  int64_t authentications() const;

  // True for errors after which another member may answer: UNAVAILABLE
  // (including etcd's "leader changed" and "no leader") and a deadline (also
  // etcd's UNKNOWN "context deadline exceeded"); also a refused auth token
  // (the next call authenticates again).
  static bool IsRetriable(const absl::Status& status);
  // True when etcd refused the call's auth token, before applying anything.
  static bool IsAuthTokenRefused(const absl::Status& status);
  // True when a write certainly never reached a member (safe to resend).
  static bool NeverSent(const absl::Status& status);

 private:
  EtcdClient(EtcdOptions options, std::shared_ptr<grpc::ChannelCredentials> credentials);

  std::shared_ptr<grpc::Channel> Channel(size_t index);
  // Deletes [key, range_end) (empty range_end: key alone), at most once.
  absl::StatusOr<int64_t> DeleteRange(std::string_view key, std::string_view range_end);
  // Runs `call` on the preferred member, moving on to the next one as the
  // error rules allow: up to read_attempts times for reads, and only while
  // NeverSent for writes.
  template <typename Call>
  auto Run(bool is_read, Call call) -> decltype(call(std::declval<etcdserverpb::KV::Stub&>()));

  const EtcdOptions options_;
  // Plain or TLS, for every member.
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  // Null without a username.
  std::shared_ptr<AuthTokens> tokens_;
  std::mutex mu_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;  // guarded by mu_; null until used
  size_t preferred_ = 0;                                  // guarded by mu_
};

}  // namespace streamgrid::etcd
