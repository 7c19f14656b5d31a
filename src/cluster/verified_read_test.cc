// Verified reads through NetworkVideoContentService: a replica that answers
// DATA_LOSS (it found its copy damaged) or whose bytes do not match the
// file's SHA-256 is reported for repair and the read fails over to another
// replica, for whole-file and Range reads, without handing out a bad byte.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cluster/cluster.h"
#include "cluster/network_video_content_service.h"
#include "cluster/test_cluster_options.h"
#include "cluster/test_nodes.h"
#include "common/ids.h"
#include "content/video_content_service_conformance.h"
#include "gmock/gmock.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "proto/storage.grpc.pb.h"

namespace streamgrid {

// Only the conformance library's helpers are used here, not its suite.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(VideoContentServiceConformanceTest);

namespace {

namespace v1 = storage::v1;
using ::testing::HasSubstr;
using testing::TestNodes;

ClusterOptions FastOptions() { return testing::FastClusterOptions(); }

// Flips one byte of `path` at `offset` and puts its modification time back,
// as bit rot would leave it.
void FlipByte(const std::filesystem::path& path, uint64_t offset) {
  const auto mtime = std::filesystem::last_write_time(path);
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(file) << path;
  file.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  file.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  file.seekp(static_cast<std::streamoff>(offset));
  file.write(&c, 1);
  file.close();
  std::filesystem::last_write_time(path, mtime);
}

// Reads the whole of `reader`; its error if any.
absl::StatusOr<std::string> ReadAll(ContentReader& reader) {
  std::string out;
  std::vector<char> buffer(32 * 1024);
  while (true) {
    absl::StatusOr<size_t> n = reader.Read(buffer);
    if (!n.ok()) return n.status();
    if (*n == 0) return out;
    out.append(buffer.data(), *n);
  }
}

// A storage node in front of a real one that behaves as a node checking its
// copy does when the bytes from `bad_offset` on are damaged: a Get reaching
// that offset sends everything before it, then ends with DATA_LOSS; one
// starting at or past it fails with DATA_LOSS at once. Stat and Health are
// passed through.
class DamagedNode final : public v1::StorageService::Service {
 public:
  DamagedNode(const std::string& real_address, uint64_t bad_offset)
      : stub_(v1::StorageService::NewStub(storage::StorageClient::MakeChannel(real_address))),
        bad_offset_(bad_offset) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~DamagedNode() override { server_->Shutdown(std::chrono::system_clock::now()); }

  // Whether Stat answers DATA_LOSS too.
  std::atomic<bool> stat_damaged{false};

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  int gets() const { return gets_; }

  grpc::Status Get(grpc::ServerContext*, const v1::GetRequest* request,
                   grpc::ServerWriter<v1::GetResponse>* writer) override {
    ++gets_;
    const grpc::Status damaged(grpc::StatusCode::DATA_LOSS, "block 0 does not match its checksum");
    if (request->offset() >= bad_offset_) return damaged;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    auto reader = stub_->Get(&context, *request);
    v1::GetResponse message;
    uint64_t position = request->offset();
    while (reader->Read(&message)) {
      const uint64_t size = message.chunk().size();
      if (position + size > bad_offset_) {
        message.mutable_chunk()->resize(bad_offset_ - position);
        writer->Write(message);
        context.TryCancel();
        reader->Finish().ok();
        return damaged;
      }
      writer->Write(message);
      position += size;
    }
    return reader->Finish();
  }

  grpc::Status Stat(grpc::ServerContext*, const v1::StatRequest* request,
                    v1::StatResponse* response) override {
    if (stat_damaged) return grpc::Status(grpc::StatusCode::DATA_LOSS, "the copy is damaged");
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub_->Stat(&context, *request, response);
  }

 private:
  std::unique_ptr<v1::StorageService::Stub> stub_;
  const uint64_t bad_offset_;
  int port_ = 0;
  std::atomic<int> gets_{0};
  std::unique_ptr<grpc::Server> server_;
};

class VerifiedReadTest : public ::testing::Test {
 protected:
  VerifiedReadTest()
      : nodes_(3),
        cluster_(ClusterState{.current = *Placement::Create(nodes_.RingNodes(), 2)}, FastOptions()),
        // Small pieces, so a modest file takes several.
        service_(cluster_, std::chrono::seconds(2), 64 * 1024) {}

  // Stores `data` as `id/name`; returns the index of the node reads try first.
  int Store(const std::string& id, const std::string& name, const std::string& data) {
    EXPECT_TRUE(WriteContent(service_, id, name, data).ok());
    return nodes_.IndexOf(cluster_.ReadNodes(id, name)[0].id);
  }

  std::filesystem::path PathOn(int node, const std::string& id, const std::string& name) {
    return nodes_.DataDir(node) / "content" / id / name;
  }

  // The nodes damage reports name, taken from the queue.
  std::vector<std::string> Reported() {
    std::vector<std::string> ids;
    for (const DamageReport& report : cluster_.TakeDamageReports()) ids.push_back(report.node_id);
    return ids;
  }

  TestNodes nodes_;
  Cluster cluster_;
  NetworkVideoContentService service_;
};

TEST_F(VerifiedReadTest, ASmallFileDamagedOnOneReplicaIsReadFromTheOther) {
  const std::string id = NewVideoId();
  const std::string data = TestBytes(40'000, 3);  // one piece
  const int first = Store(id, "seg.m4s", data);
  FlipByte(PathOn(first, id, "seg.m4s"), 1234);

  auto read = ReadContent(service_, id, "seg.m4s");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(*read == data);
  EXPECT_THAT(Reported(), ::testing::ElementsAre(nodes_.id(first)));
  // The node answered: it is not taken for a failing one.
  EXPECT_TRUE(cluster_.IsHealthy(nodes_.id(first)));
  EXPECT_EQ(cluster_.Liveness(nodes_.id(first)).liveness, NodeLiveness::kUp);
}

TEST_F(VerifiedReadTest, DamageInTheLastPieceOfALargerFileFailsOverBeforeItIsSent) {
  const std::string id = NewVideoId();
  const std::string data = TestBytes(300'000, 4);  // five pieces of 64 KiB
  const int first = Store(id, "original", data);
  FlipByte(PathOn(first, id, "original"), 299'000);

  auto reader = service_.OpenReader(id, "original");
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto read = ReadAll(**reader);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(*read == data);
  EXPECT_THAT(Reported(), ::testing::Contains(nodes_.id(first)));
}

TEST_F(VerifiedReadTest, DamageAlreadySentNeverCompletesTheResponse) {
  const std::string id = NewVideoId();
  const std::string data = TestBytes(300'000, 5);
  const int first = Store(id, "original", data);
  FlipByte(PathOn(first, id, "original"), 100);

  auto reader = service_.OpenReader(id, "original");
  if (!reader.ok()) {
    // A node checking its own copy refuses at once.
    EXPECT_EQ(reader.status().code(), absl::StatusCode::kDataLoss) << reader.status();
  } else {
    auto read = ReadAll(**reader);
    // Either the read failed over before the bad piece left (a node that
    // checks its copy), or it ends with DATA_LOSS instead of its last bytes:
    // never a complete response with a wrong byte.
    if (read.ok()) {
      EXPECT_TRUE(*read == data);
    } else {
      EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss) << read.status();
    }
  }
  EXPECT_THAT(Reported(), ::testing::Contains(nodes_.id(first)));
  // The next whole read still gets the right bytes from the good replica once
  // the damaged one is skipped (repair's business to fix it).
}

TEST_F(VerifiedReadTest, EveryReplicaDamagedIsDataLoss) {
  const std::string id = NewVideoId();
  const std::string data = TestBytes(10'000, 6);
  Store(id, "seg.m4s", data);
  for (int i = 0; i < nodes_.size(); ++i) {
    if (std::filesystem::exists(PathOn(i, id, "seg.m4s"))) FlipByte(PathOn(i, id, "seg.m4s"), 7);
  }
  auto read = ReadContent(service_, id, "seg.m4s");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss) << read.status();
  EXPECT_EQ(Reported().size(), 2u);
}

// A replica answering DATA_LOSS (as a node that checks its blocks does) in a
// cluster view where that node is reached through DamagedNode.
class DamagedReplicaTest : public VerifiedReadTest {
 protected:
  // A view of the same cluster with node `damaged` behind a DamagedNode.
  std::unique_ptr<Cluster> ViewWithDamaged(int damaged, DamagedNode& proxy) {
    std::vector<RingNode> ring = nodes_.RingNodes();
    ring[damaged].address = proxy.address();
    return std::make_unique<Cluster>(ClusterState{.current = *Placement::Create(ring, 2)},
                                     FastOptions());
  }
};

TEST_F(DamagedReplicaTest, WholeAndRangeReadsFailOverWhenANodeFindsItsCopyDamaged) {
  const std::string id = NewVideoId();
  const std::string data = TestBytes(1'000'000, 8);
  const int first = Store(id, "original", data);
  DamagedNode proxy(nodes_.address(first), 500'000);
  std::unique_ptr<Cluster> view = ViewWithDamaged(first, proxy);
  NetworkVideoContentService service(*view, std::chrono::seconds(2), 64 * 1024);
  ASSERT_EQ(view->ReadNodes(id, "original")[0].id, nodes_.id(first));

  struct Case {
    uint64_t offset;
    std::optional<uint64_t> length;
  };
  for (const Case& c :
       {Case{0, std::nullopt}, Case{400'000, 300'000}, Case{600'000, 1000}, Case{499'990, 20}}) {
    auto reader = service.OpenReader(id, "original", c.offset, c.length);
    ASSERT_TRUE(reader.ok()) << c.offset << ": " << reader.status();
    auto read = ReadAll(**reader);
    ASSERT_TRUE(read.ok()) << c.offset << ": " << read.status();
    const std::string want = c.length ? data.substr(c.offset, *c.length) : data.substr(c.offset);
    EXPECT_TRUE(*read == want) << c.offset;
    std::vector<DamageReport> reports = view->TakeDamageReports();
    ASSERT_EQ(reports.size(), 1u) << c.offset;
    EXPECT_EQ(reports[0].node_id, nodes_.id(first));
    EXPECT_EQ(reports[0].video_id, id);
    EXPECT_EQ(reports[0].name, "original");
    EXPECT_THAT(reports[0].reason, HasSubstr("does not match its checksum"));
  }
  EXPECT_GT(proxy.gets(), 0);
  // A damaged copy says nothing against the node.
  EXPECT_TRUE(view->IsHealthy(nodes_.id(first)));
  EXPECT_EQ(view->Liveness(nodes_.id(first)).liveness, NodeLiveness::kUp);
  // Stat: the damaged node's answer is reported, the other replica's used.
  proxy.stat_damaged = true;
  auto stat = service.Stat(id, "original");
  ASSERT_TRUE(stat.ok()) << stat.status();
  EXPECT_EQ(stat->size, data.size());
  std::vector<DamageReport> stat_reports = view->TakeDamageReports();
  ASSERT_EQ(stat_reports.size(), 1u);
  EXPECT_EQ(stat_reports[0].node_id, nodes_.id(first));
  EXPECT_TRUE(view->IsHealthy(nodes_.id(first)));
  proxy.stat_damaged = false;
  // A range before the damage is served by the node as usual.
  auto before = ReadContent(service, id, "original", 0, 1000);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_TRUE(*before == data.substr(0, 1000));
  EXPECT_TRUE(view->TakeDamageReports().empty());
}

}  // namespace
}  // namespace streamgrid
