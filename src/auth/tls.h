#pragma once

// TLS settings of StreamGrid's gRPC servers and clients, loaded from PEM files.

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace streamgrid::auth {

// A server's TLS: its certificate chain and key, and optionally the CA that
// client certificates must be signed by (then every client must present one:
// mutual TLS).
struct ServerTls {
  bool enabled = false;
  std::string cert_pem;
  std::string key_pem;
  std::string client_ca_pem;  // empty: clients are not asked for certificates
};

// A client's TLS: the CA that server certificates must be signed by, and
// optionally its own certificate and key for servers that require one.
struct ClientTls {
  bool enabled = false;
  std::string ca_pem;
  std::string cert_pem;  // both or neither of cert and key
  std::string key_pem;
};

// The contents of the PEM file at `path`. INVALID_ARGUMENT starting with
// `flag` (the flag or setting that named the file) when it cannot be read, is
// larger than 1 MiB or holds no PEM block.
absl::StatusOr<std::string> ReadPemFile(const std::string& path, std::string_view flag);

// Reads the files of a server's TLS. All empty: TLS off. A cert without a
// key (or the reverse), or a CA without both, is INVALID_ARGUMENT naming the
// `flag_prefix`ed flags ("--tls-" or "--admin-tls-"); an unreadable or empty
// file is INVALID_ARGUMENT with the path and reason.
absl::StatusOr<ServerTls> LoadServerTls(const std::string& cert_file, const std::string& key_file,
                                        const std::string& ca_file, const std::string& flag_prefix);

// Reads the files of a client's TLS. All empty: TLS off. With a CA, TLS is on;
// cert and key (both or neither) add a client certificate, and need the CA.
absl::StatusOr<ClientTls> LoadClientTls(const std::string& ca_file, const std::string& cert_file,
                                        const std::string& key_file,
                                        const std::string& flag_prefix);

// Credentials for a listener: TLS as `tls` says, else plaintext.
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const ServerTls& tls);

// Credentials for a channel: TLS as `tls` says, else plaintext.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const ClientTls& tls);

}  // namespace streamgrid::auth
