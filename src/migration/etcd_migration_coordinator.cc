#include "migration/etcd_migration_coordinator.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"

namespace streamgrid {
namespace {

// The first pause of a migrator waiting for drain reports; it doubles up to
// the poll interval.
constexpr std::chrono::milliseconds kFirstDrainPoll{5};

std::string ToJson(const RegisteredServer& server) {
  return nlohmann::json{{"server_id", server.server_id},
                        {"state_revision", server.state_revision},
                        {"drained_revision", server.drained_revision}}
      .dump();
}

absl::StatusOr<RegisteredServer> FromJson(std::string_view text) {
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json.contains("server_id") || !json["server_id"].is_string() ||
      !json.value("state_revision", nlohmann::json()).is_number_unsigned() ||
      !json.value("drained_revision", nlohmann::json()).is_number_unsigned()) {
    return absl::DataLossError(absl::StrCat("malformed server registration: ", std::string(text)));
  }
  return RegisteredServer{.server_id = json["server_id"].get<std::string>(),
                          .state_revision = json["state_revision"].get<uint64_t>(),
                          .drained_revision = json["drained_revision"].get<uint64_t>()};
}

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdMigrationCoordinator>> EtcdMigrationCoordinator::Create(
    etcd::EtcdClient& client, EtcdMigrationCoordinatorOptions options) {
  if (options.server_id.empty()) {
    return absl::InvalidArgumentError("migration coordination needs a server id");
  }
  std::unique_ptr<EtcdMigrationCoordinator> coordinator(
      new EtcdMigrationCoordinator(client, std::move(options)));
  EtcdMigrationCoordinator* raw = coordinator.get();
  absl::StatusOr<std::unique_ptr<etcd::Registration>> registration = etcd::Registration::Create(
      client, {.key = raw->ServerKey(raw->options_.server_id),
               .value = ToJson({.server_id = raw->options_.server_id}),
               .ttl = raw->options_.lease_ttl,
               .on_change = [raw](bool registered) { raw->OnRegistrationChange(registered); }});
  if (!registration.ok()) return registration.status();
  coordinator->registration_ = *std::move(registration);
  return coordinator;
}

EtcdMigrationCoordinator::EtcdMigrationCoordinator(etcd::EtcdClient& client,
                                                   EtcdMigrationCoordinatorOptions options)
    : client_(client), options_(std::move(options)) {}

EtcdMigrationCoordinator::~EtcdMigrationCoordinator() { Stop(); }

std::string EtcdMigrationCoordinator::ServerKey(std::string_view server_id) const {
  return absl::StrCat(options_.key_prefix, "servers/", std::string(server_id));
}

std::string EtcdMigrationCoordinator::RunnerKey() const {
  return absl::StrCat(options_.key_prefix, "migration/runner");
}

void EtcdMigrationCoordinator::Attach(Cluster& cluster, std::function<void()> reload) {
  std::lock_guard lock(mu_);
  if (cluster_ != nullptr) return;
  cluster_ = &cluster;
  reload_ = std::move(reload);
  reporter_ = std::thread([this] { Report(); });
}

void EtcdMigrationCoordinator::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (reporter_.joinable()) reporter_.join();
  if (registration_) registration_->Stop();
}

void EtcdMigrationCoordinator::AbandonForTesting() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (reporter_.joinable()) reporter_.join();
  registration_->AbandonForTesting();
}

void EtcdMigrationCoordinator::OnRegistrationChange(bool registered) {
  std::lock_guard lock(mu_);
  if (!registered) {
    ++losses_;
    if (cluster_ != nullptr) {
      // Migrations elsewhere stop waiting for this server now, so it must not
      // start writes under a state it may not know to be stale.
      cluster_->FenceWrites(
          "this web server lost its registration in etcd; writes resume once it is back");
      spdlog::warn("writes fenced: the server registration in etcd was lost");
    }
  }
  needs_reload_ = true;
  wake_.notify_all();
}

void EtcdMigrationCoordinator::Report() {
  uint64_t drained = 0;
  while (true) {
    bool reload = false;
    uint64_t losses = 0;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      reload = std::exchange(needs_reload_, false);
      losses = losses_;
    }
    if (reload && registration_->registered()) {
      // Back after a loss: what changed meanwhile may not have reached the
      // watch yet, and writes must start from the newest state.
      if (reload_) reload_();
      std::lock_guard lock(mu_);
      // Unless the registration was lost again meanwhile.
      if (losses == losses_ && !cluster_->WriteFence().ok()) {
        cluster_->UnfenceWrites();
        spdlog::info("writes allowed again: registered in etcd at cluster state {}",
                     cluster_->state()->revision);
      }
    }
    const uint64_t revision = cluster_->state()->revision;
    if (cluster_->WaitForEarlierWrites(std::chrono::milliseconds(0))) drained = revision;
    registration_->Set(ToJson({.server_id = options_.server_id,
                               .state_revision = revision,
                               .drained_revision = drained}));
    std::unique_lock lock(mu_);
    wake_.wait_for(lock, options_.poll_interval,
                   [&] { return stopping_ || needs_reload_ || report_now_; });
    report_now_ = false;
  }
}

absl::StatusOr<std::string> EtcdMigrationCoordinator::Runner() {
  absl::StatusOr<std::optional<etcd::KeyValue>> kv = client_.Get(RunnerKey());
  if (!kv.ok()) return kv.status();
  return *kv ? (*kv)->value : "";
}

uint64_t EtcdMigrationCoordinator::registrations_lost() const {
  std::lock_guard lock(mu_);
  return losses_;
}

absl::StatusOr<std::vector<RegisteredServer>> EtcdMigrationCoordinator::Servers() {
  absl::StatusOr<std::vector<etcd::KeyValue>> listed =
      client_.ListPrefix(absl::StrCat(options_.key_prefix, "servers/"));
  if (!listed.ok()) return listed.status();
  std::vector<RegisteredServer> servers;
  for (const etcd::KeyValue& kv : *listed) {
    absl::StatusOr<RegisteredServer> server = FromJson(kv.value);
    if (!server.ok()) return server.status();
    servers.push_back(*std::move(server));
  }
  return servers;
}

absl::Status EtcdMigrationCoordinator::AwaitWritesDrained(uint64_t revision,
                                                          std::chrono::milliseconds timeout,
                                                          const std::function<bool()>& stopping) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // This server's own report need not wait for its next tick: a migration
  // step usually waits for the state it just published.
  {
    std::lock_guard lock(mu_);
    report_now_ = true;
  }
  wake_.notify_all();
  // Short looks first (the usual wait is for one report, a few ms), then
  // every poll_interval.
  auto pause = std::min<std::chrono::milliseconds>(kFirstDrainPoll, options_.poll_interval);
  std::string waiting_for;
  while (true) {
    absl::StatusOr<std::vector<RegisteredServer>> servers = Servers();
    if (servers.ok()) {
      waiting_for.clear();
      bool self = false;
      for (const RegisteredServer& server : *servers) {
        if (server.server_id == options_.server_id) self = true;
        if (server.drained_revision < revision) {
          absl::StrAppend(&waiting_for, waiting_for.empty() ? "" : ", ", server.server_id,
                          " (drained ", server.drained_revision, ")");
        }
      }
      if (!self) waiting_for = "this server's own registration";
      if (waiting_for.empty()) return absl::OkStatus();
    } else {
      waiting_for = absl::StrCat("the server registry (", servers.status().message(), ")");
    }
    if (stopping && stopping()) return absl::CancelledError("stopping");
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("web servers have not finished the writes begun before cluster state ",
                       revision, ": waiting for ", waiting_for));
    }
    std::this_thread::sleep_for(pause);
    pause = std::min<std::chrono::milliseconds>(pause * 2, options_.poll_interval);
  }
}

bool EtcdMigrationCoordinator::TryBecomeRunner() {
  const int64_t lease = registration_->lease_id();
  if (lease == 0) return false;
  // The runner key lives exactly as long as the lease it was put under.
  if (lease == runner_lease_.load()) return true;
  const std::string key = RunnerKey();
  absl::StatusOr<etcd::TxnResult> result = client_.Commit(
      etcd::Txn().IfAbsent(key).ThenPut(key, options_.server_id, lease).ElseGet(key));
  if (!result.ok()) {
    // Ambiguous: the next call reads what happened.
    spdlog::warn("cannot claim the migration runner key: {}", result.status().ToString());
    return false;
  }
  const std::optional<etcd::KeyValue> holder =
      result->gets.empty() ? std::nullopt : result->gets.front();
  if (!result->succeeded && !(holder && holder->lease == lease)) return false;
  spdlog::info("this server now runs the cluster's migrations");
  runner_lease_.store(lease);
  return true;
}

}  // namespace streamgrid
