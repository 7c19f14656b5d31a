#include "etcd/watcher.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "etcd/testing/etcd_test_cluster.h"
#include "gmock/gmock.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"

namespace streamgrid::etcd {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using testing::EtcdTestCluster;
using testing::Eventually;
using testing::SharedEtcdClusterTest;
using namespace std::chrono_literals;

// One delivered event, as the tests compare them.
struct Change {
  WatchEvent::Type type;
  std::string key;
  int64_t revision;
  bool operator==(const Change&) const = default;
};

void PrintTo(const Change& change, std::ostream* out) {
  *out << (change.type == WatchEvent::kPut ? "put " : "delete ") << change.key << "@"
       << change.revision;
}

Change Put(std::string key, int64_t revision) {
  return {WatchEvent::kPut, std::move(key), revision};
}
Change Del(std::string key, int64_t revision) {
  return {WatchEvent::kDelete, std::move(key), revision};
}

// Keeps every batch a watcher delivers, for the test thread to wait on.
class Recorder {
 public:
  Watcher::Handler Handler() {
    return [this](const WatchBatch& batch) {
      std::lock_guard lock(mu_);
      batches_.push_back(batch);
      cv_.notify_all();
    };
  }

  // Waits until `done` holds for the batches so far; false after `timeout`.
  bool WaitUntil(const std::function<bool(const std::vector<WatchBatch>&)>& done,
                 std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return done(batches_); });
  }
  // Waits until an event at `revision` or later has arrived.
  bool WaitForRevision(int64_t revision, std::chrono::milliseconds timeout = 15s) {
    return WaitUntil(
        [revision](const std::vector<WatchBatch>& batches) {
          return !batches.empty() && batches.back().revision >= revision;
        },
        timeout);
  }

  std::vector<WatchBatch> batches() {
    std::lock_guard lock(mu_);
    return batches_;
  }
  // Every event of every batch, in delivery order.
  std::vector<Change> changes() {
    std::vector<Change> all;
    for (const WatchBatch& batch : batches()) {
      for (const WatchEvent& event : batch.events) {
        all.push_back({event.type, event.kv.key, event.kv.mod_revision});
      }
    }
    return all;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<WatchBatch> batches_;  // guarded by mu_
};

// A port that accepts TCP connections (the kernel does) but never answers:
// a member that hangs.
class BlackHole {
 public:
  BlackHole() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&address), length) == 0 && listen(fd_, 16) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
      port_ = ntohs(address.sin_port);
    }
  }
  ~BlackHole() { close(fd_); }
  std::string endpoint() const { return absl::StrCat("127.0.0.1:", port_); }
  bool ok() const { return port_ != 0; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A Watch service that takes streams and never answers them: a member that is
// up but stuck.
class SilentWatchServer {
 public:
  SilentWatchServer() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~SilentWatchServer() {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + 1s);
  }
  std::string endpoint() const { return absl::StrCat("127.0.0.1:", port_); }
  bool ok() const { return server_ != nullptr && port_ != 0; }
  int streams() const { return service_.streams; }

 private:
  struct Service : etcdserverpb::Watch::Service {
    grpc::Status Watch(grpc::ServerContext* context,
                       grpc::ServerReaderWriter<etcdserverpb::WatchResponse,
                                                etcdserverpb::WatchRequest>* stream) override {
      ++streams;
      etcdserverpb::WatchRequest request;
      while (stream->Read(&request)) {
      }
      return grpc::Status::OK;
    }
    std::atomic<int> streams = 0;
  };

  int port_ = 0;
  Service service_;
  std::unique_ptr<grpc::Server> server_;
};

std::unique_ptr<EtcdClient> NewClient(std::vector<std::string> endpoints,
                                      std::chrono::milliseconds call_timeout = 5s) {
  auto client =
      EtcdClient::Create({.endpoints = std::move(endpoints), .call_timeout = call_timeout});
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

// `endpoints` turned so that element `first` comes first: a client prefers
// its first endpoint.
std::vector<std::string> Rotated(std::vector<std::string> endpoints, int first) {
  std::rotate(endpoints.begin(), endpoints.begin() + first, endpoints.end());
  return endpoints;
}

// One 3-member cluster for the suite; tests use their own key prefixes and
// restart the members they kill.
class WatcherTest : public SharedEtcdClusterTest {
 protected:
  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    client_ = NewClient(cluster_->client_endpoints());
    ASSERT_NE(client_, nullptr);
  }

  int64_t MustPut(const std::string& key, const std::string& value) {
    absl::StatusOr<int64_t> revision = client_->Put(key, value);
    EXPECT_TRUE(revision.ok()) << revision.status();
    return revision.value_or(-1);
  }
  int64_t MustCommit(const Txn& txn) {
    absl::StatusOr<TxnResult> result = client_->Commit(txn);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? result->revision : -1;
  }

  std::unique_ptr<EtcdClient> client_;
};

TEST_F(WatcherTest, DeliversChangesUnderThePrefixInOrder) {
  Recorder recorder;
  auto watcher = Watcher::Start(*client_, {.prefix = "order/"}, recorder.Handler());
  ASSERT_TRUE(Eventually([&] { return watcher->healthy(); }, 10s));
  EXPECT_GT(watcher->last_revision(), 0);

  const int64_t r1 = MustPut("order/a", "1");
  MustPut("order", "outside");
  MustPut("orderx/a", "outside");
  const int64_t r2 = MustPut("order/b", "1");
  const int64_t r3 = MustPut("order/a", "2");
  const int64_t r4 = MustCommit(Txn().ThenDelete("order/a"));
  const int64_t r5 = MustCommit(Txn().ThenPut("order/c", "1").ThenPut("order/d", "1"));
  const int64_t r6 = MustCommit(Txn().ThenDeletePrefix("order/"));
  // A last change, so that anything wrongly delivered before it shows.
  const int64_t r7 = MustPut("order/z", "end");

  ASSERT_TRUE(recorder.WaitForRevision(r7)) << ::testing::PrintToString(recorder.changes());
  EXPECT_THAT(
      recorder.changes(),
      ElementsAre(Put("order/a", r1), Put("order/b", r2), Put("order/a", r3), Del("order/a", r4),
                  Put("order/c", r5), Put("order/d", r5), Del("order/b", r6), Del("order/c", r6),
                  Del("order/d", r6), Put("order/z", r7)));
  const std::vector<WatchBatch> batches = recorder.batches();
  for (const WatchBatch& batch : batches) {
    EXPECT_FALSE(batch.reset);
    ASSERT_FALSE(batch.events.empty());
    EXPECT_EQ(batch.revision, batch.events.back().kv.mod_revision);
  }
  EXPECT_EQ(batches.back().events.back().kv.value, "end");
  // last_revision() moves on once the handler has returned, which may be a
  // moment after the recorder saw the batch.
  EXPECT_TRUE(Eventually([&] { return watcher->last_revision() == r7; }, 5s))
      << watcher->last_revision() << " != " << r7;

  watcher->Stop();
  watcher->Stop();  // idempotent
  EXPECT_FALSE(watcher->healthy());
}

TEST_F(WatcherTest, ReplaysHistoryFromStartRevisionWithPreviousValues) {
  const int64_t r1 = MustPut("hist/a", "v1");
  const int64_t r2 = MustPut("hist/a", "v2");
  const int64_t r3 = MustCommit(Txn().ThenDelete("hist/a"));

  Recorder recorder;
  auto watcher = Watcher::Start(
      *client_, {.prefix = "hist/", .start_revision = r1, .prev_kv = true}, recorder.Handler());
  ASSERT_TRUE(recorder.WaitForRevision(r3));
  EXPECT_THAT(recorder.changes(),
              ElementsAre(Put("hist/a", r1), Put("hist/a", r2), Del("hist/a", r3)));

  std::vector<WatchEvent> events;
  for (const WatchBatch& batch : recorder.batches()) {
    events.insert(events.end(), batch.events.begin(), batch.events.end());
  }
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].kv.value, "v1");
  EXPECT_EQ(events[0].prev_kv, std::nullopt);
  EXPECT_EQ(events[1].kv.value, "v2");
  ASSERT_TRUE(events[1].prev_kv.has_value());
  EXPECT_EQ(events[1].prev_kv->value, "v1");
  ASSERT_TRUE(events[2].prev_kv.has_value());
  EXPECT_EQ(events[2].prev_kv->value, "v2");
  EXPECT_EQ(events[2].prev_kv->mod_revision, r2);

  // A start in the future waits for it.
  Recorder later;
  auto future =
      Watcher::Start(*client_, {.prefix = "hist/", .start_revision = r3 + 3}, later.Handler());
  MustPut("hist/b", "1");
  MustPut("hist/b", "2");
  const int64_t r6 = MustPut("hist/b", "3");
  ASSERT_EQ(r6, r3 + 3) << "another writer in the cluster";
  ASSERT_TRUE(later.WaitForRevision(r6));
  EXPECT_THAT(later.changes(), ElementsAre(Put("hist/b", r6)));
}

// The watcher's member (the leader, so an election happens too) is killed
// while a writer keeps writing: after the watcher moves to another member,
// every change arrives exactly once, in order.
TEST_F(WatcherTest, DeliversEveryChangeOnceAcrossAKilledMember) {
  absl::StatusOr<int> leader = cluster_->LeaderIndex();
  ASSERT_TRUE(leader.ok()) << leader.status();
  const std::vector<std::string> endpoints = cluster_->client_endpoints();
  auto watch_client = NewClient(Rotated(endpoints, *leader));
  // The writer starts on a follower and gives up on a write in 2 s.
  auto write_client = NewClient(Rotated(endpoints, (*leader + 1) % 3), 2s);
  ASSERT_TRUE(watch_client && write_client);

  Recorder recorder;
  auto watcher = Watcher::Start(*watch_client, {.prefix = "kill/"}, recorder.Handler());
  ASSERT_TRUE(Eventually([&] { return watcher->healthy(); }, 10s));

  std::atomic<bool> stop_writing = false;
  std::atomic<int> written = 0;
  std::mutex mu;
  std::vector<Change> acknowledged;  // guarded by mu
  std::thread writer([&] {
    for (int i = 0; i < 2000 && !stop_writing; ++i) {
      const std::string key = absl::StrCat("kill/k", 10000 + i);
      // A failed write may still have been applied; the final listing says.
      absl::StatusOr<int64_t> revision = write_client->Put(key, "v");
      if (revision.ok()) {
        std::lock_guard lock(mu);
        acknowledged.push_back(Put(key, *revision));
      } else {
        std::this_thread::sleep_for(20ms);
      }
      ++written;
    }
  });

  ASSERT_TRUE(Eventually([&] { return written >= 30; }, 10s));
  ASSERT_TRUE(cluster_->Kill(*leader).ok());
  const int written_at_kill = written;
  // The watcher must come back and see writes made well after the kill.
  const bool resumed = Eventually(
      [&] {
        return written >= written_at_kill + 40 && watcher->healthy() &&
               recorder.changes().size() >= static_cast<size_t>(written_at_kill + 20);
      },
      20s);
  stop_writing = true;
  writer.join();
  ASSERT_TRUE(resumed) << "written " << written << ", delivered " << recorder.changes().size();

  int64_t listed_at = 0;
  absl::StatusOr<std::vector<KeyValue>> listed = client_->ListPrefix("kill/", 500, &listed_at);
  ASSERT_TRUE(listed.ok()) << listed.status();
  std::vector<Change> expected;
  for (const KeyValue& kv : *listed) expected.push_back(Put(kv.key, kv.mod_revision));
  std::sort(expected.begin(), expected.end(),
            [](const Change& a, const Change& b) { return a.revision < b.revision; });
  ASSERT_FALSE(expected.empty());
  {
    std::lock_guard lock(mu);
    for (const Change& change : acknowledged) {
      EXPECT_NE(std::find(expected.begin(), expected.end(), change), expected.end()) << change.key;
    }
  }
  ASSERT_TRUE(recorder.WaitForRevision(expected.back().revision));
  EXPECT_THAT(recorder.changes(), ElementsAreArray(expected));

  watcher->Stop();
  ASSERT_TRUE(cluster_->Restart(*leader).ok());
  ASSERT_TRUE(cluster_->WaitClusterHealthy().ok());
}

TEST_F(WatcherTest, ResetsWhenItsStartRevisionWasCompacted) {
  const int64_t r1 = MustPut("compact/a", "1");
  MustPut("compact/a", "2");
  const int64_t r3 = MustPut("compact/b", "1");
  ASSERT_TRUE(client_->Compact(r3).ok());

  Recorder recorder;
  auto watcher =
      Watcher::Start(*client_, {.prefix = "compact/", .start_revision = r1}, recorder.Handler());
  ASSERT_TRUE(recorder.WaitUntil(
      [](const std::vector<WatchBatch>& batches) { return !batches.empty(); }, 10s));
  const int64_t r4 = MustPut("compact/c", "1");
  ASSERT_TRUE(recorder.WaitForRevision(r4));

  const std::vector<WatchBatch> batches = recorder.batches();
  ASSERT_TRUE(batches.front().reset);
  EXPECT_TRUE(batches.front().events.empty());
  // It goes on from the compaction's revision, the oldest etcd still has.
  EXPECT_EQ(batches.front().revision, r3 - 1);
  for (size_t i = 1; i < batches.size(); ++i) EXPECT_FALSE(batches[i].reset);
  EXPECT_THAT(recorder.changes(), ElementsAre(Put("compact/b", r3), Put("compact/c", r4)));
}

// Members that never answer, one at the TCP level and one at the watch
// level: the attempt on each is given up for the next member.
TEST_F(WatcherTest, MovesOnFromMembersThatNeverAnswer) {
  BlackHole hole;
  SilentWatchServer silent;
  ASSERT_TRUE(hole.ok() && silent.ok());
  std::vector<std::string> endpoints = {hole.endpoint(), silent.endpoint()};
  for (const std::string& endpoint : cluster_->client_endpoints()) endpoints.push_back(endpoint);
  auto watch_client = NewClient(endpoints);
  ASSERT_NE(watch_client, nullptr);

  Recorder recorder;
  auto watcher = Watcher::Start(*watch_client, {.prefix = "hang/", .create_timeout = 500ms},
                                recorder.Handler());
  ASSERT_TRUE(Eventually([&] { return watcher->healthy(); }, 10s));
  EXPECT_EQ(silent.streams(), 1);
  const int64_t revision = MustPut("hang/a", "1");
  ASSERT_TRUE(recorder.WaitForRevision(revision));
  EXPECT_THAT(recorder.changes(), ElementsAre(Put("hang/a", revision)));
}

TEST(WatcherStopTest, StopIsPromptWhileConnectingToAMemberThatNeverAnswers) {
  BlackHole hole;
  ASSERT_TRUE(hole.ok());
  auto client = NewClient({hole.endpoint()});
  ASSERT_NE(client, nullptr);
  auto watcher =
      Watcher::Start(*client, {.prefix = "x/", .create_timeout = 30s}, [](const WatchBatch&) {});
  std::this_thread::sleep_for(100ms);  // into the connection attempt; not needed for correctness
  const auto start = std::chrono::steady_clock::now();
  watcher->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_FALSE(watcher->healthy());
}

TEST(WatcherStopTest, StopIsPromptWhileAMemberNeverConfirmsTheWatch) {
  SilentWatchServer silent;
  ASSERT_TRUE(silent.ok());
  auto client = NewClient({silent.endpoint()});
  ASSERT_NE(client, nullptr);
  auto watcher =
      Watcher::Start(*client, {.prefix = "x/", .create_timeout = 30s}, [](const WatchBatch&) {});
  ASSERT_TRUE(Eventually([&] { return silent.streams() == 1; }, 5s));
  const auto start = std::chrono::steady_clock::now();
  watcher->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_FALSE(watcher->healthy());
}

TEST(WatcherStopTest, StopIsPromptWhenAllMembersAreDown) {
  auto cluster = EtcdTestCluster::Start(3);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto client = NewClient((*cluster)->client_endpoints());
  ASSERT_NE(client, nullptr);
  auto watcher = Watcher::Start(*client, {.prefix = "down/"}, [](const WatchBatch&) {});
  ASSERT_TRUE(Eventually([&] { return watcher->healthy(); }, 10s));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*cluster)->Kill(i).ok());
  ASSERT_TRUE(Eventually([&] { return !watcher->healthy(); }, 10s));
  // Let it go through a few failed attempts and back-offs.
  std::this_thread::sleep_for(500ms);
  const auto start = std::chrono::steady_clock::now();
  watcher->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

TEST(WatcherStopTest, StopFromTheHandlerEndsTheWatcher) {
  auto cluster = EtcdTestCluster::Start(1);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto client = NewClient((*cluster)->client_endpoints());
  ASSERT_NE(client, nullptr);
  std::atomic<int> calls = 0;
  std::atomic<Watcher*> self = nullptr;
  auto watcher = Watcher::Start(*client, {.prefix = "self/"}, [&](const WatchBatch&) {
    ++calls;
    self.load()->Stop();
  });
  self = watcher.get();
  ASSERT_TRUE(Eventually([&] { return watcher->healthy(); }, 10s));
  ASSERT_TRUE(client->Put("self/a", "1").ok());
  ASSERT_TRUE(Eventually([&] { return calls == 1 && !watcher->healthy(); }, 10s));
  ASSERT_TRUE(client->Put("self/b", "1").ok());
  watcher.reset();  // joins
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace streamgrid::etcd
