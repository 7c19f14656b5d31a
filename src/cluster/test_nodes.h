#pragma once

// Storage nodes for tests of the cluster and its migrations: real
// StorageServers in this process, on ephemeral ports.

#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ring/placement.h"
#include "storage/storage_client.h"
#include "storage/storage_engine.h"
#include "storage/storage_service.h"
#include "storage/test_util.h"

namespace streamgrid::testing {

// Storage nodes served in-process on ephemeral ports, which can be stopped and
// started again on the same port.
class TestNodes {
 public:
  // With a `cluster_token`, every node requires it and the helpers send it.
  explicit TestNodes(int count, std::string cluster_token = "")
      : cluster_token_(std::move(cluster_token)) {
    for (int i = 0; i < count; ++i) Add();
  }

  // Starts one more node; returns its index.
  int Add() {
    const int i = size();
    auto engine = storage::StorageEngine::Open(dir_.path() / absl::StrCat("node", i));
    if (!engine.ok()) throw std::runtime_error(engine.status().ToString());
    engines_.push_back(*std::move(engine));
    servers_.emplace_back();
    ports_.push_back(0);
    Start(i);
    return i;
  }

  void Start(int i) {
    // The port may be taken by someone else for a moment after a stop: retry a few times.
    for (int attempt = 0; attempt < 50; ++attempt) {
      auto server = storage::StorageServer::Start(
          *engines_[i],
          {.listen_address = absl::StrCat("127.0.0.1:", ports_[i]),
           .service = {.node_id = absl::StrCat("node", i),
                       .auth = cluster_token_.empty()
                                   ? auth::TokenCheck()
                                   : auth::TokenCheck(cluster_token_, "cluster token")}});
      if (server.ok()) {
        servers_[i] = *std::move(server);
        ports_[i] = servers_[i]->port();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw std::runtime_error("cannot restart storage node");
  }
  void Stop(int i) { servers_[i].reset(); }

  // Get streams node `i` is serving now.
  int OpenGetStreams(int i) { return servers_[i]->service().open_get_streams(); }

  // Node `i`'s data directory (its engine's).
  std::filesystem::path DataDir(int i) const { return engines_[i]->data_dir(); }

  std::string id(int i) const { return absl::StrCat("node", i); }
  std::string address(int i) const { return absl::StrCat("127.0.0.1:", ports_[i]); }
  int size() const { return static_cast<int>(engines_.size()); }
  int IndexOf(std::string_view id) const {
    for (int i = 0; i < size(); ++i) {
      if (this->id(i) == id) return i;
    }
    return -1;
  }

  // Every key ("video_id/name") node `i` holds, asked directly.
  std::set<std::string> KeysOn(int i) {
    storage::StorageClient client(address(i), {.security = {.token = cluster_token_}});
    std::set<std::string> keys;
    std::string token;
    do {
      auto page = client.List("", token);
      if (!page.ok()) throw std::runtime_error(page.status().ToString());
      for (const auto& file : page->files) keys.insert(absl::StrCat(file.video_id, "/", file.name));
      token = page->next_page_token;
    } while (!token.empty());
    return keys;
  }

  std::vector<RingNode> RingNodes() const {
    std::vector<RingNode> nodes;
    for (int i = 0; i < size(); ++i) nodes.push_back({.id = id(i), .address = address(i)});
    return nodes;
  }

  // Names of `video_id`'s files that node `i` holds, asked directly.
  std::set<std::string> NamesOn(int i, std::string_view video_id) {
    storage::StorageClient client(address(i), {.security = {.token = cluster_token_}});
    std::set<std::string> names;
    std::string token;
    do {
      auto page = client.List(video_id, token);
      if (!page.ok()) throw std::runtime_error(page.status().ToString());
      for (const auto& file : page->files) names.insert(file.name);
      token = page->next_page_token;
    } while (!token.empty());
    return names;
  }

 private:
  const std::string cluster_token_;
  storage::testing::TempDir dir_;
  std::vector<std::unique_ptr<storage::StorageEngine>> engines_;
  std::vector<std::unique_ptr<storage::StorageServer>> servers_;
  std::vector<int> ports_;
};

}  // namespace streamgrid::testing
