#pragma once

// Storage nodes for tests of the cluster and its migrations: real
// StorageServers in this process, on ephemeral ports.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

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
#include "storage/node_puller.h"
#include "storage/storage_client.h"
#include "storage/storage_engine.h"
#include "storage/storage_service.h"
#include "storage/test_util.h"

namespace streamgrid::testing {

// Storage nodes served in-process on ephemeral ports, which can be stopped and
// started again on the same port.
//
// A stopped node's port stays reserved by a bound socket that does not listen:
// calls to it are refused at once, as with a dead process, yet no other test
// running beside this one can be given the port and answer in its place.
class TestNodes {
 public:
  // With a `cluster_token`, every node requires it and the helpers send it.
  explicit TestNodes(int count, std::string cluster_token = "")
      : cluster_token_(std::move(cluster_token)) {
    for (int i = 0; i < count; ++i) Add();
  }

  // Starts one more node (its engine opened with `options`, e.g. a test Env);
  // returns its index.
  int Add(storage::StorageEngineOptions options = {}) {
    const int i = size();
    auto engine = storage::StorageEngine::Open(dir_.path() / absl::StrCat("node", i), options);
    if (!engine.ok()) throw std::runtime_error(engine.status().ToString());
    engines_.push_back(*std::move(engine));
    // Each node pulls copies from the others (the Pull RPC) as a real one does.
    pullers_.push_back(std::make_unique<storage::NodePuller>(
        *engines_.back(),
        storage::NodePullerOptions{.security = {.token = cluster_token_},
                                   .call_timeout = std::chrono::seconds(5)}));
    servers_.emplace_back();
    ports_.push_back(0);
    placeholders_.push_back(-1);
    Start(i);
    return i;
  }

  ~TestNodes() {
    for (int fd : placeholders_) {
      if (fd >= 0) close(fd);
    }
  }
  TestNodes(const TestNodes&) = delete;
  TestNodes& operator=(const TestNodes&) = delete;

  void Start(int i) {
    ReleasePort(i);
    // The port may be held for a moment by a connection of ours: retry a few times.
    for (int attempt = 0; attempt < 50; ++attempt) {
      auto server = storage::StorageServer::Start(
          *engines_[i],
          {.listen_address = absl::StrCat("127.0.0.1:", ports_[i]),
           .service = {.node_id = absl::StrCat("node", i),
                       .auth = cluster_token_.empty()
                                   ? auth::TokenCheck()
                                   : auth::TokenCheck(cluster_token_, "cluster token"),
                       .puller = pullers_[i].get()}});
      if (server.ok()) {
        servers_[i] = *std::move(server);
        ports_[i] = servers_[i]->port();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw std::runtime_error("cannot restart storage node");
  }
  // Node `i`'s calls to other nodes (its pulls) carry `token` from now on
  // instead of the cluster token, e.g. a wrong one; restarts the node.
  void SetPullToken(int i, std::string token) {
    Stop(i);
    pullers_[i] = std::make_unique<storage::NodePuller>(
        *engines_[i], storage::NodePullerOptions{.security = {.token = std::move(token)},
                                                 .call_timeout = std::chrono::seconds(5)});
    Start(i);
  }
  void Stop(int i) {
    servers_[i].reset();
    ReservePort(i);
  }

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
  // Binds (without listening) a socket to node `i`'s port.
  void ReservePort(int i) {
    if (placeholders_[i] >= 0) return;
    for (int attempt = 0; attempt < 50; ++attempt) {
      const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) break;
      // Connections the node accepted linger in TIME_WAIT on its port.
      const int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      address.sin_port = htons(static_cast<uint16_t>(ports_[i]));
      if (bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0) {
        placeholders_[i] = fd;
        return;
      }
      close(fd);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error(absl::StrCat("cannot hold the port of stopped node ", i));
  }
  void ReleasePort(int i) {
    if (placeholders_[i] < 0) return;
    close(placeholders_[i]);
    placeholders_[i] = -1;
  }

  const std::string cluster_token_;
  storage::testing::TempDir dir_;
  std::vector<std::unique_ptr<storage::StorageEngine>> engines_;
  std::vector<std::unique_ptr<storage::NodePuller>> pullers_;
  std::vector<std::unique_ptr<storage::StorageServer>> servers_;
  std::vector<int> ports_;
  std::vector<int> placeholders_;  // fds holding stopped nodes' ports, or -1
};

}  // namespace streamgrid::testing
