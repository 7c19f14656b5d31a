#include "etcd/etcd_flags.h"

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace streamgrid::etcd {
namespace {

// A password is a line, not a document: anything bigger is the wrong file.
constexpr size_t kMaxPasswordBytes = 4096;

}  // namespace

void AddEtcdSecurityFlags(CLI::App& app, EtcdSecurityFlags& flags) {
  app.add_option("--etcd-user", flags.user,
                 "etcd user to authenticate as (etcd with authentication enabled); needs "
                 "--etcd-password-file");
  app.add_option("--etcd-password-file", flags.password_file,
                 "file holding the etcd user's password (one line; a trailing newline is "
                 "ignored)");
  app.add_option("--etcd-tls-ca", flags.tls_ca,
                 "PEM file of the CA that signed the etcd members' certificates: etcd is "
                 "reached over TLS (also implied by https:// endpoints, then with the system's "
                 "CAs by default)");
  app.add_option("--etcd-tls-cert", flags.tls_cert,
                 "PEM client certificate for etcd members that require one "
                 "(--client-cert-auth); needs --etcd-tls-key");
  app.add_option("--etcd-tls-key", flags.tls_key, "PEM private key of --etcd-tls-cert");
}

absl::StatusOr<std::string> ReadPasswordFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read '", path, "'"));
  std::string password;
  char buffer[1024];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    password.append(buffer, static_cast<size_t>(in.gcount()));
    if (password.size() > kMaxPasswordBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", path, "' is over ", kMaxPasswordBytes, " bytes: not a password file"));
    }
  }
  while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
    password.pop_back();
  }
  if (password.empty()) return absl::InvalidArgumentError(absl::StrCat("'", path, "' is empty"));
  return password;
}

absl::StatusOr<EtcdOptions> EtcdOptionsFromFlags(std::string_view endpoints,
                                                 const EtcdSecurityFlags& flags) {
  EtcdOptions options{.endpoints =
                          absl::StrSplit(std::string(endpoints), ',', absl::SkipWhitespace())};
  if (flags.user.empty() != flags.password_file.empty()) {
    return absl::InvalidArgumentError("--etcd-user and --etcd-password-file go together");
  }
  if (!flags.user.empty()) {
    absl::StatusOr<std::string> password = ReadPasswordFile(flags.password_file);
    if (!password.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--etcd-password-file: ", password.status().message()));
    }
    options.username = flags.user;
    options.password = *std::move(password);
  }
  options.tls_ca_file = flags.tls_ca;
  options.tls_cert_file = flags.tls_cert;
  options.tls_key_file = flags.tls_key;
  return options;
}

absl::StatusOr<std::unique_ptr<EtcdClient>> ConnectEtcd(std::string_view endpoints,
                                                        const EtcdSecurityFlags& flags) {
  absl::StatusOr<EtcdOptions> options = EtcdOptionsFromFlags(endpoints, flags);
  if (!options.ok()) return options.status();
  absl::StatusOr<std::unique_ptr<EtcdClient>> client = EtcdClient::Create(*std::move(options));
  if (!client.ok()) return client.status();
  absl::Status reached;
  if (!flags.user.empty()) {
    reached = (*client)->Authenticate();
    if (absl::IsUnauthenticated(reached) || absl::IsFailedPrecondition(reached) ||
        absl::IsInvalidArgument(reached) || absl::IsPermissionDenied(reached)) {
      return reached;
    }
  } else {
    // Any member's status will do (it needs no credentials).
    for (const std::string& endpoint : (*client)->options().endpoints) {
      reached = (*client)->Status(endpoint).status();
      if (reached.ok()) break;
    }
  }
  if (!reached.ok()) {
    // Not fatal: etcd may come up later, and every call retries. A TLS
    // mismatch looks like a member that closes the connection, so say what
    // to check.
    const bool tls = !flags.tls_ca.empty() || !flags.tls_cert.empty() ||
                     endpoints.find("https://") != std::string_view::npos;
    spdlog::warn(
        "etcd: no member answers yet ({}); {}", reached.ToString(),
        tls ? "if they run, check --etcd-tls-ca, and whether they want a client certificate "
              "(--etcd-tls-cert, --etcd-tls-key)"
            : "if they run, do they serve TLS only (then give --etcd-tls-ca or https:// "
              "endpoints)?");
  }
  return client;
}

}  // namespace streamgrid::etcd
