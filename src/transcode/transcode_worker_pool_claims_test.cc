// Two TranscodeWorkerPools standing for two web servers: etcd job claims
// (a real 3-member cluster), one metadata store and one content directory.

#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "content/local_video_content_service.h"
#include "etcd/testing/etcd_test_cluster.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metadata/sqlite_video_metadata_service.h"
#include "transcode/etcd_job_claims.h"
#include "transcode/testing/test_media.h"
#include "transcode/testing/worker_pool_fixture.h"
#include "transcode/transcode_worker_pool.h"

namespace streamgrid {
namespace {

namespace fs = std::filesystem;
using etcd::testing::SharedEtcdClusterTest;
using ::testing::ElementsAre;
using Clock = std::chrono::steady_clock;
using pool_testing::WaitFor;
using std::chrono::milliseconds;

// Long enough that keep-alives do not miss it on a loaded 2-core machine.
constexpr auto kLeaseTtl = std::chrono::seconds(4);

class TranscodeWorkerPoolClaimsTest : public SharedEtcdClusterTest {
 protected:
  // One web server: its own etcd client, claims and pool.
  struct Server {
    std::unique_ptr<etcd::EtcdClient> client;
    std::unique_ptr<EtcdJobClaims> claims;
    std::unique_ptr<TranscodeWorkerPool> pool;
  };

  static void SetUpTestSuite() {
    SharedEtcdClusterTest::SetUpTestSuite();
    media_ = new testing::LazyMedia({
        {"clip.mp4",
         [](const fs::path& p) {
           return testing::MakeTestVideo(
               p, testing::TestVideoSpec{.width = 320, .height = 240, .seconds = 2});
         }},
        {"long.mp4",
         [](const fs::path& p) {
           return testing::MakeTestVideo(
               p, testing::TestVideoSpec{.width = 320, .height = 240, .seconds = 6});
         }},
        {"slow-ffmpeg", testing::WriteSlowFfmpeg},
    });
  }
  static void TearDownTestSuite() {
    delete media_;
    media_ = nullptr;
    SharedEtcdClusterTest::TearDownTestSuite();
  }
  static fs::path Media(const std::string& name) {
    absl::StatusOr<fs::path> path = media_->Get(name);
    EXPECT_TRUE(path.ok()) << path.status();
    return path.value_or(media_->dir() / name);
  }

  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    auto metadata = SqliteVideoMetadataService::Open(dir_.path() / "meta.db");
    ASSERT_TRUE(metadata.ok()) << metadata.status();
    metadata_ = *std::move(metadata);
    auto content = LocalVideoContentService::Open(dir_.path() / "content");
    ASSERT_TRUE(content.ok()) << content.status();
    content_ = *std::move(content);
    prefix_ =
        absl::StrCat("/", ::testing::UnitTest::GetInstance()->current_test_info()->name(), "/");
  }

  void TearDown() override {
    // Pools before the claims they use.
    for (Server& server : servers_) server.pool.reset();
  }

  Server& NewServer(const std::string& id, bool slow = false) {
    Server server;
    auto client = etcd::EtcdClient::Create({.endpoints = cluster_->client_endpoints()});
    EXPECT_TRUE(client.ok()) << client.status();
    server.client = *std::move(client);
    auto claims = EtcdJobClaims::Create(
        *server.client, {.server_id = id, .key_prefix = prefix_, .lease_ttl = kLeaseTtl});
    EXPECT_TRUE(claims.ok()) << claims.status();
    server.claims = *std::move(claims);
    TranscodeWorkerPoolOptions options;
    options.workers = 1;
    options.work_dir = dir_.path() / ("work-" + id);
    options.progress_interval = milliseconds(100);
    options.claims = server.claims.get();
    options.rescan_interval = milliseconds(200);
    if (slow) options.transcode.ffmpeg = Media("slow-ffmpeg").string();
    server.pool = std::make_unique<TranscodeWorkerPool>(*metadata_, *content_, options);
    servers_.push_back(std::move(server));
    return servers_.back();
  }

  std::string NewUpload(const fs::path& original) {
    return pool_testing::NewUploadIn(*metadata_, *content_, original);
  }

  VideoRecord Record(const std::string& id) { return pool_testing::RecordOf(*metadata_, id); }

  std::vector<std::string> Files(const std::string& id) {
    return pool_testing::FileNames(*content_, id);
  }

  // The claim key's value (the holder's server id), "" when unclaimed.
  std::string Holder(Server& server, const std::string& id) {
    auto kv = server.client->Get(server.claims->ClaimKey(id));
    return kv.ok() && kv->has_value() ? (*kv)->value : "";
  }

  static testing::LazyMedia* media_;
  testing::TempDir dir_;
  std::string prefix_;
  std::unique_ptr<SqliteVideoMetadataService> metadata_;
  std::unique_ptr<LocalVideoContentService> content_;
  std::deque<Server> servers_;
};

testing::LazyMedia* TranscodeWorkerPoolClaimsTest::media_ = nullptr;

TEST_F(TranscodeWorkerPoolClaimsTest, JobsRunOnceAndSpreadOverIdleServers) {
  constexpr int kVideos = 4;
  std::vector<std::string> ids;
  for (int i = 0; i < kVideos; ++i) ids.push_back(NewUpload(Media("clip.mp4")));
  Server& a = NewServer("A");
  Server& b = NewServer("B");
  a.pool->Start();
  b.pool->Start();
  // Every upload went through A; B learns of them by rescanning.
  for (const std::string& id : ids) a.pool->Enqueue(id);

  ASSERT_TRUE(WaitFor([&] {
    for (const std::string& id : ids) {
      if (Record(id).status == VideoStatus::kProcessing) return false;
    }
    return true;
  }));
  for (const std::string& id : ids) {
    VideoRecord record = Record(id);
    EXPECT_EQ(record.status, VideoStatus::kReady) << id << ": " << record.error;
    EXPECT_EQ(record.progress, 100);
  }
  ASSERT_TRUE(WaitFor([&] { return a.pool->running() == 0 && b.pool->running() == 0; }));
  TranscodeWorkerPool::JobCounts on_a = a.pool->counts();
  TranscodeWorkerPool::JobCounts on_b = b.pool->counts();
  // A job that ran twice would have been marked ready twice.
  EXPECT_EQ(on_a.ready + on_b.ready, kVideos);
  EXPECT_GE(on_a.ready, 1u);
  EXPECT_GE(on_b.ready, 1u);
  // A job may be interrupted (its server's lease missed on a loaded machine)
  // and finished by the other server; none may fail.
  EXPECT_EQ(on_a.failed + on_b.failed, 0u);
  // Every claim was released.
  for (const std::string& id : ids) EXPECT_EQ(Holder(a, id), "") << id;
}

TEST_F(TranscodeWorkerPoolClaimsTest, ADeadServersJobIsTakenOverAfterItsLease) {
  std::string id = NewUpload(Media("long.mp4"));
  Server& a = NewServer("A", /*slow=*/true);
  Server& b = NewServer("B");
  a.pool->Start();
  fs::path local = dir_.path() / "upload.tmp";
  fs::copy_file(Media("long.mp4"), local);
  a.pool->Enqueue(id, local);
  ASSERT_TRUE(WaitFor([&] { return Record(id).progress > 0; }));
  ASSERT_EQ(Holder(a, id), "A");
  b.pool->Start();

  // A "dies": its job stops there, and its claim outlives it by the TTL.
  const Clock::time_point died = Clock::now();
  a.claims->AbandonForTesting();
  ASSERT_TRUE(WaitFor([&] { return a.pool->counts().claim_lost == 1; }, milliseconds(10'000)));
  // The worker counts the loss before it finishes unwinding the job.
  EXPECT_TRUE(WaitFor([&] { return a.pool->running() == 0; }));
  VideoRecord left = Record(id);
  EXPECT_EQ(left.status, VideoStatus::kProcessing);
  EXPECT_TRUE(left.error.empty());

  // B's rescan finds the video and claims it once A's lease has expired; it
  // reads the original from content (A's local copy is gone with A).
  ASSERT_TRUE(WaitFor([&] { return Record(id).status != VideoStatus::kProcessing; }));
  EXPECT_GE(Clock::now() - died, kLeaseTtl - milliseconds(500));
  VideoRecord record = Record(id);
  EXPECT_EQ(record.status, VideoStatus::kReady) << record.error;
  ASSERT_TRUE(WaitFor([&] { return b.pool->running() == 0; }));
  EXPECT_EQ(b.pool->counts().ready, 1u);
  EXPECT_EQ(a.pool->counts().ready, 0u);
  EXPECT_EQ(a.pool->counts().failed + b.pool->counts().failed, 0u);
  EXPECT_THAT(Files(id), ::testing::Contains("manifest.mpd"));
}

TEST_F(TranscodeWorkerPoolClaimsTest, ALostLeaseCancelsTheJobWithoutFailingIt) {
  std::string id = NewUpload(Media("long.mp4"));
  Server& a = NewServer("A", /*slow=*/true);
  Server& b = NewServer("B");
  a.pool->Start();
  a.pool->Enqueue(id);
  ASSERT_TRUE(WaitFor([&] { return Record(id).progress > 0; }));
  ASSERT_EQ(Holder(a, id), "A");
  b.pool->Start();

  // etcd ends A's lease (as after a partition longer than the TTL).
  const int64_t lease = a.claims->lease_id();
  {
    etcdserverpb::Lease::Stub stub(a.client->PreferredChannel(nullptr));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    etcdserverpb::LeaseRevokeRequest request;
    request.set_id(lease);
    etcdserverpb::LeaseRevokeResponse response;
    ASSERT_TRUE(stub.LeaseRevoke(&context, request, &response).ok());
  }
  ASSERT_TRUE(WaitFor([&] { return a.pool->counts().claim_lost == 1; }, milliseconds(10'000)));
  EXPECT_NE(Record(id).status, VideoStatus::kFailed);
  EXPECT_TRUE(Record(id).error.empty());

  // Whichever server claims it next (A has a new lease by then) completes it, once.
  ASSERT_TRUE(WaitFor([&] { return Record(id).status != VideoStatus::kProcessing; }));
  EXPECT_EQ(Record(id).status, VideoStatus::kReady) << Record(id).error;
  ASSERT_TRUE(WaitFor([&] { return a.pool->running() == 0 && b.pool->running() == 0; }));
  EXPECT_EQ(a.pool->counts().ready + b.pool->counts().ready, 1u);
  EXPECT_EQ(a.pool->counts().failed + b.pool->counts().failed, 0u);
}

}  // namespace
}  // namespace streamgrid
