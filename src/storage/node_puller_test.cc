// The Pull RPC end to end: two real nodes in this process, the second copying
// from the first with its NodePuller.

#include "storage/node_puller.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ids.h"
#include "gmock/gmock.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "storage/checksum_store.h"
#include "storage/sha256.h"
#include "storage/storage_client.h"
#include "storage/storage_service.h"
#include "storage/test_util.h"
#include "storage/testing/bit_rot.h"

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

// Every regular file under `dir` (data, records, temp files).
size_t RegularFilesUnder(const std::filesystem::path& dir) {
  size_t count = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) ++count;
  }
  return count;
}

// The raw digest of each kChecksumBlockBytes block of `data` (SHA-256, as
// a node before XXH3-128 sends them, unless told otherwise).
std::vector<BlockDigest> BlockDigestsOf(std::string_view data,
                                        BlockAlgorithm algorithm = BlockAlgorithm::kSha256) {
  std::vector<BlockDigest> digests;
  for (size_t at = 0; at < data.size(); at += kChecksumBlockBytes) {
    digests.push_back(BlockHasher::Of(algorithm, data.substr(at, kChecksumBlockBytes)));
  }
  return digests;
}

std::string Raw(const std::vector<BlockDigest>& digests) {
  std::string raw;
  for (const BlockDigest& d : digests)
    raw.append(reinterpret_cast<const char*>(d.data()), d.size());
  return raw;
}

// A source node that answers Get with whatever it is told to: the data, and
// block digests that may be wrong, malformed or (like a node older than
// GetRequest.want_block_sha256) absent. Unit-test fake of a misbehaving peer.
class FakeSource final : public v1::StorageService::Service {
 public:
  // Sends `data` as a file whose info announces `announced_sha256` (the
  // data's own when empty).
  FakeSource(std::string data, std::optional<std::string> raw_digests,
             std::string announced_sha256 = "")
      : data_(std::move(data)),
        raw_digests_(std::move(raw_digests)),
        announced_sha256_(announced_sha256.empty() ? Sha256::HexOf(data_)
                                                   : std::move(announced_sha256)) {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
    if (!server_ || port == 0) throw std::runtime_error("fake source did not start");
    address_ = "127.0.0.1:" + std::to_string(port);
  }
  ~FakeSource() override { server_->Shutdown(std::chrono::system_clock::now()); }

  grpc::Status Get(grpc::ServerContext*, const v1::GetRequest* request,
                   grpc::ServerWriter<v1::GetResponse>* writer) override {
    // Any Get of the pull (a re-read of a damaged block asks for none).
    if (request->want_block_sha256()) asked_for_digests_ = true;
    if (request->receiver_verifies_blocks()) told_receiver_verifies_ = true;
    v1::GetResponse response;
    v1::FileInfo* info = response.mutable_file();
    info->set_video_id(request->video_id());
    info->set_name(request->name());
    info->set_size(data_.size());
    info->set_sha256(announced_sha256_);
    if (raw_digests_) {
      response.set_block_sha256_follow(true);
      response.set_block_sha256(*raw_digests_);
    }
    // The range asked for (a whole file, or a block read again).
    const size_t begin = std::min<size_t>(request->offset(), data_.size());
    const size_t end = request->length() == 0
                           ? data_.size()
                           : std::min<size_t>(data_.size(), begin + request->length());
    constexpr size_t kChunk = 256 * 1024;
    for (size_t at = begin;; at += kChunk) {
      response.set_chunk(data_.substr(at, std::min(kChunk, end - at)));
      if (!writer->Write(response)) return grpc::Status::CANCELLED;
      response.clear_file();
      response.clear_block_sha256_follow();
      response.clear_block_sha256();
      if (at + kChunk >= end) break;
    }
    return grpc::Status::OK;
  }

  const std::string& address() const { return address_; }
  bool asked_for_digests() const { return asked_for_digests_; }
  bool told_receiver_verifies() const { return told_receiver_verifies_; }

 private:
  const std::string data_;
  const std::optional<std::string> raw_digests_;
  const std::string announced_sha256_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::atomic<bool> asked_for_digests_ = false;
  std::atomic<bool> told_receiver_verifies_ = false;
};

// Flips one bit of `video/name`'s data file on `node`'s disk in place (same
// inode, size and mtime), as bit rot would.
void FlipStoredBit(Node& node, const std::string& video, const std::string& name, uint64_t offset) {
  testing::FlipBitKeepingMtime(node.engine->data_dir() / "content" / video / name, offset);
}

// Reads the whole of a Get stream; the status that ended it.
absl::Status ReadAll(StorageClient::GetStream& stream, std::string& got) {
  while (true) {
    auto chunk = stream.Next();
    if (!chunk.ok()) return chunk.status();
    if (chunk->empty()) return absl::OkStatus();
    got.append(chunk->data(), chunk->size());
  }
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

TEST(NodePullerTest, TheSourceSendsTheRecordedDigestOfEveryBlockOfAWholeFile) {
  TempDir dir;
  Node source(dir.path() / "a", kToken);
  const std::string video = NewVideoId();
  for (size_t size : {size_t{0}, size_t{5000}, size_t{1} << 20, 3 * (size_t{1} << 20) + 17}) {
    const std::string name = "f" + std::to_string(size);
    const std::string data = Pattern(size, 3);
    ASSERT_TRUE(source.client->PutBytes(video, name, data).ok());
    auto get = source.client->OpenGet(video, name, 0, 0, /*verify=*/true, /*block_digests=*/true);
    ASSERT_TRUE(get.ok()) << get.status();
    EXPECT_TRUE((*get)->block_digests_follow());
    std::string got;
    while (true) {
      auto chunk = (*get)->Next();
      ASSERT_TRUE(chunk.ok()) << chunk.status();
      if (chunk->empty()) break;
      got.append(chunk->data(), chunk->size());
    }
    EXPECT_EQ(got, data);
    const auto digests = (*get)->block_digests();
    // The node hashed these files itself: XXH3-128 blocks.
    EXPECT_EQ((*get)->block_algorithm(), BlockAlgorithm::kXxh3_128);
    EXPECT_EQ(std::vector<BlockDigest>(digests.begin(), digests.end()),
              BlockDigestsOf(data, BlockAlgorithm::kXxh3_128))
        << size;
  }
  // Not asked for, or not the whole file: none.
  auto plain = source.client->OpenGet(video, "f5000", 0, 0);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE((*plain)->block_digests_follow());
  auto range = source.client->OpenGet(video, "f5000", 10, 0, true, /*block_digests=*/true);
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_FALSE((*range)->block_digests_follow());
}

// A file stored with SHA-256 blocks (by a sender before XXH3-128) and one with
// XXH3-128 blocks: each copy keeps its source's algorithm and digests, and
// damage to either copy is caught by a verified read.
TEST(NodePullerTest, APullKeepsTheSourcesBlockAlgorithm) {
  TempDir dir;
  Node source(dir.path() / "a", kToken);
  Node destination(dir.path() / "b", kToken);
  const std::string video = NewVideoId();
  for (BlockAlgorithm algorithm : {BlockAlgorithm::kSha256, BlockAlgorithm::kXxh3_128}) {
    for (size_t size : {size_t{4000}, 2 * (size_t{1} << 20) + 5}) {
      const std::string name = std::string(BlockAlgorithmName(algorithm)) + std::to_string(size);
      SCOPED_TRACE(name);
      const std::string data = Pattern(size, 13);
      auto put = source.client->StartPut(
          video, name,
          {.sha256_at_commit = true, .block_sha256_follow = true, .block_algorithm = algorithm});
      ASSERT_TRUE(put.ok()) << put.status();
      ASSERT_TRUE((*put)->Append(data).ok());
      (*put)->AddBlockDigests(BlockDigestsOf(data, algorithm));
      ASSERT_TRUE((*put)->Commit(Sha256::HexOf(data)).ok());

      auto pulled = destination.client->Pull({.video_id = video,
                                              .name = name,
                                              .source_address = source.address,
                                              .size = data.size(),
                                              .sha256 = Sha256::HexOf(data)});
      ASSERT_TRUE(pulled.ok()) << pulled.status();
      ASSERT_TRUE(pulled->source_error.ok()) << pulled->source_error;

      auto get = destination.client->OpenGet(video, name, 0, 0, true, /*block_digests=*/true);
      ASSERT_TRUE(get.ok()) << get.status();
      std::string got;
      ASSERT_TRUE(ReadAll(**get, got).ok());
      EXPECT_EQ(got, data);
      EXPECT_EQ((*get)->block_algorithm(), algorithm);
      const auto digests = (*get)->block_digests();
      EXPECT_EQ(std::vector<BlockDigest>(digests.begin(), digests.end()),
                BlockDigestsOf(data, algorithm));

      FlipStoredBit(destination, video, name, size - 3);
      // A one-block file fails as the read opens, a larger one at the bad block.
      auto damaged = destination.client->OpenGet(video, name, 0, 0);
      got.clear();
      const absl::Status read = damaged.ok() ? ReadAll(**damaged, got) : damaged.status();
      EXPECT_EQ(read.code(), absl::StatusCode::kDataLoss) << read;
    }
  }
  EXPECT_EQ(destination.engine->quarantine().List(0, 0).copies.size(), 4u);
}

TEST(NodePullerTest, TheSourceSkipsItsOwnHashOnlyWhenTheReceiverVerifiesTheBlocks) {
  TempDir dir;
  Node source(dir.path() / "a", kToken);
  const std::string video = NewVideoId();
  const std::string data = Pattern(3 * (1 << 20) + 17, 9);
  ASSERT_TRUE(source.client->PutBytes(video, "seg", data).ok());
  FlipStoredBit(source, video, "seg", (1 << 20) + 100);

  // A receiver that checks the blocks gets the stored bytes (damaged as they
  // are) with the digests the source has stored, which do not match them.
  auto copy = source.client->OpenGet(video, "seg", 0, 0, /*verify=*/false,
                                     /*block_digests=*/true, /*receiver_verifies_blocks=*/true);
  ASSERT_TRUE(copy.ok()) << copy.status();
  std::string got;
  ASSERT_TRUE(ReadAll(**copy, got).ok());
  ASSERT_EQ(got.size(), data.size());
  EXPECT_NE(got, data);
  const auto sent = (*copy)->block_digests();
  constexpr BlockAlgorithm kXxh3 = BlockAlgorithm::kXxh3_128;
  EXPECT_EQ(std::vector<BlockDigest>(sent.begin(), sent.end()), BlockDigestsOf(data, kXxh3));
  EXPECT_NE(BlockDigestsOf(got, kXxh3)[1], BlockDigestsOf(data, kXxh3)[1]);
  EXPECT_EQ(source.engine->quarantine().List(0, 0).copies.size(), 0u);

  // Every other read verifies: a copier's read that does not say it checks
  // the blocks, and a client's.
  auto checked = source.client->OpenGet(video, "seg", 0, 0, /*verify=*/false,
                                        /*block_digests=*/true);
  ASSERT_TRUE(checked.ok()) << checked.status();
  got.clear();
  absl::Status ended = ReadAll(**checked, got);
  EXPECT_EQ(ended.code(), absl::StatusCode::kDataLoss) << ended;
  EXPECT_EQ(got, data.substr(0, 1 << 20));  // the block before the damage only
  EXPECT_EQ(source.engine->quarantine().List(0, 0).copies.size(), 1u);
  EXPECT_TRUE(absl::IsNotFound(source.engine->Stat(video, "seg").status()));
}

TEST(NodePullerTest, ADamagedSourceCopyIsCaughtAtTheDestinationAndQuarantinedAtTheSource) {
  for (size_t size : {size_t{5000}, 3 * (size_t{1} << 20) + 17}) {
    TempDir dir;
    Node source(dir.path() / "a", kToken);
    Node destination(dir.path() / "b", kToken);
    const size_t files_before = RegularFilesUnder(dir.path() / "b");
    const std::string video = NewVideoId();
    const std::string data = Pattern(size, 4);
    auto put = source.client->PutBytes(video, "seg", data);
    ASSERT_TRUE(put.ok()) << put.status();
    const uint64_t damaged_at = size > (2u << 20) ? (2u << 20) + 7 : 10;
    FlipStoredBit(source, video, "seg", damaged_at);

    auto pulled = destination.client->Pull({.video_id = video,
                                            .name = "seg",
                                            .source_address = source.address,
                                            .size = put->size,
                                            .sha256 = put->sha256});
    ASSERT_TRUE(pulled.ok()) << size << ": " << pulled.status();
    EXPECT_EQ(pulled->source_error.code(), absl::StatusCode::kDataLoss)
        << size << ": " << pulled->source_error;
    const std::string message(pulled->source_error.message());
    EXPECT_THAT(message, HasSubstr(source.address)) << size;
    EXPECT_THAT(message, HasSubstr("block " + std::to_string(damaged_at / (1 << 20)))) << size;
    EXPECT_THAT(message, HasSubstr("its copy is damaged")) << size;
    // Nothing on the destination, not even a temp file.
    EXPECT_EQ(FilesOn(destination), 0u) << size;
    EXPECT_EQ(RegularFilesUnder(dir.path() / "b"), files_before) << size;
    // The source's copy is out of service, as a scrub would have left it.
    const auto quarantined = source.engine->quarantine().List(0, 0).copies;
    ASSERT_EQ(quarantined.size(), 1u) << size;
    EXPECT_EQ(quarantined[0].video_id, video);
    EXPECT_EQ(quarantined[0].name, "seg");
    EXPECT_EQ(quarantined[0].damage, Damage::kCorrupt);
    EXPECT_TRUE(absl::IsNotFound(source.engine->Stat(video, "seg").status())) << size;
  }
}

// A destination node pulling one file, `data_` as "seg" of `video_`, from
// fake sources.
class NodePullerFakeSourceTest : public ::testing::Test {
 protected:
  // Asks the destination to pull `data_` (its size and SHA-256) from `source`.
  absl::StatusOr<PullResult> PullFrom(const FakeSource& source) {
    return destination_.client->Pull({.video_id = video_,
                                      .name = "seg",
                                      .source_address = source.address(),
                                      .size = data_.size(),
                                      .sha256 = sha_});
  }

  // Nothing stored on the destination: no file, no record, no temp file.
  void ExpectNothingStored(std::string_view what) {
    EXPECT_EQ(FilesOn(destination_), 0u) << what;
    EXPECT_EQ(RegularFilesUnder(dir_.path() / "b"), files_before_) << what;
  }

  TempDir dir_;
  Node destination_{dir_.path() / "b", kToken};
  const size_t files_before_ = RegularFilesUnder(dir_.path() / "b");
  const std::string video_ = NewVideoId();
  const std::string data_ = Pattern(3 * (1 << 20) + 17, 5);
  const std::string sha_ = Sha256::HexOf(data_);
};

TEST_F(NodePullerFakeSourceTest, APullChecksEveryBlockAgainstTheSourcesDigests) {
  std::vector<BlockDigest> wrong = BlockDigestsOf(data_);
  wrong[2][0] ^= 1;
  std::string right_raw = Raw(BlockDigestsOf(data_));
  std::string damaged = data_;
  damaged[(1 << 20) + 3] ^= 1;
  struct Case {
    const char* what;
    std::string sent;
    std::string raw;
    const char* message;
  };
  for (const Case& c : {
           Case{"a wrong block digest", data_, Raw(wrong), "block 2"},
           Case{"bytes damaged in transit", damaged, right_raw,
                "block 1 not matching its stored digest: damaged on the way"},
           Case{"a digest missing", data_, right_raw.substr(0, 3 * 32), "digests of 3"},
           Case{"a digest cut short", data_, right_raw.substr(0, 40), "malformed block digests"},
           Case{"a digest too many", data_, right_raw + right_raw.substr(0, 32),
                "malformed block digests"},
       }) {
    FakeSource source(c.sent, c.raw, sha_);
    auto pulled = PullFrom(source);
    ASSERT_TRUE(pulled.ok()) << c.what << ": " << pulled.status();
    EXPECT_TRUE(source.asked_for_digests()) << c.what;
    EXPECT_TRUE(source.told_receiver_verifies()) << c.what;
    EXPECT_EQ(pulled->source_error.code(), absl::StatusCode::kDataLoss)
        << c.what << ": " << pulled->source_error;
    EXPECT_THAT(std::string(pulled->source_error.message()), HasSubstr(c.message)) << c.what;
    ExpectNothingStored(c.what);
  }

  // The right digests: stored, and what is stored reads back whole.
  FakeSource source(data_, right_raw);
  auto pulled = PullFrom(source);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  ASSERT_TRUE(pulled->source_error.ok()) << pulled->source_error;
  EXPECT_EQ(pulled->file.sha256, sha_);
  std::string got;
  ASSERT_TRUE(destination_.client
                  ->Get(video_, "seg", 0, 0,
                        [&](std::span<const char> chunk) {
                          got.append(chunk.data(), chunk.size());
                          return absl::OkStatus();
                        })
                  .ok());
  EXPECT_EQ(got, data_);
}

TEST_F(NodePullerFakeSourceTest, ASourceWithoutDigestsIsHashedWholeAsBefore) {
  // Bytes damaged in transit from a node that sends no digests (older than
  // GetRequest.want_block_sha256): the whole-file hash catches them.
  std::string damaged = data_;
  damaged[1 << 20] ^= 1;
  {
    FakeSource source(damaged, std::nullopt, sha_);
    auto pulled = PullFrom(source);
    ASSERT_TRUE(pulled.ok()) << pulled.status();
    EXPECT_EQ(pulled->source_error.code(), absl::StatusCode::kDataLoss) << pulled->source_error;
    EXPECT_THAT(std::string(pulled->source_error.message()), HasSubstr("checksum mismatch"));
    ExpectNothingStored("damaged bytes without digests");
  }
  // The right bytes: stored.
  FakeSource source(data_, std::nullopt);
  auto pulled = PullFrom(source);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  ASSERT_TRUE(pulled->source_error.ok()) << pulled->source_error;
  EXPECT_EQ(pulled->file.sha256, sha_);
  auto stat = destination_.engine->Stat(video_, "seg");
  ASSERT_TRUE(stat.ok()) << stat.status();
  EXPECT_EQ(stat->sha256, sha_);
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
