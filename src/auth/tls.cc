#include "auth/tls.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/strings.h"

namespace streamgrid::auth {
namespace {

// PEM files are small; a bound keeps a wrong path (a device, a video) out.
constexpr std::streamsize kMaxPemBytes = 1 << 20;

}  // namespace

absl::StatusOr<std::string> ReadPemFile(const std::string& path, std::string_view flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(ToAbsl(flag), ": cannot read ", path, ": ", std::strerror(errno)));
  }
  std::string pem(static_cast<size_t>(kMaxPemBytes) + 1, '\0');
  in.read(pem.data(), static_cast<std::streamsize>(pem.size()));
  pem.resize(static_cast<size_t>(in.gcount()));
  if (pem.size() > static_cast<size_t>(kMaxPemBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat(ToAbsl(flag), ": ", path, " is larger than 1 MiB"));
  }
  // gRPC only says "handshake failed" about a malformed PEM much later: catch
  // the common mistakes (an empty or non-PEM file) at start-up.
  if (pem.find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(ToAbsl(flag), ": ", path, " is not a PEM file"));
  }
  return pem;
}

absl::StatusOr<ServerTls> LoadServerTls(const std::string& cert_file, const std::string& key_file,
                                        const std::string& ca_file,
                                        const std::string& flag_prefix) {
  ServerTls tls;
  if (cert_file.empty() && key_file.empty() && ca_file.empty()) return tls;
  if (cert_file.empty() || key_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS needs both ", flag_prefix, "cert and ", flag_prefix, "key (", flag_prefix,
                     "ca alone only says which client certificates to accept)"));
  }
  absl::StatusOr<std::string> cert = ReadPemFile(cert_file, flag_prefix + "cert");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPemFile(key_file, flag_prefix + "key");
  if (!key.ok()) return key.status();
  tls.enabled = true;
  tls.cert_pem = *std::move(cert);
  tls.key_pem = *std::move(key);
  if (!ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPemFile(ca_file, flag_prefix + "ca");
    if (!ca.ok()) return ca.status();
    tls.client_ca_pem = *std::move(ca);
  }
  return tls;
}

absl::StatusOr<ClientTls> LoadClientTls(const std::string& ca_file, const std::string& cert_file,
                                        const std::string& key_file,
                                        const std::string& flag_prefix) {
  ClientTls tls;
  if (ca_file.empty() && cert_file.empty() && key_file.empty()) return tls;
  if (ca_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a client certificate (", flag_prefix, "cert, ", flag_prefix, "key) needs TLS: give ",
        flag_prefix, "ca, the CA that signed the server's certificate"));
  }
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("a client certificate needs both ", flag_prefix,
                                                   "cert and ", flag_prefix, "key"));
  }
  absl::StatusOr<std::string> ca = ReadPemFile(ca_file, flag_prefix + "ca");
  if (!ca.ok()) return ca.status();
  tls.enabled = true;
  tls.ca_pem = *std::move(ca);
  if (!cert_file.empty()) {
    absl::StatusOr<std::string> cert = ReadPemFile(cert_file, flag_prefix + "cert");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPemFile(key_file, flag_prefix + "key");
    if (!key.ok()) return key.status();
    tls.cert_pem = *std::move(cert);
    tls.key_pem = *std::move(key);
  }
  return tls;
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const ServerTls& tls) {
  if (!tls.enabled) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      tls.client_ca_pem.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = tls.client_ca_pem;
  options.pem_key_cert_pairs.push_back({.private_key = tls.key_pem, .cert_chain = tls.cert_pem});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const ClientTls& tls) {
  if (!tls.enabled) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = tls.ca_pem;
  options.pem_private_key = tls.key_pem;
  options.pem_cert_chain = tls.cert_pem;
  return grpc::SslCredentials(options);
}

}  // namespace streamgrid::auth
