#pragma once

// The command-line flags that say how a process reaches etcd securely
// (username/password authentication, TLS), shared by streamgrid-web and
// streamgrid-storage, and the EtcdClient they make.

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "etcd/etcd_client.h"

namespace CLI {
class App;
}  // namespace CLI

namespace streamgrid::etcd {

struct EtcdSecurityFlags {
  std::string user;           // --etcd-user
  std::string password_file;  // --etcd-password-file
  std::string tls_ca;         // --etcd-tls-ca
  std::string tls_cert;       // --etcd-tls-cert
  std::string tls_key;        // --etcd-tls-key
};

// Adds --etcd-user, --etcd-password-file, --etcd-tls-ca, --etcd-tls-cert and
// --etcd-tls-key to `app`, stored into `flags` (which must outlive parsing).
void AddEtcdSecurityFlags(CLI::App& app, EtcdSecurityFlags& flags);

// The password in `path`: the file's contents without trailing newlines.
// INVALID_ARGUMENT when it cannot be read, is empty (or only a newline), or is
// over 4 KiB.
absl::StatusOr<std::string> ReadPasswordFile(const std::string& path);

// Client options for `endpoints` ("A,B,C": HOST:PORT, http:// or https://
// each) with the flags applied. INVALID_ARGUMENT for a user without a
// password file or the reverse, or a bad password file.
absl::StatusOr<EtcdOptions> EtcdOptionsFromFlags(std::string_view endpoints,
                                                 const EtcdSecurityFlags& flags);

// The client for `endpoints` and the flags, checked against etcd once (each
// check bounded by the call timeout): with a user it authenticates, so that
// wrong credentials stop the process at start (UNAUTHENTICATED, or
// FAILED_PRECONDITION when etcd has authentication disabled); an etcd that
// does not answer (down, or a TLS mismatch) is only logged with what to check,
// as calls retry.
absl::StatusOr<std::unique_ptr<EtcdClient>> ConnectEtcd(std::string_view endpoints,
                                                        const EtcdSecurityFlags& flags);

}  // namespace streamgrid::etcd
