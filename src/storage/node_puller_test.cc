// The Pull RPC end to end: two real nodes in this process, the second copying
// from the first with its NodePuller.

#include "storage/node_puller.h"

#include <chrono>
#include <memory>
#include <string>

#include "common/ids.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/sha256.h"
#include "storage/storage_client.h"
#include "storage/storage_service.h"
#include "storage/test_util.h"

namespace streamgrid::storage {
namespace {

using ::testing::HasSubstr;
using testing::Pattern;
using testing::TempDir;

constexpr char kToken[] = "cluster-secret";

// A node with a puller whose calls carry `peer_token`; both nodes require
// kToken.
struct Node {
  Node(const std::filesystem::path& dir, std::string peer_token, bool pulls = true) {
    auto opened = StorageEngine::Open(dir);
    if (!opened.ok()) throw std::runtime_error(opened.status().ToString());
    engine = *std::move(opened);
    puller = std::make_unique<NodePuller>(
        *engine, NodePullerOptions{.security = {.token = std::move(peer_token)},
                                   .transfer_timeout = std::chrono::seconds(30)});
    auto started = StorageServer::Start(
        *engine, {.service = {.auth = auth::TokenCheck(kToken, "cluster token"),
                              .puller = pulls ? puller.get() : nullptr}});
    if (!started.ok()) throw std::runtime_error(started.status().ToString());
    server = *std::move(started);
    address = "127.0.0.1:" + std::to_string(server->port());
    client = std::make_unique<StorageClient>(
        address, StorageClientOptions{.transfer_timeout = std::chrono::seconds(30),
                                      .security = {.token = kToken}});
  }
  ~Node() {
    client.reset();
    server->Shutdown(std::chrono::seconds(1));
  }

  std::unique_ptr<StorageEngine> engine;
  std::unique_ptr<NodePuller> puller;
  std::unique_ptr<StorageServer> server;
  std::string address;
  std::unique_ptr<StorageClient> client;
};

uint64_t FilesOn(Node& node) {
  auto usage = node.engine->Usage();
  return usage.ok() ? usage->files : ~uint64_t{0};
}

TEST(NodePullerTest, PullsAFileFromAnotherNodeAndStoresItVerified) {
  TempDir dir;
  Node source(dir.path() / "a", kToken);
  Node destination(dir.path() / "b", kToken);
  const std::string video = NewVideoId();
  const std::string data = Pattern(3 * (1 << 20) + 17, 7);
  auto put = source.client->PutBytes(video, "seg", data);
  ASSERT_TRUE(put.ok()) << put.status();

  auto pulled = destination.client->Pull({.video_id = video,
                                          .name = "seg",
                                          .source_address = source.address,
                                          .size = put->size,
                                          .sha256 = put->sha256});
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  ASSERT_TRUE(pulled->source_error.ok()) << pulled->source_error;
  EXPECT_EQ(pulled->file.size, data.size());
  EXPECT_EQ(pulled->file.sha256, put->sha256);

  std::string got;
  auto file = destination.client->Get(video, "seg", 0, 0, [&](std::span<const char> chunk) {
    got.append(chunk.data(), chunk.size());
    return absl::OkStatus();
  });
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(got, data);
}

TEST(NodePullerTest, WhatTheSourceCannotGiveIsASourceErrorAndStoresNothing) {
  TempDir dir;
  Node source(dir.path() / "a", kToken);
  Node destination(dir.path() / "b", kToken);
  const std::string video = NewVideoId();
  auto put = source.client->PutBytes(video, "seg", Pattern(5000, 1));
  ASSERT_TRUE(put.ok()) << put.status();

  // Not there.
  auto missing = destination.client->Pull({.video_id = video,
                                           .name = "other",
                                           .source_address = source.address,
                                           .size = 5000,
                                           .sha256 = put->sha256});
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_EQ(missing->source_error.code(), absl::StatusCode::kNotFound) << missing->source_error;
  EXPECT_THAT(std::string(missing->source_error.message()), HasSubstr(source.address));

  // Another version than the one asked for.
  auto other = destination.client->Pull({.video_id = video,
                                         .name = "seg",
                                         .source_address = source.address,
                                         .size = 5000,
                                         .sha256 = Sha256::HexOf("something else")});
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->source_error.code(), absl::StatusCode::kAborted) << other->source_error;

  // A puller without the cluster token is refused by the source.
  Node tokenless(dir.path() / "c", "");
  auto refused = tokenless.client->Pull({.video_id = video,
                                         .name = "seg",
                                         .source_address = source.address,
                                         .size = 5000,
                                         .sha256 = put->sha256});
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(refused->source_error.code(), absl::StatusCode::kUnauthenticated)
      << refused->source_error;

  EXPECT_EQ(FilesOn(destination), 0u);
  EXPECT_EQ(FilesOn(tokenless), 0u);
}

TEST(NodePullerTest, BadRequestsAreInvalidArgumentsAndANodeWithoutAPullerSaysUnimplemented) {
  TempDir dir;
  Node source(dir.path() / "a", kToken);
  Node destination(dir.path() / "b", kToken);
  const std::string video = NewVideoId();
  const std::string sha = Sha256::HexOf("x");
  for (const PullSpec& bad : {
           PullSpec{.video_id = video,
          .name = "a",
          .source_address = source.address,
          .size = 1,
          .sha256 = "not hex"},
           PullSpec{.video_id = video, .name = "a", .source_address = "", .size = 1, .sha256 = sha},
           PullSpec{.video_id = video,
           .name = "a",
           .source_address = "unix:/tmp/socket",
           .size = 1,
           .sha256 = sha},
           PullSpec{.video_id = video,
           .name = "a",
           .source_address = "dns:///example.com:80",
           .size = 1,
           .sha256 = sha},
           PullSpec{.video_id = video,
           .name = "a",
           .source_address = "127.0.0.1:99999",
           .size = 1,
           .sha256 = sha},
           PullSpec{.video_id = "../x",
           .name = "a",
           .source_address = source.address,
           .size = 1,
           .sha256 = sha},
           PullSpec{.video_id = video,
           .name = "../a",
           .source_address = source.address,
           .size = 1,
           .sha256 = sha},
       }) {
    auto pulled = destination.client->Pull(bad);
    EXPECT_EQ(pulled.status().code(), absl::StatusCode::kInvalidArgument)
        << bad.video_id << "/" << bad.name << ": " << pulled.status();
  }

  Node relay_only(dir.path() / "c", kToken, /*pulls=*/false);
  auto pulled = relay_only.client->Pull(
      {.video_id = video, .name = "a", .source_address = source.address, .size = 1, .sha256 = sha});
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kUnimplemented) << pulled.status();
}

}  // namespace
}  // namespace streamgrid::storage
