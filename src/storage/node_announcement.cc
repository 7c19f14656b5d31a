#include "storage/node_announcement.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/ids.h"

namespace streamgrid::storage {

std::string ToJson(const NodeAnnouncement& a) {
  return nlohmann::json{{"node_id", a.node_id},
                        {"address", a.address},
                        {"files", a.usage.files},
                        {"bytes_used", a.usage.bytes_used},
                        {"free_bytes", a.usage.free_bytes},
                        {"total_bytes", a.usage.total_bytes},
                        {"started_unix_ms", a.started_unix_ms},
                        {"updated_unix_ms", a.updated_unix_ms}}
      .dump();
}

absl::StatusOr<NodeAnnouncement> NodeAnnouncementFromJson(std::string_view text) {
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto bad = [&] {
    return absl::DataLossError(absl::StrCat("malformed node announcement: ", std::string(text)));
  };
  if (!json.is_object()) return bad();
  for (const char* field : {"node_id", "address"}) {
    if (!json.contains(field) || !json[field].is_string()) return bad();
  }
  for (const char* field : {"files", "bytes_used", "free_bytes", "total_bytes"}) {
    if (!json.contains(field) || !json[field].is_number_unsigned()) return bad();
  }
  for (const char* field : {"started_unix_ms", "updated_unix_ms"}) {
    if (!json.contains(field) || !json[field].is_number_integer()) return bad();
  }
  return NodeAnnouncement{
      .node_id = json["node_id"].get<std::string>(),
      .address = json["address"].get<std::string>(),
      .usage = {.files = json["files"].get<uint64_t>(),
                .bytes_used = json["bytes_used"].get<uint64_t>(),
                .free_bytes = json["free_bytes"].get<uint64_t>(),
                .total_bytes = json["total_bytes"].get<uint64_t>()},
      .started_unix_ms = json["started_unix_ms"].get<int64_t>(),
      .updated_unix_ms = json["updated_unix_ms"].get<int64_t>(),
  };
}

std::string NodeAnnouncementPrefix(std::string_view prefix) {
  return absl::StrCat(std::string(prefix), "nodes/");
}

std::string NodeAnnouncementKey(std::string_view prefix, std::string_view node_id) {
  return absl::StrCat(NodeAnnouncementPrefix(prefix), std::string(node_id));
}

absl::StatusOr<std::vector<NodeAnnouncement>> ListNodeAnnouncements(etcd::EtcdClient& client,
                                                                    std::string_view prefix) {
  absl::StatusOr<std::vector<etcd::KeyValue>> listed =
      client.ListPrefix(NodeAnnouncementPrefix(prefix));
  if (!listed.ok()) return listed.status();
  std::vector<NodeAnnouncement> nodes;
  for (const etcd::KeyValue& kv : *listed) {
    absl::StatusOr<NodeAnnouncement> node = NodeAnnouncementFromJson(kv.value);
    // One bad value (written by hand, say) must not hide the other nodes.
    if (!node.ok()) {
      spdlog::warn("ignoring {}: {}", kv.key, node.status().ToString());
      continue;
    }
    nodes.push_back(*std::move(node));
  }
  return nodes;
}

absl::StatusOr<std::unique_ptr<NodeAnnouncer>> NodeAnnouncer::Start(
    etcd::EtcdClient& client, NodeAnnouncerOptions options,
    std::function<absl::StatusOr<StorageUsage>()> usage) {
  if (options.node_id.empty() || options.address.empty()) {
    return absl::InvalidArgumentError("a node announcement needs a node id and an address");
  }
  std::unique_ptr<NodeAnnouncer> announcer(
      new NodeAnnouncer(client, std::move(options), std::move(usage)));
  announcer->thread_ = std::thread([raw = announcer.get()] { raw->Run(); });
  return announcer;
}

NodeAnnouncer::NodeAnnouncer(etcd::EtcdClient& client, NodeAnnouncerOptions options,
                             std::function<absl::StatusOr<StorageUsage>()> usage)
    : client_(client),
      options_(std::move(options)),
      usage_(std::move(usage)),
      started_unix_ms_(NowMillis()) {}

NodeAnnouncer::~NodeAnnouncer() { Stop(); }

bool NodeAnnouncer::announced() const {
  std::lock_guard lock(mu_);
  return registration_ && registration_->registered();
}

NodeAnnouncement NodeAnnouncer::Current() {
  NodeAnnouncement announcement{.node_id = options_.node_id,
                                .address = options_.address,
                                .started_unix_ms = started_unix_ms_,
                                .updated_unix_ms = NowMillis()};
  if (usage_) {
    absl::StatusOr<StorageUsage> usage = usage_();
    if (usage.ok()) {
      announcement.usage = *usage;
    } else {
      spdlog::warn("node announcement: cannot read usage: {}", usage.status().ToString());
    }
  }
  return announcement;
}

bool NodeAnnouncer::Sleep(std::chrono::milliseconds duration) {
  std::unique_lock lock(mu_);
  return !wake_.wait_for(lock, duration, [&] { return stopping_; });
}

void NodeAnnouncer::Run() {
  const std::string key = NodeAnnouncementKey(options_.key_prefix, options_.node_id);
  // First the registration itself: each attempt is bounded, so Stop() waits
  // at most one attempt.
  std::chrono::milliseconds backoff(200);
  while (true) {
    absl::StatusOr<std::unique_ptr<etcd::Registration>> made = etcd::Registration::Create(
        client_, {.key = key, .value = ToJson(Current()), .ttl = options_.lease_ttl},
        std::chrono::seconds(3));
    if (made.ok()) {
      std::lock_guard lock(mu_);
      if (stopping_) return;  // the registration withdraws itself as it goes
      registration_ = *std::move(made);
      break;
    }
    spdlog::warn("cannot announce the node in etcd yet: {}", made.status().ToString());
    if (!Sleep(backoff)) return;
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
  spdlog::info("announced as node {} at {} in etcd", options_.node_id, options_.address);
  while (Sleep(options_.usage_interval)) registration_->Set(ToJson(Current()));
}

void NodeAnnouncer::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::unique_ptr<etcd::Registration> registration;
  {
    std::lock_guard lock(mu_);
    registration = std::move(registration_);
  }
  if (registration) registration->Stop();
}

}  // namespace streamgrid::storage
