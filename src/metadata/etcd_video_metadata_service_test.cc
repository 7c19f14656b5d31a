// Runs against a real three-member etcd cluster (etcd on PATH), started once
// for the whole binary; every test keeps its keys under a prefix of its own.
#include "metadata/etcd_video_metadata_service.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "etcd/etcd_client.h"
#include "etcd/testing/etcd_test_cluster.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metadata/video_metadata_service_conformance.h"
#include "nlohmann/json.hpp"

namespace streamgrid {
namespace {

using etcd::EtcdClient;
using etcd::testing::EtcdTestCluster;
using ::testing::HasSubstr;
using ::testing::SizeIs;

// The cluster, started on the main thread before the first test (its members
// die with the thread that forked them) and stopped after the last.
class EtcdEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    auto cluster = EtcdTestCluster::Start(3);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
  }
  void TearDown() override { cluster_.reset(); }

  static EtcdTestCluster* cluster() { return cluster_.get(); }

 private:
  static inline std::unique_ptr<EtcdTestCluster> cluster_;
};

[[maybe_unused]] ::testing::Environment* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new EtcdEnvironment);

std::unique_ptr<EtcdClient> MakeClient(std::vector<std::string> endpoints) {
  auto client = EtcdClient::Create({.endpoints = std::move(endpoints)});
  if (!client.ok()) throw std::runtime_error(client.status().ToString());
  return *std::move(client);
}

// A service over a fresh client and a key prefix no other test uses. The
// destructor deletes the prefix, so the cluster does not fill up.
class EtcdHarness : public MetadataServiceHarness {
 public:
  explicit EtcdHarness(std::vector<std::string> endpoints = {})
      : client_(MakeClient(endpoints.empty() ? Cluster().client_endpoints() : endpoints)),
        prefix_(absl::StrCat("/sgtest/", NewVideoId(), "/")),
        service_(*client_, prefix_) {}
  ~EtcdHarness() override { client_->DeletePrefix(prefix_).IgnoreError(); }

  VideoMetadataService& service() override { return service_; }
  EtcdVideoMetadataService& etcd_service() { return service_; }
  EtcdClient& client() { return *client_; }
  const std::string& prefix() const { return prefix_; }

  static EtcdTestCluster& Cluster() {
    if (EtcdEnvironment::cluster() == nullptr) throw std::runtime_error("no etcd cluster");
    return *EtcdEnvironment::cluster();
  }

 private:
  std::unique_ptr<EtcdClient> client_;
  std::string prefix_;
  EtcdVideoMetadataService service_;
};

INSTANTIATE_TEST_SUITE_P(Etcd, VideoMetadataServiceConformanceTest,
                         ::testing::Values(MetadataServiceFactory{
                             "Etcd", [] { return std::make_unique<EtcdHarness>(); }}),
                         MetadataServiceFactoryName);

class EtcdVideoMetadataServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(EtcdEnvironment::cluster(), nullptr);
    harness_ = std::make_unique<EtcdHarness>();
  }

  EtcdVideoMetadataService& service() { return harness_->etcd_service(); }
  EtcdClient& client() { return harness_->client(); }

  // The ids in the status index, per status name, read straight from etcd.
  std::map<std::string, std::set<std::string>> IndexEntries() {
    const std::string index_prefix = harness_->prefix() + "videos-by-status/";
    auto kvs = client().ListPrefix(index_prefix);
    EXPECT_TRUE(kvs.ok()) << kvs.status();
    std::map<std::string, std::set<std::string>> entries;
    if (!kvs.ok()) return entries;
    for (const etcd::KeyValue& kv : *kvs) {
      std::string rest = kv.key.substr(index_prefix.size());
      size_t slash = rest.find('/');
      EXPECT_NE(slash, std::string::npos) << kv.key;
      EXPECT_EQ(kv.value, "") << kv.key;
      entries[rest.substr(0, slash)].insert(rest.substr(slash + 1));
    }
    return entries;
  }

  std::unique_ptr<EtcdHarness> harness_;
};

TEST_F(EtcdVideoMetadataServiceTest, RecordIsOneJsonKeyPlusAnIndexKey) {
  VideoRecord record = MakeTestRecord(1000, "a.mp4");
  record.renditions = {{"720p", 1280, 720, 2'500'000}};
  ASSERT_TRUE(service().Create(record).ok());
  auto kv = client().Get(harness_->prefix() + "videos/" + record.id);
  ASSERT_TRUE(kv.ok() && kv->has_value()) << kv.status();
  EXPECT_EQ(service().RecordKey(record.id), (*kv)->key);
  nlohmann::json json = nlohmann::json::parse((*kv)->value);
  EXPECT_EQ(json.at("id"), record.id);
  EXPECT_EQ(json.at("title"), "a.mp4");
  EXPECT_EQ(json.at("status"), "processing");
  EXPECT_EQ(json.at("renditions").at(0).at("bitrate"), 2'500'000);
  EXPECT_EQ(service().IndexKey(VideoStatus::kProcessing, record.id),
            harness_->prefix() + "videos-by-status/processing/" + record.id);
  EXPECT_EQ(IndexEntries(),
            (std::map<std::string, std::set<std::string>>{{"processing", {record.id}}}));
}

TEST_F(EtcdVideoMetadataServiceTest, IdenticalCreateIsIdempotent) {
  VideoRecord record = MakeTestRecord(1000);
  ASSERT_TRUE(service().Create(record).ok());
  // What a caller does after a Create that ended UNAVAILABLE.
  EXPECT_TRUE(service().Create(record).ok());
  record.progress = 1;
  EXPECT_EQ(service().Create(record).code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(EtcdVideoMetadataServiceTest, StatusIndexFollowsUpdatesAndDeletes) {
  using Entries = std::map<std::string, std::set<std::string>>;
  VideoRecord a = MakeTestRecord(1000), b = MakeTestRecord(2000), c = MakeTestRecord(3000);
  for (const VideoRecord& r : {a, b, c}) ASSERT_TRUE(service().Create(r).ok());
  EXPECT_EQ(IndexEntries(), (Entries{{"processing", {a.id, b.id, c.id}}}));

  ASSERT_TRUE(service().Update(a.id, [](VideoRecord& r) { r.status = VideoStatus::kReady; }).ok());
  ASSERT_TRUE(service().Update(b.id, [](VideoRecord& r) { r.status = VideoStatus::kFailed; }).ok());
  // A change that keeps the status leaves the index alone.
  ASSERT_TRUE(service().Update(c.id, [](VideoRecord& r) { r.progress = 50; }).ok());
  EXPECT_EQ(IndexEntries(),
            (Entries{{"processing", {c.id}}, {"ready", {a.id}}, {"failed", {b.id}}}));

  ASSERT_TRUE(service().Update(b.id, [](VideoRecord& r) { r.status = VideoStatus::kReady; }).ok());
  ASSERT_TRUE(service().Delete(a.id).ok());
  EXPECT_EQ(IndexEntries(), (Entries{{"processing", {c.id}}, {"ready", {b.id}}}));

  ListOptions options;
  options.status = VideoStatus::kReady;
  auto ready = service().List(options);
  ASSERT_TRUE(ready.ok()) << ready.status();
  ASSERT_THAT(ready->videos, SizeIs(1));
  EXPECT_EQ(ready->videos[0].id, b.id);
  options.status = VideoStatus::kFailed;
  EXPECT_THAT(service().List(options)->videos, SizeIs(0));

  ASSERT_TRUE(service().Delete(b.id).ok());
  ASSERT_TRUE(service().Delete(c.id).ok());
  EXPECT_EQ(IndexEntries(), Entries{});
}

TEST_F(EtcdVideoMetadataServiceTest, ListsTenThousandVideosInPagesOfAThousand) {
  constexpr int kCount = 10'000;
  std::vector<VideoRecord> records;
  std::vector<std::string> all, ready;
  for (int i = 0; i < kCount; ++i) {
    VideoRecord record = MakeTestRecord(1600000000000 + i, "video-" + std::to_string(i));
    record.status = i % 3 == 1 ? VideoStatus::kReady : VideoStatus::kProcessing;
    record.renditions = {{"1080p", 1920, 1080, 5'000'000}, {"720p", 1280, 720, 2'500'000}};
    all.push_back(record.id);
    if (record.status == VideoStatus::kReady) ready.push_back(record.id);
    records.push_back(std::move(record));
  }
  std::sort(all.rbegin(), all.rend());
  std::sort(ready.rbegin(), ready.rend());
  absl::Status created = CreateAll(service(), records, 16);
  ASSERT_TRUE(created.ok()) << created;

  ListOptions options;
  options.page_size = 1000;
  int pages = 0;
  EXPECT_EQ(ListAllIds(service(), options, &pages), all);
  EXPECT_EQ(pages, 10);

  options.status = VideoStatus::kReady;
  EXPECT_EQ(ListAllIds(service(), options, &pages), ready);
  EXPECT_EQ(pages, 4);  // 3333 ready videos
}

TEST_F(EtcdVideoMetadataServiceTest, CorruptRecordIsInternal) {
  VideoRecord record = MakeTestRecord(1000);
  ASSERT_TRUE(service().Create(record).ok());
  const std::string key = service().RecordKey(record.id);
  for (const char* value : {"{not json", R"({"id": 3})", "[]"}) {
    ASSERT_TRUE(client().Put(key, value).ok());
    EXPECT_EQ(service().Get(record.id).status().code(), absl::StatusCode::kInternal) << value;
    EXPECT_EQ(service().List({}).status().code(), absl::StatusCode::kInternal) << value;
    EXPECT_EQ(service().Update(record.id, [](VideoRecord&) {}).status().code(),
              absl::StatusCode::kInternal)
        << value;
  }
  // A record stored under another video's key.
  VideoRecord other = MakeTestRecord(2000);
  ASSERT_TRUE(service().Create(other).ok());
  auto other_value = client().Get(service().RecordKey(other.id));
  ASSERT_TRUE(other_value.ok() && other_value->has_value());
  ASSERT_TRUE(client().Put(key, (*other_value)->value).ok());
  EXPECT_EQ(service().Get(record.id).status().code(), absl::StatusCode::kInternal);
}

TEST_F(EtcdVideoMetadataServiceTest, UnreachableEtcdIsUnavailable) {
  // Port 1 on loopback: nothing listens, so every call fails to connect.
  auto client = EtcdClient::Create({.endpoints = {"127.0.0.1:1"},
                                    .call_timeout = std::chrono::milliseconds(500),
                                    .read_attempts = 2,
                                    .initial_backoff = std::chrono::milliseconds(10)});
  ASSERT_TRUE(client.ok());
  EtcdVideoMetadataService unreachable(**client, "/nowhere/");
  const VideoRecord record = MakeTestRecord(1000);
  for (absl::Status status :
       {unreachable.Create(record), unreachable.Get(record.id).status(),
        unreachable.List({}).status(), unreachable.Update(record.id, [](VideoRecord&) {}).status(),
        unreachable.Delete(record.id), unreachable.Subscribe(record.id, [] {}).status()}) {
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("metadata store (etcd) unavailable"));
  }
}

// What lets one web server answer a wait for a video another one transcodes.
TEST_F(EtcdVideoMetadataServiceTest, SubscribersHearOfAnotherServersWrites) {
  EtcdVideoMetadataService other(client(), harness_->prefix());
  const VideoRecord record = MakeTestRecord(1000);
  std::mutex mu;
  std::condition_variable cv;
  int calls = 0;
  auto subscription = service().Subscribe(record.id, [&] {
    std::lock_guard lock(mu);
    ++calls;
    cv.notify_all();
  });
  ASSERT_TRUE(subscription.ok()) << subscription.status();
  auto wait_past = [&](int mark) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(20), [&] { return calls > mark; });
  };
  ASSERT_TRUE(other.Create(record).ok());
  EXPECT_TRUE(wait_past(0));
  int mark = 0;
  {
    std::lock_guard lock(mu);
    mark = calls;
  }
  ASSERT_TRUE(other.Update(record.id, [](VideoRecord& r) { r.status = VideoStatus::kReady; }).ok());
  EXPECT_TRUE(wait_past(mark));
}

// Calls so short that many writes time out after reaching etcd: whatever each
// call answers must be true of the store afterwards. Deadlines of 1 to 6 ms in
// turn, so that some of the reads settling an outcome fail too.
TEST_F(EtcdVideoMetadataServiceTest, AmbiguousWritesAreSettledByReading) {
  std::vector<std::unique_ptr<EtcdClient>> clients;
  std::vector<std::unique_ptr<EtcdVideoMetadataService>> hurried;
  for (int ms : {1, 2, 3, 4, 6}) {
    auto client = EtcdClient::Create({.endpoints = EtcdHarness::Cluster().client_endpoints(),
                                      .call_timeout = std::chrono::milliseconds(ms),
                                      .read_attempts = 3,
                                      .initial_backoff = std::chrono::milliseconds(1)});
    ASSERT_TRUE(client.ok());
    clients.push_back(*std::move(client));
    hurried.push_back(
        std::make_unique<EtcdVideoMetadataService>(*clients.back(), harness_->prefix()));
  }

  constexpr int kCreates = 100;
  std::vector<VideoRecord> created;
  int create_errors = 0;
  for (int i = 0; i < kCreates; ++i) {
    VideoRecord record = MakeTestRecord(5000 + i);
    absl::Status status = hurried[i % hurried.size()]->Create(record);
    if (status.ok()) {
      created.push_back(record);
    } else {
      ++create_errors;
      EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    }
  }
  // Every acknowledged create is there, exactly as written.
  for (const VideoRecord& record : created) EXPECT_EQ(service().Get(record.id).value(), record);

  VideoRecord counter = MakeTestRecord(1000);
  ASSERT_TRUE(service().Create(counter).ok());
  constexpr int kUpdates = 200;
  int acknowledged = 0, unknown = 0;
  for (int i = 0; i < kUpdates; ++i) {
    auto updated =
        hurried[i % hurried.size()]->Update(counter.id, [](VideoRecord& r) { ++r.progress; });
    if (updated.ok()) {
      ++acknowledged;
    } else {
      EXPECT_EQ(updated.status().code(), absl::StatusCode::kUnavailable) << updated.status();
      ++unknown;
    }
  }
  // Each acknowledged increment applied exactly once, each failed one at most
  // once. A write still queued inside etcd may land late: poll until the count
  // stops moving.
  int progress = -1;
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);;) {
    int now = service().Get(counter.id).value().progress;
    if (now == progress || std::chrono::steady_clock::now() > deadline) break;
    progress = now;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_GE(progress, acknowledged);
  EXPECT_LE(progress, acknowledged + unknown);
  std::printf("creates: %zu acknowledged, %d failed; updates: %d acknowledged, %d unknown\n",
              created.size(), create_errors, acknowledged, unknown);
}

TEST_F(EtcdVideoMetadataServiceTest, KeepsWorkingWithTheLeaderKilled) {
  EtcdTestCluster& cluster = EtcdHarness::Cluster();
  auto leader = cluster.WaitForLeader(std::chrono::seconds(15));
  ASSERT_TRUE(leader.ok()) << leader.status();
  // The killed member first, so the client starts out preferring it.
  std::vector<std::string> endpoints = cluster.client_endpoints();
  std::rotate(endpoints.begin(), endpoints.begin() + *leader, endpoints.end());
  EtcdHarness harness(endpoints);
  EtcdVideoMetadataService& svc = harness.etcd_service();
  VideoRecord before = MakeTestRecord(1000);
  ASSERT_TRUE(svc.Create(before).ok());

  ASSERT_TRUE(cluster.Kill(*leader).ok());
  struct Restart {
    EtcdTestCluster& cluster;
    int member;
    ~Restart() {
      EXPECT_TRUE(cluster.Restart(member).ok());
      EXPECT_TRUE(cluster.WaitClusterHealthy(std::chrono::seconds(30)).ok());
    }
  } restart{cluster, *leader};
  auto new_leader = cluster.WaitForLeader(std::chrono::seconds(15), *leader);
  ASSERT_TRUE(new_leader.ok()) << new_leader.status();

  VideoRecord after = MakeTestRecord(2000);
  absl::Status created = svc.Create(after);
  ASSERT_TRUE(created.ok()) << created;
  auto got = svc.Get(before.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, before);
  auto updated = svc.Update(before.id, [](VideoRecord& r) { r.status = VideoStatus::kReady; });
  ASSERT_TRUE(updated.ok()) << updated.status();
  auto page = svc.List({});
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_THAT(page->videos, SizeIs(2));
  EXPECT_EQ(page->videos[0].id, after.id);
  EXPECT_EQ(page->videos[1], *updated);
  ListOptions ready;
  ready.status = VideoStatus::kReady;
  page = svc.List(ready);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_THAT(page->videos, SizeIs(1));
  EXPECT_EQ(page->videos[0].id, before.id);
  EXPECT_TRUE(svc.Delete(after.id).ok());
}

}  // namespace
}  // namespace streamgrid
