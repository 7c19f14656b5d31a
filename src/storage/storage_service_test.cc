#include "storage/storage_service.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "auth/testing/call_every_method.h"
#include "common/ids.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "ring/placement.h"
#include "storage/sha256.h"
#include "storage/storage_client.h"
#include "storage/test_util.h"

namespace streamgrid::storage {
namespace {

using ::testing::IsEmpty;
using testing::Pattern;
using ::testing::SizeIs;
using testing::TempDir;
using testing::TempFiles;
using testing::WaitFor;

constexpr size_t kMiB = 1 << 20;

class StorageServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(std::chrono::seconds(60)); }

  void Start(std::chrono::milliseconds idle_timeout,
             size_t list_scan_limit = StorageEngine::kDefaultListScanLimit) {
    client_.reset();
    server_.reset();
    engine_.reset();
    auto engine = StorageEngine::Open(dir_.path() / "data");
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = *std::move(engine);
    auto server = StorageServer::Start(*engine_, {.listen_address = "127.0.0.1:0",
                                                  .service = {.stream_idle_timeout = idle_timeout,
                                                              .list_scan_limit = list_scan_limit}});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    target_ = "127.0.0.1:" + std::to_string(server_->port());
    client_ = std::make_unique<StorageClient>(
        target_, StorageClientOptions{.call_timeout = std::chrono::seconds(10),
                                      .transfer_timeout = std::chrono::seconds(30),
                                      .put_chunk_bytes = 256 * 1024});
    stub_ = v1::StorageService::NewStub(
        grpc::CreateChannel(target_, grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    client_.reset();
    if (server_) server_->Shutdown(std::chrono::seconds(1));
  }

  // A source that hands out `data` in pieces of `piece` bytes.
  static StorageClient::ChunkSource SourceOf(const std::string& data, size_t piece) {
    return
        [&data, piece, at = size_t{0}](std::span<char> buffer) mutable -> absl::StatusOr<size_t> {
          const size_t n = std::min({piece, buffer.size(), data.size() - at});
          std::copy_n(data.data() + at, n, buffer.data());
          at += n;
          return n;
        };
  }

  absl::StatusOr<std::string> GetAll(const std::string& video, const std::string& name,
                                     uint64_t offset = 0, uint64_t length = 0) {
    std::string out;
    auto file = client_->Get(video, name, offset, length, [&](std::span<const char> data) {
      out.append(data.data(), data.size());
      return absl::OkStatus();
    });
    if (!file.ok()) return file.status();
    return out;
  }

  std::filesystem::path DataDir() const { return dir_.path() / "data"; }

  TempDir dir_;
  std::unique_ptr<StorageEngine> engine_;
  std::unique_ptr<StorageServer> server_;
  std::string target_;
  std::unique_ptr<StorageClient> client_;
  std::unique_ptr<v1::StorageService::Stub> stub_;
};

TEST_F(StorageServiceTest, PutGetStatListDeleteRoundTrip) {
  const std::string video = NewVideoId();
  const std::string data = Pattern(5 * kMiB + 123, 1);
  auto put = client_->Put(video, "original", SourceOf(data, 300 * 1024), {.size = data.size()});
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->video_id, video);
  EXPECT_EQ(put->name, "original");
  EXPECT_EQ(put->size, data.size());
  EXPECT_EQ(put->sha256, Sha256::HexOf(data));
  EXPECT_GT(put->mtime_unix_nanos, 0);
  ASSERT_TRUE(client_->PutBytes(video, "manifest.mpd", "<MPD/>").ok());

  EXPECT_EQ(GetAll(video, "original").value(), data);
  auto stat = client_->Stat(video, "original");
  ASSERT_TRUE(stat.ok()) << stat.status();
  EXPECT_EQ(*stat, *put);

  auto page = client_->List(video);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_THAT(page->files, SizeIs(2));
  EXPECT_EQ(page->files[0].name, "manifest.mpd");
  EXPECT_EQ(page->files[0].sha256, Sha256::HexOf("<MPD/>"));
  EXPECT_EQ(page->files[1], *put);
  EXPECT_EQ(page->next_page_token, "");

  auto health = client_->Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(health->node_id, target_);
  EXPECT_EQ(health->files, 2u);
  EXPECT_EQ(health->bytes_used, data.size() + 6);
  EXPECT_GT(health->free_bytes, 0u);
  EXPECT_GE(health->total_bytes, health->free_bytes);

  EXPECT_TRUE(client_->Delete(video, "manifest.mpd").ok());
  EXPECT_EQ(client_->Delete(video, "manifest.mpd").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->Stat(video, "manifest.mpd").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->DeleteVideo(video).value(), 1u);
  EXPECT_EQ(client_->Stat(video, "original").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->Health()->files, 0u);
}

TEST_F(StorageServiceTest, RangedGets) {
  const std::string video = NewVideoId();
  const std::string data = Pattern(3 * kMiB, 2);
  ASSERT_TRUE(client_->Put(video, "seg", SourceOf(data, kMiB)).ok());

  EXPECT_EQ(GetAll(video, "seg", 1000, 2 * kMiB).value(), data.substr(1000, 2 * kMiB));
  EXPECT_EQ(GetAll(video, "seg", data.size() - 10).value(), data.substr(data.size() - 10));
  EXPECT_EQ(GetAll(video, "seg", 5, 10 * kMiB).value(), data.substr(5));
  EXPECT_EQ(GetAll(video, "seg", data.size()).value(), "");
  EXPECT_EQ(GetAll(video, "seg", data.size() + 1).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(GetAll(video, "nope").status().code(), absl::StatusCode::kNotFound);

  // The pull-style stream, read in small pieces, still knows the whole file.
  auto stream = client_->OpenGet(video, "seg", 100, 5000);
  ASSERT_TRUE(stream.ok()) << stream.status();
  EXPECT_EQ((*stream)->file().size, data.size());
  EXPECT_EQ((*stream)->file().sha256, Sha256::HexOf(data));
  std::string got;
  char buffer[777];
  while (true) {
    absl::StatusOr<size_t> n = (*stream)->Read(buffer);
    ASSERT_TRUE(n.ok()) << n.status();
    if (*n == 0) break;
    got.append(buffer, *n);
  }
  EXPECT_EQ(got, data.substr(100, 5000));
  EXPECT_EQ(client_->OpenGet(video, "nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(StorageServiceTest, ChecksumMismatchIsDataLossAndStoresNothing) {
  const std::string video = NewVideoId();
  const std::string data = Pattern(2 * kMiB, 3);
  auto put = client_->Put(video, "seg", SourceOf(data, kMiB), {.sha256 = Sha256::HexOf("other")});
  EXPECT_EQ(put.status().code(), absl::StatusCode::kDataLoss) << put.status();
  EXPECT_EQ(client_->Stat(video, "seg").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(client_->List(video)->files, IsEmpty());
  EXPECT_THAT(TempFiles(DataDir()), IsEmpty());
}

// Writes raw messages, for what StorageClient never sends.
grpc::Status RawPut(v1::StorageService::Stub& stub, const std::vector<v1::PutRequest>& requests,
                    bool finish_writes = true) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::PutResponse response;
  auto writer = stub.Put(&context, &response);
  for (const v1::PutRequest& request : requests) {
    if (!writer->Write(request)) break;
  }
  if (finish_writes) writer->WritesDone();
  return writer->Finish();
}

v1::PutRequest Header(const std::string& video, const std::string& name,
                      const std::string& sha256 = "") {
  v1::PutRequest request;
  request.mutable_header()->set_video_id(video);
  request.mutable_header()->set_name(name);
  request.mutable_header()->set_sha256(sha256);
  return request;
}

v1::PutRequest Chunk(std::string data) {
  v1::PutRequest request;
  request.set_chunk(std::move(data));
  return request;
}

v1::PutRequest Finish(const std::string& sha256) {
  v1::PutRequest request;
  request.mutable_finish()->set_sha256(sha256);
  return request;
}

TEST_F(StorageServiceTest, MalformedUploadsAreRefusedAndStoreNothing) {
  const std::string video = NewVideoId();
  const std::string big(kMiB + 1, 'x');
  const std::string ok_sha = Sha256::HexOf("abc");
  EXPECT_EQ(
      RawPut(*stub_, {Header(video, "big"), Chunk(big), Finish(Sha256::HexOf(big))}).error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(RawPut(*stub_, {Header(video, "no-finish"), Chunk("abc")}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(RawPut(*stub_, {Chunk("abc"), Finish(ok_sha)}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(RawPut(*stub_, {Header(video, "no-sum"), Chunk("abc"), Finish("")}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(RawPut(*stub_,
                   {Header(video, "two-sums", ok_sha), Chunk("abc"), Finish(Sha256::HexOf("abd"))})
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(
      RawPut(*stub_, {Header(video, "bad-sum", "xyz"), Chunk("abc"), Finish("")}).error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(client_->List(video)->files, IsEmpty());
  EXPECT_THAT(TempFiles(DataDir()), IsEmpty());

  // A well-formed one for contrast: the checksum from the header, an
  // upper-case copy of it in the finish message.
  std::string upper = ok_sha;
  for (char& c : upper) c = static_cast<char>(toupper(c));
  EXPECT_TRUE(
      RawPut(*stub_, {Header(video, "good", ok_sha), Chunk("ab"), Chunk("c"), Finish(upper)}).ok());
  EXPECT_EQ(client_->Stat(video, "good")->sha256, ok_sha);
}

// The raw digests of `data`'s blocks, concatenated (PutRequest.block_sha256).
std::string RawBlockDigests(std::string_view data,
                            BlockAlgorithm algorithm = BlockAlgorithm::kSha256) {
  std::string raw;
  for (size_t at = 0; at < data.size(); at += kChecksumBlockBytes) {
    const BlockDigest digest = BlockHasher::Of(algorithm, data.substr(at, kChecksumBlockBytes));
    raw.append(reinterpret_cast<const char*>(digest.data()), DigestBytes(algorithm));
  }
  return raw;
}

TEST_F(StorageServiceTest, SenderBlockDigestsAreCheckedAndAWrongOneStoresNothing) {
  const std::string video = NewVideoId();
  const std::string data = Pattern(2 * kMiB + 500, 4);
  const std::string sha = Sha256::HexOf(data);
  const std::string blocks = RawBlockDigests(data);
  auto upload = [&](const std::string& name, std::string first_digests, std::string last_digests) {
    v1::PutRequest header = Header(video, name);
    header.mutable_header()->set_block_sha256_follow(true);
    v1::PutRequest first = Chunk(data.substr(0, kMiB));
    first.set_block_sha256(std::move(first_digests));
    v1::PutRequest second = Chunk(data.substr(kMiB, kMiB));
    v1::PutRequest third = Chunk(data.substr(2 * kMiB));
    v1::PutRequest finish = Finish(sha);
    finish.set_block_sha256(std::move(last_digests));
    return RawPut(*stub_, {header, first, second, third, finish});
  };
  std::string wrong = blocks;
  wrong[40] ^= 1;  // block 1's digest
  EXPECT_EQ(upload("wrong", wrong.substr(0, 32), wrong.substr(32)).error_code(),
            grpc::StatusCode::DATA_LOSS);
  EXPECT_EQ(upload("missing", blocks.substr(0, 32), blocks.substr(32, 32)).error_code(),
            grpc::StatusCode::DATA_LOSS);
  EXPECT_EQ(upload("ragged", blocks.substr(0, 31), blocks.substr(31)).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Digests ahead of the data they describe.
  EXPECT_EQ(upload("early", blocks, "").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(client_->List(video)->files, IsEmpty());
  EXPECT_THAT(TempFiles(DataDir()), IsEmpty());

  grpc::Status good = upload("good", blocks.substr(0, 32), blocks.substr(32));
  ASSERT_TRUE(good.ok()) << good.error_message();
  EXPECT_EQ(client_->Stat(video, "good")->sha256, sha);
  EXPECT_EQ(GetAll(video, "good").value(), data);

  // Through the client: digests handed to the stream, sent with its chunks.
  PutOptions options{.sha256_at_commit = true, .block_sha256_follow = true};
  auto stream = client_->StartPut(video, "client", options);
  ASSERT_TRUE(stream.ok()) << stream.status();
  std::vector<Sha256::Digest> digests(blocks.size() / 32);
  std::memcpy(digests.data(), blocks.data(), blocks.size());
  ASSERT_TRUE((*stream)->Append(std::string_view(data).substr(0, kMiB + 10)).ok());
  (*stream)->AddBlockDigests(std::span(digests).first(1));
  ASSERT_TRUE((*stream)->Append(std::string_view(data).substr(kMiB + 10)).ok());
  (*stream)->AddBlockDigests(std::span(digests).subspan(1));
  auto stored = (*stream)->Commit(sha);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->sha256, sha);
  EXPECT_EQ(GetAll(video, "client").value(), data);
}

TEST_F(StorageServiceTest, ASharedSliceFeedsSeveralStreamsWithTheirBlockDigests) {
  const std::string video = NewVideoId();
  // Chunks are 256 KiB here: the slices are split into chunks, a short tail
  // goes alone, and bytes that Append() buffered go first.
  const std::string data = Pattern(3 * kMiB + 700, 8);
  const std::string sha = Sha256::HexOf(data);
  const std::string blocks = RawBlockDigests(data);
  std::vector<Sha256::Digest> digests(blocks.size() / 32);
  std::memcpy(digests.data(), blocks.data(), blocks.size());
  const grpc::Slice first(data.data() + 100, kMiB + 33);  // after 100 buffered bytes
  const grpc::Slice rest(data.data() + 100 + kMiB + 33, data.size() - 100 - kMiB - 33);
  PutOptions options{.sha256_at_commit = true, .block_sha256_follow = true};
  std::vector<std::unique_ptr<StorageClient::PutStream>> streams;
  for (const char* name : {"a", "b"}) {
    auto stream = client_->StartPut(video, name, options);
    ASSERT_TRUE(stream.ok()) << stream.status();
    streams.push_back(*std::move(stream));
  }
  for (auto& stream : streams) {
    ASSERT_TRUE(stream->Append(std::string_view(data).substr(0, 100)).ok());
    ASSERT_TRUE(stream->AppendShared(first).ok());
    stream->AddBlockDigests(std::span(digests).first(1));
    ASSERT_TRUE(stream->AppendShared(rest).ok());
    stream->AddBlockDigests(std::span(digests).subspan(1));
  }
  for (auto& stream : streams) {
    auto stored = stream->Commit(sha);
    ASSERT_TRUE(stored.ok()) << stored.status();
    EXPECT_EQ(stored->sha256, sha);
  }
  EXPECT_EQ(GetAll(video, "a").value(), data);
  EXPECT_EQ(GetAll(video, "b").value(), data);

  // A wrong digest sent along a shared slice is still caught.
  std::vector<Sha256::Digest> wrong = digests;
  wrong[1][0] ^= 1;
  auto bad = client_->StartPut(video, "c", options);
  ASSERT_TRUE(bad.ok()) << bad.status();
  ASSERT_TRUE((*bad)->AppendShared(grpc::Slice(data.data(), data.size())).ok());
  (*bad)->AddBlockDigests(wrong);
  EXPECT_TRUE(absl::IsDataLoss((*bad)->Commit(sha).status()));
  EXPECT_FALSE(client_->Stat(video, "c").ok());
}

// A sender of XXH3-128 block digests (the web server): 16 bytes a block, a
// file of one block has one too, and the file keeps that algorithm; a sender
// of SHA-256 digests (older) keeps SHA-256 blocks.
TEST_F(StorageServiceTest, XxhBlockDigestsAreCheckedAndKeptAsTheFilesAlgorithm) {
  const std::string video = NewVideoId();
  for (size_t size : {size_t{0}, size_t{700}, 2 * kMiB + 9}) {
    SCOPED_TRACE(size);
    const std::string data = Pattern(size, 10);
    for (BlockAlgorithm algorithm : {BlockAlgorithm::kXxh3_128, BlockAlgorithm::kSha256}) {
      const std::string name = std::string(BlockAlgorithmName(algorithm)) + std::to_string(size);
      const std::string raw = RawBlockDigests(data, algorithm);
      std::vector<BlockDigest> digests(raw.size() / DigestBytes(algorithm));
      for (size_t i = 0; i < digests.size(); ++i) {
        std::memcpy(digests[i].data(), raw.data() + i * DigestBytes(algorithm),
                    DigestBytes(algorithm));
      }
      PutOptions options{
          .sha256_at_commit = true, .block_sha256_follow = true, .block_algorithm = algorithm};
      auto stream = client_->StartPut(video, name, options);
      ASSERT_TRUE(stream.ok()) << stream.status();
      ASSERT_TRUE((*stream)->Append(data).ok());
      (*stream)->AddBlockDigests(digests);
      auto stored = (*stream)->Commit(Sha256::HexOf(data));
      ASSERT_TRUE(stored.ok()) << stored.status();
      EXPECT_EQ(stored->sha256, Sha256::HexOf(data));

      auto get = client_->OpenGet(video, name, 0, 0, true, /*block_digests=*/true);
      ASSERT_TRUE(get.ok()) << get.status();
      std::string got;
      for (auto chunk = (*get)->Next(); chunk.ok() && !chunk->empty(); chunk = (*get)->Next()) {
        got.append(chunk->data(), chunk->size());
      }
      EXPECT_EQ(got, data);
      EXPECT_EQ((*get)->block_algorithm(), algorithm);
      const auto sent = (*get)->block_digests();
      EXPECT_EQ(std::vector<BlockDigest>(sent.begin(), sent.end()), digests);
    }
  }

  // A wrong XXH3 digest, a ragged one and an unknown algorithm store nothing.
  const std::string data = Pattern(kMiB + 10, 11);
  const std::string xxh = RawBlockDigests(data, BlockAlgorithm::kXxh3_128);
  auto upload = [&](const std::string& name, int algorithm, std::string digests) {
    v1::PutRequest header = Header(video, name);
    header.mutable_header()->set_block_sha256_follow(true);
    header.mutable_header()->set_block_algorithm(static_cast<v1::BlockChecksum>(algorithm));
    v1::PutRequest finish = Finish(Sha256::HexOf(data));
    finish.set_block_sha256(std::move(digests));
    return RawPut(*stub_, {header, Chunk(data.substr(0, kMiB)), Chunk(data.substr(kMiB)), finish});
  };
  std::string wrong = xxh;
  wrong[20] ^= 1;
  EXPECT_EQ(upload("wrong", v1::BLOCK_CHECKSUM_XXH3_128, wrong).error_code(),
            grpc::StatusCode::DATA_LOSS);
  EXPECT_EQ(upload("ragged", v1::BLOCK_CHECKSUM_XXH3_128, xxh + "x").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(upload("unknown", 7, xxh).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // SHA-256 digests announced as XXH3 do not fit (two 32-byte digests are
  // four 16-byte ones, more than there are blocks).
  EXPECT_NE(upload("mislabelled", v1::BLOCK_CHECKSUM_XXH3_128, RawBlockDigests(data)).error_code(),
            grpc::StatusCode::OK);
  EXPECT_TRUE(upload("good", v1::BLOCK_CHECKSUM_XXH3_128, xxh).ok());
  for (const char* name : {"wrong", "ragged", "unknown", "mislabelled"}) {
    EXPECT_FALSE(client_->Stat(video, name).ok()) << name;
  }
  EXPECT_THAT(TempFiles(DataDir()), IsEmpty());
}

// Without a digest stream: the client hashes what it sends, shared slices too.
TEST_F(StorageServiceTest, ASharedSliceIsHashedLikeAppendedBytes) {
  const std::string video = NewVideoId();
  const std::string data = Pattern(kMiB + 5, 9);
  auto stream = client_->StartPut(video, "f", {});
  ASSERT_TRUE(stream.ok()) << stream.status();
  ASSERT_TRUE((*stream)->AppendShared(grpc::Slice(data.data(), 1000)).ok());
  ASSERT_TRUE((*stream)->Append(std::string_view(data).substr(1000, 10)).ok());
  ASSERT_TRUE((*stream)->AppendShared(grpc::Slice(data.data() + 1010, data.size() - 1010)).ok());
  ASSERT_TRUE((*stream)->AppendShared(grpc::Slice()).ok());
  auto stored = (*stream)->Commit();
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->sha256, Sha256::HexOf(data));
  EXPECT_EQ(GetAll(video, "f").value(), data);
}

TEST_F(StorageServiceTest, AGetOfTheWholeFileCarriesEachBlocksDigestWithTheChunkWhereItStarts) {
  const std::string video = NewVideoId();
  const std::string data = Pattern(2 * kMiB + 500, 6);
  ASSERT_TRUE(client_->PutBytes(video, "f", data).ok());
  // The node hashed the file itself: it has XXH3-128 blocks (16 bytes each).
  const std::string blocks = RawBlockDigests(data, BlockAlgorithm::kXxh3_128);
  auto read_all = [&](uint64_t offset, bool want) {
    grpc::ClientContext context;
    v1::GetRequest request;
    request.set_video_id(video);
    request.set_name("f");
    request.set_offset(offset);
    request.set_want_block_sha256(want);
    auto reader = stub_->Get(&context, request);
    std::vector<v1::GetResponse> responses;
    for (v1::GetResponse response; reader->Read(&response);) responses.push_back(response);
    EXPECT_TRUE(reader->Finish().ok());
    return responses;
  };
  // 512 KiB chunks (the default): blocks start in the 1st, 3rd and 5th.
  std::vector<v1::GetResponse> whole = read_all(0, true);
  ASSERT_EQ(whole.size(), 5u);
  std::string sent;
  uint64_t position = 0;
  for (size_t i = 0; i < whole.size(); ++i) {
    EXPECT_EQ(whole[i].block_sha256_follow(), i == 0) << i;
    EXPECT_EQ(whole[i].block_algorithm(),
              i == 0 ? v1::BLOCK_CHECKSUM_XXH3_128 : v1::BLOCK_CHECKSUM_SHA256)
        << i;
    const uint64_t blocks_started = (position + whole[i].chunk().size() + kMiB - 1) / kMiB;
    position += whole[i].chunk().size();
    sent += whole[i].block_sha256();
    EXPECT_EQ(sent, blocks.substr(0, 16 * blocks_started)) << i;
  }
  EXPECT_EQ(sent, blocks);
  // Not asked for, or a range: no digests.
  for (const auto& responses : {read_all(0, false), read_all(kMiB, true)}) {
    for (const v1::GetResponse& response : responses) {
      EXPECT_FALSE(response.block_sha256_follow());
      EXPECT_TRUE(response.block_sha256().empty());
    }
  }
}

TEST_F(StorageServiceTest, BadIdsAndNamesAreInvalidArguments) {
  const std::string video = NewVideoId();
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  for (const auto& [id, name] : std::vector<std::pair<std::string, std::string>>{
           {"../x", "seg"}, {video, "../../etc/passwd"}, {video, ".tmp-x"}, {"", "seg"}}) {
    SCOPED_TRACE(id + "/" + name);
    EXPECT_EQ(client_->PutBytes(id, name, "data").status().code(), kInvalid);
    EXPECT_EQ(GetAll(id, name).status().code(), kInvalid);
    EXPECT_EQ(client_->Stat(id, name).status().code(), kInvalid);
    EXPECT_EQ(client_->Delete(id, name).code(), kInvalid);
  }
  EXPECT_EQ(client_->DeleteVideo("..").status().code(), kInvalid);
  EXPECT_EQ(client_->List("a/b").status().code(), kInvalid);
  EXPECT_EQ(client_->List("", "not a token").status().code(), kInvalid);
  EXPECT_THAT(TempFiles(dir_.path()), IsEmpty());
}

TEST_F(StorageServiceTest, CancelledUploadLeavesNothing) {
  const std::string video = NewVideoId();
  auto stream = client_->StartPut(video, "original");
  ASSERT_TRUE(stream.ok()) << stream.status();
  ASSERT_TRUE((*stream)->Append(Pattern(2 * kMiB, 4)).ok());
  // The node has started writing...
  ASSERT_TRUE(WaitFor([&] { return !TempFiles(DataDir()).empty(); }));
  // ...and the client goes away mid-file.
  (*stream)->Cancel();
  EXPECT_TRUE(WaitFor([&] { return TempFiles(DataDir()).empty(); }));
  EXPECT_EQ(client_->Stat(video, "original").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(client_->List(video)->files, IsEmpty());
  // The stream reports the cancellation from then on.
  EXPECT_EQ((*stream)->Commit().status().code(), absl::StatusCode::kCancelled);
}

TEST_F(StorageServiceTest, StalledUploadIsCancelledByTheNode) {
  Start(std::chrono::milliseconds(300));
  const std::string video = NewVideoId();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  v1::PutResponse response;
  auto writer = stub_->Put(&context, &response);
  ASSERT_TRUE(writer->Write(Header(video, "seg")));
  ASSERT_TRUE(writer->Write(Chunk("partial")));
  // Then silence, without a half-close: the node must give up on its own,
  // long before the client's deadline.
  const auto start = std::chrono::steady_clock::now();
  grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED) << status.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(server_->service().idle_cancellations(), 1u);
  EXPECT_TRUE(WaitFor([&] { return TempFiles(DataDir()).empty(); }));
  EXPECT_EQ(client_->Stat(video, "seg").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(StorageServiceTest, ListPagesThroughEveryFile) {
  std::vector<std::string> videos = {NewVideoId(), NewVideoId(), NewVideoId()};
  for (const std::string& video : videos) {
    for (int i = 0; i < 10; ++i) {
      ASSERT_TRUE(client_->PutBytes(video, absl::StrCat("f", i), video).ok());
    }
  }
  std::vector<StoredFile> all;
  std::string token;
  int pages = 0;
  do {
    auto page = client_->List("", token, 7);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_LE(page->files.size(), 7u);
    all.insert(all.end(), page->files.begin(), page->files.end());
    token = page->next_page_token;
    ++pages;
  } while (!token.empty());
  EXPECT_EQ(pages, 5);
  ASSERT_THAT(all, SizeIs(30));
  for (const StoredFile& file : all) EXPECT_EQ(file.sha256, Sha256::HexOf(file.video_id));
}

TEST_F(StorageServiceTest, FilteredListPagesThroughTheFilesOfThePartitions) {
  Start(std::chrono::seconds(60), /*list_scan_limit=*/5);
  std::vector<std::pair<std::string, std::string>> keys;
  for (int v = 0; v < 3; ++v) {
    const std::string video = NewVideoId();
    for (int i = 0; i < 15; ++i) {
      const std::string name = absl::StrCat("seg-", i, ".m4s");
      ASSERT_TRUE(client_->PutBytes(video, name, name).ok());
      keys.emplace_back(video, name);
    }
  }
  std::sort(keys.begin(), keys.end());
  auto partition = [](const std::pair<std::string, std::string>& key) {
    return Placement::PartitionOfKey(key.first + "/" + key.second);
  };
  // A run of matches to fill pages, then a long gap to leave some empty.
  std::set<uint32_t> wanted = {partition(keys[30]), partition(keys.back())};
  for (size_t i = 0; i < 6; ++i) wanted.insert(partition(keys[i]));
  std::vector<std::pair<std::string, std::string>> expected;
  size_t gap = 0, longest_gap = 0;
  for (const auto& key : keys) {
    if (wanted.contains(partition(key))) {
      expected.push_back(key);
      longest_gap = std::max(longest_gap, gap);
      gap = 0;
    } else {
      ++gap;
    }
  }

  ListOptions options{.page_size = 2,
                      .partitions = {wanted.begin(), wanted.end()},
                      .partition_bits = Placement::kPartitionBits};
  std::vector<std::pair<std::string, std::string>> listed;
  int pages = 0, empty_pages = 0;
  do {
    auto page = client_->List(options);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_LE(page->files.size(), 2u);
    if (page->files.empty() && !page->next_page_token.empty()) ++empty_pages;
    for (const StoredFile& file : page->files) {
      EXPECT_EQ(file.sha256, Sha256::HexOf(file.name));
      listed.emplace_back(file.video_id, file.name);
    }
    options.page_token = page->next_page_token;
    ASSERT_LT(++pages, 1000);
  } while (!options.page_token.empty());
  EXPECT_EQ(listed, expected);
  // 45 files, at most 5 examined per call.
  EXPECT_GE(pages, 9);
  // A gap of 9 or more non-matching files holds a whole page of 5.
  if (longest_gap >= 9) {
    EXPECT_GT(empty_pages, 0);
  }

  // The unfiltered listing is bounded by the scan limit as well.
  auto page = client_->List("", "", 100);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(page->files, SizeIs(5));
  EXPECT_FALSE(page->next_page_token.empty());
}

TEST_F(StorageServiceTest, BadPartitionFiltersAreInvalidArguments) {
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(client_->List(ListOptions{.partitions = {1}, .partition_bits = 0}).status().code(),
            kInvalid);
  EXPECT_EQ(client_->List(ListOptions{.partitions = {1}, .partition_bits = -3}).status().code(),
            kInvalid);
  EXPECT_EQ(client_->List(ListOptions{.partitions = {1}, .partition_bits = 17}).status().code(),
            kInvalid);
  EXPECT_EQ(client_->List(ListOptions{.partitions = {8}, .partition_bits = 3}).status().code(),
            kInvalid);
  EXPECT_TRUE(client_->List(ListOptions{.partitions = {7}, .partition_bits = 3}).ok());
  EXPECT_TRUE(client_->List(ListOptions{.partition_bits = 40}).ok());

  // Straight to the node, with values the client's types cannot carry.
  for (uint32_t bits : {0u, 17u, 0x80000000u, 0xffffffffu}) {
    SCOPED_TRACE(bits);
    grpc::ClientContext context;
    v1::ListRequest request;
    request.add_partitions(0);
    request.set_partition_bits(bits);
    v1::ListResponse response;
    grpc::Status status = stub_->List(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  }
  grpc::ClientContext context;
  v1::ListRequest request;
  request.add_partitions(1);
  request.add_partitions(4096);
  request.set_partition_bits(12);
  v1::ListResponse response;
  EXPECT_EQ(stub_->List(&context, request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(StorageServiceTest, HintedPutsAreListedAndSurviveARestart) {
  const std::string video = NewVideoId();
  const std::string data = Pattern(300 * 1024, 7);
  const std::string sha = Sha256::HexOf(data);
  auto put = client_->Put(video, "seg", SourceOf(data, 100 * 1024),
                          {.size = data.size(), .hinted_for = "127.0.0.1:9101"});
  ASSERT_TRUE(put.ok()) << put.status();
  ASSERT_TRUE(client_->PutBytes(video, "plain", "not hinted").ok());
  auto other = client_->Put(video, "other", SourceOf("x", 1), {.hinted_for = "node-b"});
  ASSERT_TRUE(other.ok()) << other.status();

  auto hints = client_->ListHints();
  ASSERT_TRUE(hints.ok()) << hints.status();
  ASSERT_THAT(hints->hints, SizeIs(2));
  EXPECT_EQ(hints->hints[0].name, "seg");
  EXPECT_EQ(hints->hints[0].intended_node, "127.0.0.1:9101");
  EXPECT_EQ(hints->hints[0].sha256, sha);
  EXPECT_EQ(hints->hints[0].size, data.size());
  EXPECT_EQ(hints->hints[1].intended_node, "node-b");
  auto for_b = client_->ListHints("node-b");
  ASSERT_TRUE(for_b.ok());
  ASSERT_THAT(for_b->hints, SizeIs(1));
  EXPECT_EQ(for_b->hints[0].name, "other");

  Start(std::chrono::seconds(60));
  hints = client_->ListHints();
  ASSERT_TRUE(hints.ok()) << hints.status();
  EXPECT_THAT(hints->hints, SizeIs(2));
  EXPECT_EQ(GetAll(video, "seg").value_or(""), data);
}

TEST_F(StorageServiceTest, AFailedHintedPutLeavesNoHint) {
  const std::string video = NewVideoId();
  StorageClient::ChunkSource source = SourceOf("some data", 4);
  auto put =
      client_->Put(video, "seg", source, {.sha256 = std::string(64, 'c'), .hinted_for = "node-a"});
  EXPECT_EQ(put.status().code(), absl::StatusCode::kDataLoss) << put.status();
  auto hints = client_->ListHints();
  ASSERT_TRUE(hints.ok());
  EXPECT_THAT(hints->hints, IsEmpty());
  auto bad = client_->Put(video, "seg", SourceOf("x", 1), {.hinted_for = "bad node"});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << bad.status();
}

TEST_F(StorageServiceTest, DropHintDeletesOnlyTheHintedVersion) {
  const std::string video = NewVideoId();
  const std::string v1 = "version one";
  ASSERT_TRUE(client_->Put(video, "a", SourceOf(v1, 4), {.hinted_for = "n1"}).ok());
  ASSERT_TRUE(client_->Put(video, "b", SourceOf(v1, 4), {.hinted_for = "n1"}).ok());
  ASSERT_TRUE(client_->Put(video, "c", SourceOf(v1, 4), {.hinted_for = "n1"}).ok());
  ASSERT_TRUE(client_->Put(video, "c", SourceOf(v1, 4), {.hinted_for = "n2"}).ok());

  // a: the copy is the hinted version: removed with the hint.
  auto dropped = client_->DropHint(video, "a", "n1", Sha256::HexOf(v1));
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_TRUE(dropped->file_deleted);
  EXPECT_EQ(client_->Stat(video, "a").status().code(), absl::StatusCode::kNotFound);
  // Again: no hint any more, nothing happens.
  dropped = client_->DropHint(video, "a", "n1", Sha256::HexOf(v1));
  ASSERT_TRUE(dropped.ok());
  EXPECT_FALSE(dropped->file_deleted);

  // b: replaced by a newer version meanwhile: kept.
  ASSERT_TRUE(client_->PutBytes(video, "b", "version two").ok());
  dropped = client_->DropHint(video, "b", "n1", Sha256::HexOf(v1));
  ASSERT_TRUE(dropped.ok());
  EXPECT_FALSE(dropped->file_deleted);
  EXPECT_TRUE(client_->Stat(video, "b").ok());

  // c: still needed by the hint for n2.
  dropped = client_->DropHint(video, "c", "n1", Sha256::HexOf(v1));
  ASSERT_TRUE(dropped.ok());
  EXPECT_FALSE(dropped->file_deleted);
  EXPECT_TRUE(client_->Stat(video, "c").ok());
  // Without delete: only the hint goes.
  dropped = client_->DropHint(video, "c", "n2");
  ASSERT_TRUE(dropped.ok());
  EXPECT_FALSE(dropped->file_deleted);
  EXPECT_TRUE(client_->Stat(video, "c").ok());
  auto hints = client_->ListHints();
  ASSERT_TRUE(hints.ok());
  EXPECT_THAT(hints->hints, IsEmpty());

  EXPECT_EQ(client_->DropHint("../x", "c", "n1").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->DropHint(video, "c", "").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->DropHint(video, "c", "n1", "abc").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(StorageServiceTest, DropHintKeepsAHintOfANewerVersion) {
  const std::string video = NewVideoId();
  const std::string v1 = "version one";
  const std::string v2 = "version two";
  ASSERT_TRUE(client_->Put(video, "a", SourceOf(v1, 4), {.hinted_for = "n1"}).ok());
  // Rewritten while the owner is still down: the hint now names v2.
  ASSERT_TRUE(client_->Put(video, "a", SourceOf(v2, 4), {.hinted_for = "n1"}).ok());

  // A hand-back of v1 (listed before the rewrite) leaves the hint and the copy.
  auto dropped = client_->DropHint(video, "a", "n1", Sha256::HexOf(v1), Sha256::HexOf(v1));
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_TRUE(dropped->hint_kept);
  EXPECT_FALSE(dropped->file_deleted);
  auto hints = client_->ListHints();
  ASSERT_TRUE(hints.ok());
  ASSERT_EQ(hints->hints.size(), 1u);
  EXPECT_EQ(hints->hints[0].sha256, Sha256::HexOf(v2));
  EXPECT_TRUE(client_->Stat(video, "a").ok());

  // A hand-back of v2 drops it, with the copy.
  dropped = client_->DropHint(video, "a", "n1", Sha256::HexOf(v2), Sha256::HexOf(v2));
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_FALSE(dropped->hint_kept);
  EXPECT_TRUE(dropped->file_deleted);
  hints = client_->ListHints();
  ASSERT_TRUE(hints.ok());
  EXPECT_THAT(hints->hints, IsEmpty());

  EXPECT_EQ(client_->DropHint(video, "a", "n1", std::nullopt, "xyz").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(StorageServiceTest, DeletesDropTheirHints) {
  const std::string video = NewVideoId();
  const std::string other_video = NewVideoId();
  ASSERT_TRUE(client_->Put(video, "a", SourceOf("a", 1), {.hinted_for = "n1"}).ok());
  ASSERT_TRUE(client_->Put(video, "b", SourceOf("b", 1), {.hinted_for = "n1"}).ok());
  ASSERT_TRUE(client_->Put(other_video, "c", SourceOf("c", 1), {.hinted_for = "n1"}).ok());
  ASSERT_TRUE(client_->Delete(video, "a").ok());
  auto hints = client_->ListHints();
  ASSERT_TRUE(hints.ok());
  EXPECT_THAT(hints->hints, SizeIs(2));
  ASSERT_TRUE(client_->DeleteVideo(video).ok());
  hints = client_->ListHints();
  ASSERT_TRUE(hints.ok());
  ASSERT_THAT(hints->hints, SizeIs(1));
  EXPECT_EQ(hints->hints[0].video_id, other_video);
}

TEST_F(StorageServiceTest, APortInUseIsAnError) {
  // gRPC would otherwise share the port (SO_REUSEPORT) and split the traffic.
  auto second = StorageServer::Start(*engine_, {.listen_address = target_});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
}

TEST_F(StorageServiceTest, UnreachableNodeFailsFast) {
  server_->Shutdown(std::chrono::milliseconds(0));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(client_->Stat(NewVideoId(), "x").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(client_->PutBytes(NewVideoId(), "x", "data").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

// A node that requires a cluster token refuses every method of the service,
// streaming ones included, without it or with a wrong one, before doing
// anything; with it, calls go through.
TEST(StorageServiceAuthTest, EveryMethodRequiresTheClusterToken) {
  TempDir dir;
  auto engine = StorageEngine::Open(dir.path() / "data");
  ASSERT_TRUE(engine.ok()) << engine.status();
  auto server = StorageServer::Start(
      **engine, {.service = {.auth = auth::TokenCheck("cluster-secret", "cluster token")}});
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string target = "127.0.0.1:" + std::to_string((*server)->port());
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  const auto& service = *google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
      v1::StorageService::service_full_name());
  ASSERT_EQ(service.method_count(), 11);

  auth::testing::ExpectEveryMethodRequiresToken(channel, service, "cluster-secret");
  // Nothing was stored by the refused calls.
  auto usage = (*engine)->Usage();
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->files, 0u);
}

TEST(StorageServiceAuthTest, ClientSendsItsTokenOnEveryKindOfCall) {
  TempDir dir;
  auto engine = StorageEngine::Open(dir.path() / "data");
  ASSERT_TRUE(engine.ok()) << engine.status();
  auto server = StorageServer::Start(
      **engine, {.service = {.auth = auth::TokenCheck("cluster-secret", "cluster token")}});
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string target = "127.0.0.1:" + std::to_string((*server)->port());

  StorageClient client(target, {.security = {.token = "cluster-secret"}});
  const std::string video = NewVideoId();
  const std::string data = Pattern(3 * kMiB + 17, 5);
  auto put = client.PutBytes(video, "seg", data);
  ASSERT_TRUE(put.ok()) << put.status();
  std::string got;
  auto get = client.Get(video, "seg", 0, 0, [&](std::span<const char> chunk) {
    got.append(chunk.data(), chunk.size());
    return absl::OkStatus();
  });
  ASSERT_TRUE(get.ok()) << get.status();
  EXPECT_EQ(got, data);
  EXPECT_TRUE(client.Stat(video, "seg").ok());
  EXPECT_TRUE(client.Health().ok());
  auto listed = client.List(video);
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_THAT(listed->files, SizeIs(1));

  for (const std::string& token : {std::string(), std::string("cluster-secreT")}) {
    StorageClient other(target, {.security = {.token = token}});
    auto refused = other.PutBytes(video, "other", "data");
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated) << refused.status();
    EXPECT_EQ(other.Delete(video, "seg").code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(other.DeleteVideo(video).status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(other.Health().status().code(), absl::StatusCode::kUnauthenticated);
  }
  // The refused deletes removed nothing.
  EXPECT_TRUE(client.Stat(video, "seg").ok());
  EXPECT_EQ(client.Delete(video, "seg").code(), absl::StatusCode::kOk);
}

}  // namespace
}  // namespace streamgrid::storage
