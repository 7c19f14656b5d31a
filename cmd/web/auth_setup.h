#pragma once

// streamgrid-web's admin and cluster security flags: the admin API's token and
// TLS (server side), and the token and TLS of its calls to storage nodes
// (client side).

#include <CLI/CLI.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "auth/grpc_auth.h"
#include "auth/tls.h"

namespace streamgrid::web {

struct AuthFlags {
  std::string admin_token_file;
  std::string admin_tls_cert;
  std::string admin_tls_key;
  std::string admin_tls_ca;
  std::string cluster_token_file;
  std::string node_tls_ca;
  std::string node_tls_cert;
  std::string node_tls_key;
  bool allow_unauthenticated = false;
};

// What the flags amount to, files read.
struct WebAuth {
  // The admin API's check of each call, and its listener's TLS.
  auth::TokenCheck admin_check;
  auth::ServerTls admin_tls;
  // The token and TLS of every call to a storage node.
  auth::ClientSecurity cluster;
};

// Adds the flags to `cli`, storing into `flags`.
void AddAuthFlags(CLI::App& cli, AuthFlags& flags);

// Reads the files the flags name. `admin_host` is the admin listener's host
// (empty: no admin API): one that is not loopback needs --admin-token-file
// (or client certificates through --admin-tls-ca), unless
// --allow-unauthenticated. Errors name the flag and the reason.
absl::StatusOr<WebAuth> LoadWebAuth(const AuthFlags& flags, const std::string& admin_host);

}  // namespace streamgrid::web
