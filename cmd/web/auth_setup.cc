#include "auth_setup.h"

#include "absl/strings/str_cat.h"
#include "auth/token.h"

namespace streamgrid::web {

void AddAuthFlags(CLI::App& cli, AuthFlags& flags) {
  cli.add_option("--admin-token-file", flags.admin_token_file,
                 "file holding the token every admin API call must carry (streamgrid-admin "
                 "--token-file); without it the admin API only listens on loopback unless "
                 "--allow-unauthenticated");
  cli.add_option("--admin-tls-cert", flags.admin_tls_cert,
                 "serve the admin API over TLS with this certificate chain (PEM)");
  cli.add_option("--admin-tls-key", flags.admin_tls_key, "the admin API certificate's key (PEM)");
  cli.add_option("--admin-tls-ca", flags.admin_tls_ca,
                 "require admin clients to present a certificate signed by this CA (PEM)");
  cli.add_option("--cluster-token-file", flags.cluster_token_file,
                 "file holding the token sent with every call to storage nodes (their "
                 "--cluster-token-file)");
  cli.add_option("--node-tls-ca", flags.node_tls_ca,
                 "reach storage nodes over TLS, verifying them with this CA (PEM)");
  cli.add_option("--node-tls-cert", flags.node_tls_cert,
                 "client certificate (PEM) for storage nodes that require one (with "
                 "--node-tls-key and --node-tls-ca)");
  cli.add_option("--node-tls-key", flags.node_tls_key, "the node client certificate's key (PEM)");
  cli.add_flag("--allow-unauthenticated", flags.allow_unauthenticated,
               "let the admin API listen on a non-loopback address without "
               "--admin-token-file (only on a trusted network)");
}

absl::StatusOr<WebAuth> LoadWebAuth(const AuthFlags& flags, const std::string& admin_host) {
  WebAuth result;
  if (!flags.admin_token_file.empty()) {
    absl::StatusOr<std::string> token = auth::ReadTokenFile(flags.admin_token_file);
    if (!token.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--admin-token-file: ", token.status().message()));
    }
    result.admin_check = auth::TokenCheck(*std::move(token), "admin token");
  }
  absl::StatusOr<auth::ServerTls> admin_tls = auth::LoadServerTls(
      flags.admin_tls_cert, flags.admin_tls_key, flags.admin_tls_ca, "--admin-tls-");
  if (!admin_tls.ok()) return admin_tls.status();
  result.admin_tls = *std::move(admin_tls);
  if (!admin_host.empty()) {
    // Client certificates authenticate callers as well as a token does.
    const bool authenticated =
        result.admin_check.enabled() || !result.admin_tls.client_ca_pem.empty();
    absl::Status protected_listener = auth::CheckListenerProtected(
        admin_host, authenticated, flags.allow_unauthenticated, "--admin-token-file");
    if (!protected_listener.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("--admin-listen: ", protected_listener.message()));
    }
  }
  if (!flags.cluster_token_file.empty()) {
    absl::StatusOr<std::string> token = auth::ReadTokenFile(flags.cluster_token_file);
    if (!token.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--cluster-token-file: ", token.status().message()));
    }
    result.cluster.token = *std::move(token);
  }
  absl::StatusOr<auth::ClientTls> node_tls = auth::LoadClientTls(
      flags.node_tls_ca, flags.node_tls_cert, flags.node_tls_key, "--node-tls-");
  if (!node_tls.ok()) return node_tls.status();
  result.cluster.tls = *std::move(node_tls);
  return result;
}

}  // namespace streamgrid::web
