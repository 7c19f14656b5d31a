// streamgrid-web: the HTTP API and pages, and the transcoding workers.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <boost/asio/thread_pool.hpp>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "admin/admin_service.h"
#include "auth/token.h"
#include "auth_setup.h"
#include "cluster/cluster_setup.h"
#include "cluster/cluster_state_follower.h"
#include "cluster/etcd_cluster_state_store.h"
#include "cluster/sqlite_cluster_state_store.h"
#include "common/fd_limits.h"
#include "common/ready_file.h"
#include "common/termination_signals.h"
#include "content/caching_video_content_service.h"
#include "content/local_video_content_service.h"
#include "etcd/etcd_client.h"
#include "etcd/etcd_flags.h"
#include "health_setup.h"
#include "http/server.h"
#include "limits_setup.h"
#include "metadata/etcd_video_metadata_service.h"
#include "metadata/sqlite_video_metadata_service.h"
#include "metrics_setup.h"
#include "migration/etcd_migration_coordinator.h"
#include "migration/migrator.h"
#include "probe_setup.h"
#include "repair/hint_handoff.h"
#include "repair/repair_stats.h"
#include "repair_setup.h"
#include "transcoding_setup.h"
#include "webserver/routes.h"

namespace {

using namespace streamgrid;

struct Flags {
  std::string listen = "127.0.0.1:8080";
  std::string data_dir = ".streamgrid";
  std::string web_root = "web";
  std::string metadata;  // "sqlite:PATH"; default under data_dir
  std::string content;   // "fs:DIR" or "cluster:HOST:PORT,..."; default fs under data_dir
  int replication_factor = 2;
  uint64_t max_upload_bytes = uint64_t{8} << 30;
  int transcode_workers = 1;
  int http_threads = 0;
  int blocking_threads = 32;
  int header_timeout_s = 30;
  int idle_timeout_s = 75;
  int io_timeout_s = 60;
  int max_connections = 0;  // 0: as many as the open-file limit allows
  int max_concurrent_uploads = 8;
  bool transcode_head_start = true;  // --transcode-head-start
  bool access_log = true;            // --access-log
  int transcode_store_nice = TranscodeWorkerPoolOptions{}.publish_nice;
  std::string admin_listen = "127.0.0.1:8081";
  uint64_t migration_bytes_per_second = 0;
  std::string handoff_interval = "10s";  // --handoff-interval
  std::string upload_expiry = "24h";     // --upload-expiry
  std::string ready_file;
  std::string log_level = "info";
  std::string server_id;  // default: DefaultServerId()
  int job_lease_ttl_s = 10;
  int job_rescan_interval_ms = 2000;
  std::string allowed_origins;  // --allowed-origins
  std::string api_token_file;   // --api-token-file
  web::MediaFlags media;
  etcd::EtcdSecurityFlags etcd_security;  // --etcd-user, --etcd-tls-ca, ...
  web::RepairFlags repair;                // --repair-after, --anti-entropy-interval, ...
  uint64_t content_cache_bytes = uint64_t{256} << 20;          // --content-cache-bytes
  uint64_t content_cache_max_file_bytes = uint64_t{16} << 20;  // --content-cache-max-file-bytes
  uint64_t content_cache_sendfile_min_bytes = 16 * 1024;       // --content-cache-sendfile-min-bytes
  bool content_cache_memfd = false;                            // --content-cache-memfd
};

[[noreturn]] void Fail(std::string_view what) {
  spdlog::critical("{}", what);
  std::exit(1);
}

// "host:port" → (host, port); port 0 asks for a free one.
std::pair<std::string, uint16_t> ParseListen(const std::string& listen, std::string_view flag) {
  size_t colon = listen.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port > 65535) {
    Fail(std::string(flag) + " must be HOST:PORT, got '" + listen + "'");
  }
  return {listen.substr(0, colon), static_cast<uint16_t>(port)};
}

// The value of a "type:options" flag when its type is `type`.
std::string Option(const std::string& flag, std::string_view type, std::string_view name) {
  if (!absl::StartsWith(flag, std::string(type) + ":") || flag.size() == type.size() + 1) {
    Fail(std::string(name) + " must be " + std::string(type) + ":PATH here, got '" + flag + "'");
  }
  return flag.substr(type.size() + 1);
}

// --upload-expiry as a duration; exits on a malformed or non-positive one.
std::chrono::milliseconds UploadExpiry(const std::string& text) {
  absl::Duration expiry;
  if (!absl::ParseDuration(text, &expiry) || expiry <= absl::ZeroDuration()) {
    Fail("--upload-expiry: expected a positive duration such as 24h or 90s");
  }
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(expiry));
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App cli{"StreamGrid web server: HTTP API, pages and transcoding workers"};
  cli.add_option("--listen", flags.listen, "HTTP address HOST:PORT (port 0 picks a free one)");
  cli.add_option("--data-dir", flags.data_dir, "where local state lives");
  cli.add_option("--web-root", flags.web_root, "folder with templates/ and static/");
  cli.add_option("--metadata", flags.metadata,
                 "metadata store: sqlite:PATH (default DATA_DIR/metadata.db) or "
                 "etcd:HOST:PORT,HOST:PORT,... (every member of an etcd cluster, shared by all "
                 "web servers)");
  cli.add_option("--content", flags.content,
                 "content store: fs:DIR (default DATA_DIR/content), cluster:HOST:PORT,... "
                 "(storage nodes; they seed a new cluster, a stored one is kept) or cluster "
                 "(the cluster stored in the metadata store, as another web server made it)");
  cli.add_option("--replication-factor", flags.replication_factor,
                 "copies of each file when creating a cluster (cluster content only)")
      ->check(CLI::Range(1, Placement::kMaxReplicationFactor));
  cli.add_option("--max-upload-bytes", flags.max_upload_bytes, "largest accepted upload");
  cli.add_option("--transcode-workers", flags.transcode_workers, "transcoding jobs at a time")
      ->check(CLI::Range(1, 64));
  cli.add_option("--http-threads", flags.http_threads, "event-loop threads (0: one per core)")
      ->check(CLI::Range(0, 256));
  cli.add_option("--blocking-threads", flags.blocking_threads, "threads for storage calls")
      ->check(CLI::Range(1, 1024));
  cli.add_option("--header-timeout", flags.header_timeout_s,
                 "seconds a client has to send a header")
      ->check(CLI::Range(1, 3600));
  cli.add_option("--idle-timeout", flags.idle_timeout_s,
                 "seconds an idle keep-alive connection lives")
      ->check(CLI::Range(1, 3600));
  cli.add_option("--io-timeout", flags.io_timeout_s,
                 "seconds a body read or write may make no progress")
      ->check(CLI::Range(1, 3600));
  cli.add_option("--max-connections", flags.max_connections,
                 "open connections at most (default 0: sized from the open-file limit, which "
                 "is raised to its hard limit, minus a reserve; larger values are clamped); at "
                 "the limit the longest-idle connection makes room for a new one")
      ->check(CLI::Range(0, 1000000));
  cli.add_option("--content-cache-bytes", flags.content_cache_bytes,
                 "bytes of hot segments, manifests and thumbnails kept in memory and served "
                 "from there (LRU; 0 disables the cache)");
  cli.add_option("--content-cache-sendfile-min-bytes", flags.content_cache_sendfile_min_bytes,
                 "cached files of at least this size are kept in files (unnamed ones under "
                 "--data-dir, or memfds) and sent with sendfile (0: never)");
  cli.add_flag("--content-cache-memfd", flags.content_cache_memfd,
               "keep those files in memfds rather than in unnamed files under --data-dir "
               "(whose page cache sendfile sends from in larger pieces)");
  cli.add_option("--content-cache-max-file-bytes", flags.content_cache_max_file_bytes,
                 "files larger than this are never cached (streamed from the store instead)");
  cli.add_option("--max-concurrent-uploads", flags.max_concurrent_uploads,
                 "uploads received at once at most; more get 503 with Retry-After (each gets "
                 "its own blocking thread, so reads are never starved)")
      ->check(CLI::Range(1, 1024));
  cli.add_option("--access-log", flags.access_log,
                 "log one line per HTTP request: client, request, status, body bytes, time "
                 "and request id (true or false)");
  cli.add_option("--transcode-head-start", flags.transcode_head_start,
                 "start encoding an upload on this server's copy while its original is stored "
                 "(publishing only once it is accepted), when a transcode worker is idle");
  cli.add_option("--transcode-store-nice", flags.transcode_store_nice,
                 "nice value of the threads storing a transcode's outputs while its ffmpeg runs "
                 "(only ever lowered; 0: the server's), so that ffmpeg gets the cores first")
      ->capture_default_str()
      ->check(CLI::Range(0, 19));
  cli.add_option("--upload-expiry", flags.upload_expiry,
                 "resumable uploads (/api/uploads) left untouched this long are deleted, e.g. "
                 "24h or 30m");
  cli.add_option("--admin-listen", flags.admin_listen,
                 "admin gRPC address HOST:PORT for streamgrid-admin (port 0 picks a free one; "
                 "empty: no admin API)");
  cli.add_option("--migration-bytes-per-second", flags.migration_bytes_per_second,
                 "bandwidth limit of data migrations after membership changes (0: none)");
  cli.add_option("--handoff-interval", flags.handoff_interval,
                 "how often copies that storage nodes hold for nodes that were down (hinted "
                 "handoff) are handed back to them, e.g. 10s or 500ms (cluster content only; "
                 "0: never)");
  cli.add_option("--ready-file", flags.ready_file,
                 "write {\"http\": URL, \"admin\": HOST:PORT} here once serving (for tests "
                 "and scripts)");
  cli.add_option("--log-level", flags.log_level, "trace, debug, info, warn, error");
  cli.add_option("--server-id", flags.server_id,
                 "this server's name in logs and in etcd job claims (default HOSTNAME:HTTP_PORT)");
  cli.add_option("--job-lease-ttl", flags.job_lease_ttl_s,
                 "seconds a dead server's transcoding jobs (and its part in storage "
                 "migrations) stay held before other servers take over (etcd metadata only)")
      ->check(CLI::Range(2, 3600));
  cli.add_option("--job-rescan-interval-ms", flags.job_rescan_interval_ms,
                 "how often to look for transcoding jobs queued on no server (etcd metadata only)")
      ->check(CLI::Range(50, 3600000));
  cli.add_option("--allowed-origins", flags.allowed_origins,
                 "comma-separated origins (https://host[:port]) whose pages may upload and "
                 "delete besides this server's own; reads stay open to every origin");
  cli.add_option("--api-token-file", flags.api_token_file,
                 "file holding a token that uploads and deletes must send as 'Authorization: "
                 "Bearer TOKEN' (mode 0600; one trailing newline ignored); reads need none");
  web::AddMediaFlags(cli, flags.media);
  etcd::AddEtcdSecurityFlags(cli, flags.etcd_security);
  web::AddRepairFlags(cli, flags.repair);
  web::AuthFlags auth_flags;
  web::AddAuthFlags(cli, auth_flags);
  web::HealthFlags health_flags;
  web::AddHealthFlags(cli, health_flags);
  web::ProbeFlags probe_flags;
  web::AddProbeFlags(cli, probe_flags);
  CLI11_PARSE(cli, argc, argv);
  spdlog::set_level(spdlog::level::from_str(flags.log_level));
  http::WriteGuardOptions write_guard;
  if (auto origins = http::ParseAllowedOrigins(flags.allowed_origins); origins.ok()) {
    write_guard.allowed_origins = *std::move(origins);
  } else {
    Fail("--allowed-origins: " + std::string(origins.status().message()));
  }
  if (!flags.api_token_file.empty()) {
    auto token = auth::ReadTokenFile(flags.api_token_file);
    if (!token.ok()) Fail("--api-token-file: " + std::string(token.status().message()));
    write_guard.api_token = *std::move(token);
  }
  // Token and TLS files are read before anything starts: a mistake there is a
  // start-up error with the reason, not a server that refuses every call.
  auto web_auth = web::LoadWebAuth(
      auth_flags,
      flags.admin_listen.empty() ? "" : ParseListen(flags.admin_listen, "--admin-listen").first);
  if (!web_auth.ok()) Fail(std::string(web_auth.status().message()));
  if (flags.server_id.empty()) {
    flags.server_id = web::DefaultServerId(ParseListen(flags.listen, "--listen").second);
  }
  auto health_settings = web::ApplyHealthFlags(health_flags);
  if (!health_settings.ok()) Fail(std::string(health_settings.status().message()));
  web::LogAsServer(flags.server_id);
  spdlog::info("server id '{}'", flags.server_id);

  // Before any thread starts, so they all inherit the signal mask.
  TerminationSignals signals;

  // Every connection, file, pipe and channel needs a descriptor: take all the
  // hard limit allows, and size the connection limit to leave a reserve.
  const int max_connections = web::SizeConnectionLimit(
      flags.max_connections, {.blocking_threads = flags.blocking_threads,
                              .max_concurrent_uploads = flags.max_concurrent_uploads,
                              .transcode_workers = flags.transcode_workers});

  const std::filesystem::path data_dir = std::filesystem::absolute(flags.data_dir);
  std::filesystem::create_directories(data_dir);
  // Metadata: SQLite (one machine) or etcd (shared by every web server). The
  // storage cluster's state lives beside it: a table of the SQLite file, or a
  // key in etcd.
  std::unique_ptr<etcd::EtcdClient> etcd_client;
  std::unique_ptr<VideoMetadataService> metadata;
  std::string metadata_path;
  if (absl::StartsWith(flags.metadata, "etcd:")) {
    auto client = etcd::ConnectEtcd(flags.metadata.substr(5), flags.etcd_security);
    if (!client.ok()) Fail("--metadata: " + client.status().ToString());
    etcd_client = *std::move(client);
    metadata = std::make_unique<EtcdVideoMetadataService>(*etcd_client);
  } else {
    metadata_path = flags.metadata.empty() ? (data_dir / "metadata.db").string()
                                           : Option(flags.metadata, "sqlite", "--metadata");
    auto opened = SqliteVideoMetadataService::Open(metadata_path);
    if (!opened.ok()) Fail("metadata store: " + opened.status().ToString());
    metadata = *std::move(opened);
  }

  // Served at GET /metrics; components are watched as they start. Made
  // before them (and so destroyed after): the channels to the nodes and the
  // transcode workers report to it.
  web::WebMetrics web_metrics;
  // What the self-repair loops do, for the admin API's Status; every loop
  // adds to this one.
  repair::RepairStats repair_stats;
  std::unique_ptr<VideoContentService> local_content;
  ClusterContent cluster_content;
  std::unique_ptr<ClusterStateFollower> follower;
  std::unique_ptr<EtcdMigrationCoordinator> coordinator;
  VideoContentService* content = nullptr;
  if (flags.content == "cluster" || absl::StartsWith(flags.content, "cluster:")) {
    std::unique_ptr<ClusterStateStore> state_store;
    EtcdClusterStateStore* etcd_state_store = nullptr;
    if (etcd_client) {
      // Registered before the cluster state is loaded: from now on a
      // migration started elsewhere waits for this server's writes.
      auto created = EtcdMigrationCoordinator::Create(
          *etcd_client,
          {.server_id = flags.server_id, .lease_ttl = std::chrono::seconds(flags.job_lease_ttl_s)});
      if (!created.ok()) Fail("server registration: " + created.status().ToString());
      coordinator = *std::move(created);
      auto store = std::make_unique<EtcdClusterStateStore>(*etcd_client);
      etcd_state_store = store.get();
      state_store = std::move(store);
    } else {
      auto store = SqliteClusterStateStore::Open(metadata_path);
      if (!store.ok()) Fail("cluster state store: " + store.status().ToString());
      state_store = *std::move(store);
    }
    ClusterOptions cluster_options;
    cluster_options.client.security = web_auth->cluster;
    cluster_options.down_after = health_settings->node_down_after;
    cluster_options.node_interceptor = [&web_metrics](const std::string& node_id) {
      return web_metrics.NodeInterceptor(node_id);
    };
    auto opened = OpenClusterContent(std::move(state_store),
                                     flags.content == "cluster" ? "" : flags.content.substr(8),
                                     flags.replication_factor, std::move(cluster_options));
    if (!opened.ok()) Fail("content cluster: " + opened.status().ToString());
    cluster_content = *std::move(opened);
    content = cluster_content.service.get();
    if (etcd_state_store) {
      // Other web servers change the cluster too: follow their changes.
      follower = std::make_unique<ClusterStateFollower>(*cluster_content.cluster, *etcd_state_store,
                                                        *etcd_client);
      follower->Start();
      coordinator->Attach(*cluster_content.cluster, [&follower] { follower->Reload(); });
    }
  } else {
    std::string content_path = flags.content.empty() ? (data_dir / "content").string()
                                                     : Option(flags.content, "fs", "--content");
    auto opened = LocalVideoContentService::Open(content_path);
    if (!opened.ok()) Fail("content store: " + opened.status().ToString());
    local_content = *std::move(opened);
    content = local_content.get();
  }

  // Serving from memory: every user of `content` below (routes, transcoding)
  // goes through the cache, so this server's writes invalidate it.
  std::unique_ptr<CachingVideoContentService> content_cache;
  if (flags.content_cache_bytes > 0) {
    std::string cache_dir;
    if (!flags.content_cache_memfd) {
      cache_dir = (data_dir / "content-cache").string();
      std::filesystem::create_directories(cache_dir);
    }
    content_cache = std::make_unique<CachingVideoContentService>(
        *content, ContentCacheOptions{.capacity_bytes = flags.content_cache_bytes,
                                      .max_file_bytes = flags.content_cache_max_file_bytes,
                                      .memfd_min_bytes = flags.content_cache_sendfile_min_bytes,
                                      .file_dir = cache_dir});
    content = content_cache.get();
  }

  // Before anything that probes: destroyed after it.
  web::ProbeHelpers probe_helpers(probe_flags);
  MediaLimits media_limits;
  TranscodeOptions transcode_options;
  if (absl::Status s = web::ApplyMediaFlags(flags.media, &media_limits, &transcode_options);
      !s.ok()) {
    Fail(s.ToString());
  }
  // With etcd, jobs are claimed there, shared with the other web servers.
  auto transcoding = web::MakeTranscoding(
      *metadata, *content, etcd_client.get(),
      {.workers = flags.transcode_workers,
       .work_dir = data_dir / "work",
       .server_id = flags.server_id,
       .lease_ttl = std::chrono::seconds(flags.job_lease_ttl_s),
       .rescan_interval = std::chrono::milliseconds(flags.job_rescan_interval_ms),
       .transcode = transcode_options,
       .publish_nice = flags.transcode_store_nice,
       .on_job_done = [&web_metrics](const TranscodeJobTiming& timing) {
         web_metrics.OnTranscodeJob(timing);
       }});
  if (!transcoding.ok()) Fail("transcoding: " + transcoding.status().ToString());
  TranscodeWorkerPool& transcoder = *transcoding->pool;
  // Uploads hold at most one blocking thread each: with their own share on
  // top, the --blocking-threads stay free for reads and the API.
  boost::asio::thread_pool blocking(flags.blocking_threads + flags.max_concurrent_uploads);
  webserver::AppContext app{
      .options = {.web_root = std::filesystem::absolute(flags.web_root),
                  .spool_dir = data_dir / "work" / "uploads",
                  .max_upload_bytes = flags.max_upload_bytes,
                  .media_limits = media_limits,
                  .max_concurrent_uploads = flags.max_concurrent_uploads,
                  .transcode_head_start = flags.transcode_head_start,
                  .upload_expiry = UploadExpiry(flags.upload_expiry),
                  .write_guard = write_guard},
      .metadata = *metadata,
      .content = *content,
      .transcoder = transcoder,
      .blocking = blocking,
  };
  app.metrics_text = [&web_metrics] { return web_metrics.Text(); };
  web_metrics.WatchUploads(app.uploads_in_progress);
  web_metrics.WatchVideoWaits(app.video_waits);
  web_metrics.WatchTranscoder(transcoder);
  if (content_cache) web_metrics.WatchCache(*content_cache);
  http::Router router;
  if (absl::Status s = webserver::AddAllRoutes(router, app); !s.ok()) Fail(s.ToString());

  transcoder.Start();
  if (absl::Status s = transcoder.RecoverPending(); !s.ok()) {
    spdlog::warn("could not resume pending transcodes: {}", s.ToString());
  }

  // Membership changes and their migrations (cluster content only); a
  // migration a previous run left unfinished resumes now.
  std::unique_ptr<Migrator> migrator;
  if (cluster_content.cluster) {
    migrator = std::make_unique<Migrator>(
        *cluster_content.cluster, *cluster_content.store,
        MigratorOptions{.max_bytes_per_second = flags.migration_bytes_per_second,
                        .repair_bytes_per_second = flags.repair.repair_bytes_per_second},
        coordinator.get());
    migrator->Start();
    web_metrics.WatchMigration(*migrator);
    web_metrics.WatchRepair(repair_stats);
  }
  // Hands stand-ins' copies back to their owners (idempotent, so every web
  // server runs it).
  std::unique_ptr<repair::HintHandoff> hint_handoff;
  if (cluster_content.cluster) {
    absl::Duration interval;
    if (!absl::ParseDuration(flags.handoff_interval, &interval) ||
        interval < absl::ZeroDuration()) {
      Fail("--handoff-interval: expected a duration such as 10s or 500ms");
    }
    if (interval > absl::ZeroDuration()) {
      hint_handoff = std::make_unique<repair::HintHandoff>(
          *cluster_content.cluster, repair_stats,
          repair::HintHandoffOptions{.interval = absl::ToChronoMilliseconds(interval)});
      hint_handoff->Start();
    }
  }
  // The failure detector: up / suspect / down for every storage node.
  std::unique_ptr<NodeMonitor> node_monitor;
  if (cluster_content.cluster) {
    node_monitor = web::StartNodeMonitor(*cluster_content.cluster, *health_settings,
                                         etcd_client.get(), web_auth->cluster);
  }
  // Self-repair: re-replication, anti-entropy and damage repair (runner only).
  std::unique_ptr<repair::RepairLoop> repair_loop;
  if (migrator) {
    absl::StatusOr<repair::RepairOptions> repair_options = web::ApplyRepairFlags(flags.repair);
    if (!repair_options.ok()) Fail(std::string(repair_options.status().message()));
    repair_loop = web::StartRepairLoop(*cluster_content.cluster, migrator->membership(),
                                       coordinator.get(), repair_stats, *repair_options);
  }
  AdminServiceOptions admin_options{.coordinator = coordinator.get(),
                                    .auth = web_auth->admin_check,
                                    .monitor = node_monitor.get(),
                                    .repair = &repair_stats};
  if (etcd_client) {
    // Storage nodes started with --etcd announce themselves there.
    admin_options.announcements = [&etcd_client] {
      return storage::ListNodeAnnouncements(*etcd_client, "/streamgrid/");
    };
  }
  AdminServiceImpl admin_service(cluster_content.cluster.get(), migrator.get(),
                                 std::move(admin_options));
  std::unique_ptr<AdminServer> admin_server;
  std::string admin_address;
  if (!flags.admin_listen.empty()) {
    auto [admin_host, admin_port] = ParseListen(flags.admin_listen, "--admin-listen");
    auto started = AdminServer::Start(flags.admin_listen, admin_service, web_auth->admin_tls);
    if (!started.ok()) Fail("admin API: " + started.status().ToString());
    admin_server = *std::move(started);
    admin_address = admin_host + ":" + std::to_string(admin_server->port());
    spdlog::info("admin API at {}", admin_address);
  }

  auto [host, port] = ParseListen(flags.listen, "--listen");
  {
    http::HttpServer server({.address = host,
                             .port = port,
                             .threads = flags.http_threads,
                             .header_timeout = std::chrono::seconds(flags.header_timeout_s),
                             .idle_timeout = std::chrono::seconds(flags.idle_timeout_s),
                             .io_timeout = std::chrono::seconds(flags.io_timeout_s),
                             .max_connections = max_connections,
                             .write_guard = std::move(write_guard),
                             .observers = web_metrics.Observers(flags.access_log)},
                            router);
    web_metrics.WatchServer(server);
    if (absl::Status s = server.Start(); !s.ok()) Fail(s.ToString());
    std::string url = "http://" + host + ":" + std::to_string(server.port());
    spdlog::info("StreamGrid serving at {}", url);
    if (!flags.ready_file.empty()) {
      std::map<std::string, std::string> ready = {{"http", url}};
      if (admin_server) ready["admin"] = admin_address;
      if (absl::Status s = WriteReadyFile(flags.ready_file, ready); !s.ok()) {
        Fail("ready file: " + s.ToString());
      }
    }
    spdlog::info("signal {} received, shutting down", signals.Wait());
    // A migration stops between chunks and resumes on the next start.
    if (admin_server) admin_server->Shutdown(std::chrono::seconds(1));
    if (hint_handoff) hint_handoff->Stop();
    if (repair_loop) repair_loop->Stop();
    if (migrator) migrator->Stop();
    if (node_monitor) node_monitor->Stop();
    // Deregisters (and gives up the migration runner role) at once.
    if (coordinator) coordinator->Stop();
    if (follower) follower->Stop();
    server.Stop();
    // Handlers may be waiting on the blocking pool: let those calls finish
    // before the server (and the coroutine frames it owns) goes away.
    blocking.join();
  }
  transcoder.Stop();
  // Releases this server's lease: claims it still held go at once.
  if (transcoding->claims) transcoding->claims->Stop();
  if (content_cache) {
    const ContentCacheStats cache = content_cache->stats();
    spdlog::info("content cache: {} bytes in {} files, {} hits, {} misses, {} fills, {} evictions",
                 cache.bytes, cache.entries, cache.hits, cache.misses, cache.fills,
                 cache.evictions);
  }
  spdlog::info("stopped");
  return 0;
}
