// streamgrid-storage: one storage node, serving the files of its data directory
// over gRPC (streamgrid.storage.v1.StorageService).
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "auth/grpc_auth.h"
#include "auth/tls.h"
#include "auth/token.h"
#include "common/allocator_tuning.h"
#include "common/fd_limits.h"
#include "common/ready_file.h"
#include "common/termination_signals.h"
#include "etcd/etcd_client.h"
#include "etcd/etcd_flags.h"
#include "node_metrics.h"
#include "spdlog/spdlog.h"
#include "storage/node_announcement.h"
#include "storage/scrubber.h"
#include "storage/storage_engine.h"
#include "storage/storage_service.h"

namespace {

using namespace streamgrid::storage;

struct Flags {
  std::string listen = "127.0.0.1:7400";
  std::string data_dir = ".streamgrid/storage";
  std::string ready_file;
  std::string node_id;
  std::string log_level = "info";
  int max_threads = 256;
  int idle_timeout_s = 60;
  int shutdown_grace_s = 10;
  std::string etcd;       // endpoints to announce the node at; empty: no announcement
  std::string advertise;  // the address announced; default: the one bound
  int announce_ttl_s = 10;
  streamgrid::etcd::EtcdSecurityFlags etcd_security;  // --etcd-user, --etcd-tls-ca, ...
  std::string cluster_token_file;                     // empty: calls need no token
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  bool allow_unauthenticated = false;

  // The scrubber (see storage/scrubber.h).
  uint64_t scrub_bytes_per_second = 10 << 20;
  std::string scrub_interval = "24h";
  std::string metrics_listen;  // --metrics-listen; empty: no metrics
};

[[noreturn]] void Fail(const std::string& what) {
  spdlog::critical("{}", what);
  std::exit(1);
}

// The host part of "HOST:PORT" (brackets kept for IPv6), after checking the form.
std::string ListenHost(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port > 65535) {
    Fail("--listen must be HOST:PORT, got '" + listen + "'");
  }
  return listen.substr(0, colon);
}

// Where a local client reaches a server listening on `host`.
std::string ReachableHost(const std::string& host) {
  if (host == "0.0.0.0" || host == "[::]" || host == "::") return "127.0.0.1";
  return host;
}

// "500ms", "30s", "10m", "24h" (a bare number is seconds) as a duration.
std::chrono::milliseconds ParseInterval(const std::string& text, const std::string& flag) {
  static constexpr std::pair<std::string_view, int64_t> kUnits[] = {
      {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}};
  for (const auto& [suffix, ms] : kUnits) {
    if (text.size() <= suffix.size() || !text.ends_with(suffix)) continue;
    const std::string number = text.substr(0, text.size() - suffix.size());
    // "10ms" also ends with "s": only a number before the suffix counts.
    int64_t value = 0;
    if (absl::SimpleAtoi(number, &value) && value >= 0 && value <= 365LL * 86'400'000 / ms) {
      return std::chrono::milliseconds(value * ms);
    }
  }
  int64_t seconds = 0;
  if (absl::SimpleAtoi(text, &seconds) && seconds >= 0 && seconds <= 365LL * 86'400) {
    return std::chrono::seconds(seconds);
  }
  Fail(flag + " must be a duration such as 500ms, 30s, 10m or 24h, got '" + text + "'");
}

}  // namespace

int main(int argc, char** argv) {
  // Received chunks reuse heap memory instead of fresh, page-faulted
  // mappings (see docs/ingest.md); before any thread starts.
  streamgrid::TuneAllocatorForStreaming();
  Flags flags;
  CLI::App cli{"StreamGrid storage node: stores video files and serves them over gRPC"};
  cli.add_option("--listen", flags.listen, "gRPC address HOST:PORT (port 0 picks a free one)");
  cli.add_option("--data-dir", flags.data_dir, "where the node keeps its files");
  cli.add_option("--ready-file", flags.ready_file,
                 "write {\"grpc\": \"HOST:PORT\"} here once serving (for tests and scripts)");
  cli.add_option("--node-id", flags.node_id, "id reported by Health (default: HOST:PORT bound)");
  cli.add_option("--max-threads", flags.max_threads, "calls served at once at most")
      ->check(CLI::Range(4, 65536));
  cli.add_option("--idle-timeout", flags.idle_timeout_s,
                 "seconds a Put or Get stream may make no progress before it is cancelled")
      ->check(CLI::Range(1, 3600));
  cli.add_option("--shutdown-grace", flags.shutdown_grace_s,
                 "seconds running calls get to finish on SIGINT/SIGTERM")
      ->check(CLI::Range(0, 3600));
  cli.add_option("--etcd", flags.etcd,
                 "etcd members HOST:PORT,... to announce this node at (its address and usage, "
                 "under a lease), so web servers list it and can add it by id");
  cli.add_option("--advertise", flags.advertise,
                 "address HOST:PORT announced to web servers (default: the one bound)");
  cli.add_option("--announce-ttl", flags.announce_ttl_s,
                 "seconds the announcement outlives a node that died")
      ->check(CLI::Range(2, 3600));
  cli.add_option("--metrics-listen", flags.metrics_listen,
                 "serve Prometheus metrics at http://HOST:PORT/metrics (port 0 picks a free "
                 "one; empty: none). Unauthenticated: keep it on a private address");
  cli.add_option("--log-level", flags.log_level, "trace, debug, info, warn, error");
  streamgrid::etcd::AddEtcdSecurityFlags(cli, flags.etcd_security);
  cli.add_option("--cluster-token-file", flags.cluster_token_file,
                 "file holding the token every call must carry (the web servers' "
                 "--cluster-token-file); without it the node only listens on loopback unless "
                 "--allow-unauthenticated");
  cli.add_option("--tls-cert", flags.tls_cert, "serve over TLS with this certificate chain (PEM)");
  cli.add_option("--tls-key", flags.tls_key, "the certificate's private key (PEM)");
  cli.add_option("--tls-ca", flags.tls_ca,
                 "require clients to present a certificate signed by this CA (PEM): mutual TLS");
  cli.add_flag("--allow-unauthenticated", flags.allow_unauthenticated,
               "listen on a non-loopback address without --cluster-token-file (only on a "
               "trusted network)");
  cli.add_option("--scrub-bytes-per-second", flags.scrub_bytes_per_second,
                 "the scrubber re-reads and re-hashes every stored file at this rate at most, "
                 "quarantining damaged copies (0 turns it off; default 10 MiB/s)");
  cli.add_option("--scrub-interval", flags.scrub_interval,
                 "pause between scrub passes (e.g. 30s, 10m, 24h); the first pass starts when "
                 "the node starts");
  CLI11_PARSE(cli, argc, argv);
  const std::chrono::milliseconds scrub_interval =
      ParseInterval(flags.scrub_interval, "--scrub-interval");
  spdlog::set_level(spdlog::level::from_str(flags.log_level));

  // Token and TLS files are read before anything starts: a mistake is a
  // start-up error with the reason.
  streamgrid::auth::TokenCheck token_check;
  // What this node shows other nodes when it pulls copies from them.
  streamgrid::auth::ClientSecurity peer_security;
  if (!flags.cluster_token_file.empty()) {
    auto token = streamgrid::auth::ReadTokenFile(flags.cluster_token_file);
    if (!token.ok()) Fail("--cluster-token-file: " + std::string(token.status().message()));
    peer_security.token = *token;
    token_check = streamgrid::auth::TokenCheck(*std::move(token), "cluster token");
  }
  auto tls = streamgrid::auth::LoadServerTls(flags.tls_cert, flags.tls_key, flags.tls_ca, "--tls-");
  if (!tls.ok()) Fail(std::string(tls.status().message()));

  // Before gRPC starts any thread, so they all inherit the signal mask.
  streamgrid::TerminationSignals signals;

  // Every call holds a file, every client a connection: take all the
  // descriptors the hard limit allows.
  if (auto limit = streamgrid::RaiseOpenFileLimit(); limit.ok()) {
    spdlog::info("open-file limit: soft {} (was {}), hard {}", limit->soft, limit->soft_before,
                 limit->hard);
  } else {
    spdlog::warn("open-file limit: {}", limit.status().ToString());
  }

  const std::string host = ListenHost(flags.listen);
  // Client certificates authenticate callers as well as a token does.
  if (absl::Status s = streamgrid::auth::CheckListenerProtected(
          host, token_check.enabled() || !tls->client_ca_pem.empty(), flags.allow_unauthenticated,
          "--cluster-token-file");
      !s.ok()) {
    Fail("--listen: " + std::string(s.message()));
  }
  auto engine = StorageEngine::Open(std::filesystem::absolute(flags.data_dir));
  if (!engine.ok()) Fail("data directory: " + engine.status().ToString());
  Scrubber scrubber(**engine,
                    {.bytes_per_second = flags.scrub_bytes_per_second, .interval = scrub_interval});

  // Node-to-node copies (Pull): over TLS the node calls its peers with its
  // own certificate and trusts --tls-ca; without a CA it cannot check them,
  // so it does not pull (callers relay the copies instead).
  std::unique_ptr<streamgrid::storage::NodePuller> puller;
  if (!tls->enabled || !tls->client_ca_pem.empty()) {
    if (tls->enabled) {
      peer_security.tls = {.enabled = true,
                           .ca_pem = tls->client_ca_pem,
                           .cert_pem = tls->cert_pem,
                           .key_pem = tls->key_pem};
    }
    puller = std::make_unique<streamgrid::storage::NodePuller>(
        **engine, streamgrid::storage::NodePullerOptions{.security = peer_security});
  }
  std::unique_ptr<NodeMetrics> node_metrics;
  if (!flags.metrics_listen.empty()) {
    auto started = NodeMetrics::Start(flags.metrics_listen, **engine, scrubber);
    if (!started.ok()) Fail("--metrics-listen: " + std::string(started.status().message()));
    node_metrics = *std::move(started);
  }
  auto server = StorageServer::Start(
      **engine, {.listen_address = flags.listen,
                 .service = {.node_id = flags.node_id,
                             .stream_idle_timeout = std::chrono::seconds(flags.idle_timeout_s),
                             .scrubber = &scrubber,
                             .auth = token_check,
                             .puller = puller.get()},
                 .max_threads = flags.max_threads,
                 .tls = *tls,
                 .interceptors = [&node_metrics] {
                   return node_metrics ? node_metrics->grpc().Interceptors()
                                       : decltype(node_metrics->grpc().Interceptors()){};
                 }});
  if (!server.ok()) Fail(server.status().ToString());
  scrubber.Start();

  const std::string address = ReachableHost(host) + ":" + std::to_string((*server)->port());
  if (!flags.ready_file.empty()) {
    std::map<std::string, std::string> ready = {{"grpc", address}};
    if (node_metrics) {
      ready["metrics"] = ReachableHost(ListenHost(flags.metrics_listen)) + ":" +
                         std::to_string(node_metrics->port());
    }
    absl::Status written = streamgrid::WriteReadyFile(flags.ready_file, ready);
    if (!written.ok()) Fail("ready file: " + written.ToString());
  }

  std::unique_ptr<streamgrid::etcd::EtcdClient> etcd_client;
  std::unique_ptr<NodeAnnouncer> announcer;
  if (!flags.etcd.empty()) {
    auto client = streamgrid::etcd::ConnectEtcd(flags.etcd, flags.etcd_security);
    if (!client.ok()) Fail("--etcd: " + client.status().ToString());
    etcd_client = *std::move(client);
    const std::string node_id = flags.node_id.empty() ? address : flags.node_id;
    const std::string advertised = flags.advertise.empty() ? address : flags.advertise;
    StorageEngine* raw_engine = engine->get();
    auto started = NodeAnnouncer::Start(*etcd_client,
                                        {.node_id = node_id,
                                         .address = advertised,
                                         .lease_ttl = std::chrono::seconds(flags.announce_ttl_s)},
                                        [raw_engine] { return raw_engine->Usage(); });
    if (!started.ok()) Fail("--etcd: " + started.status().ToString());
    announcer = *std::move(started);
  }

  spdlog::info("signal {} received, shutting down", signals.Wait());
  // Withdrawn first: web servers stop offering a node that is going away.
  if (announcer) announcer->Stop();
  scrubber.Stop();
  (*server)->Shutdown(std::chrono::seconds(flags.shutdown_grace_s));
  server->reset();
  node_metrics.reset();
  engine->reset();
  spdlog::info("stopped");
  return 0;
}
