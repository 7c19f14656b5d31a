// The replicated write against real in-process storage nodes, one of which
// stops reading in the middle of a file.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "cluster/cluster.h"
#include "cluster/network_video_content_service.h"
#include "cluster/test_cluster_options.h"
#include "cluster/test_nodes.h"
#include "common/ids.h"
#include "gtest/gtest.h"
#include "storage/env.h"
#include "storage/testing/forwarding_env.h"

namespace streamgrid {
namespace {

namespace fs = std::filesystem;
using storage::Env;
using storage::FileStat;
using storage::WritableFile;

// Passes everything to `base` (see ForwardingEnv), except that once `hang_after` bytes have been
// appended to files, the next Append blocks until Release() (or a minute
// passed): a node whose disk stopped answering, so that it stops reading its
// streams and gRPC flow control holds the sender.
class HangingEnv final : public storage::testing::ForwardingEnv {
 public:
  HangingEnv(Env* base, uint64_t hang_after) : ForwardingEnv(base), hang_after_(hang_after) {}

  bool hung() {
    std::lock_guard lock(mu_);
    return hung_;
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const fs::path& path) override {
    auto file = base_->NewWritableFile(path);
    if (!file.ok()) return file.status();
    return std::unique_ptr<WritableFile>(new File(*this, *std::move(file)));
  }

 private:
  class File final : public WritableFile {
   public:
    File(HangingEnv& env, std::unique_ptr<WritableFile> base) : env_(env), base_(std::move(base)) {}
    absl::Status Append(std::span<const char> data) override {
      env_.MaybeHang(data.size());
      return base_->Append(data);
    }
    absl::Status Sync() override { return base_->Sync(); }
    absl::StatusOr<FileStat> Stat() override { return base_->Stat(); }
    absl::Status Close() override { return base_->Close(); }

   private:
    HangingEnv& env_;
    std::unique_ptr<WritableFile> base_;
  };

  void MaybeHang(uint64_t bytes) {
    std::unique_lock lock(mu_);
    appended_ += bytes;
    if (appended_ <= hang_after_ || released_) return;
    hung_ = true;
    cv_.wait_for(lock, std::chrono::minutes(1), [&] { return released_; });
  }

  const uint64_t hang_after_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t appended_ = 0;
  bool hung_ = false;
  bool released_ = false;
};

ClusterOptions TestOptions() {
  ClusterOptions options = testing::FastClusterOptions(std::chrono::minutes(10));
  // Far longer than the test may take: only Cancel() can end the write early.
  options.client.transfer_timeout = std::chrono::minutes(2);
  return options;
}

TEST(ReplicatedWriterTest, CancelWakesAnAppendHeldByANodeThatStoppedReading) {
  HangingEnv env(Env::Default(), /*hang_after=*/1 << 20);
  testing::TestNodes nodes(1);
  nodes.Add({.env = &env});
  Cluster cluster(ClusterState{.current = *Placement::Create(nodes.RingNodes(), 2)}, TestOptions());
  NetworkVideoContentService service(cluster);
  const std::string id = NewVideoId();
  absl::StatusOr<std::unique_ptr<ContentWriter>> writer = service.OpenWriter(id, "original");
  ASSERT_TRUE(writer.ok()) << writer.status();

  // Appends until the write fails: with the node hung, gRPC's flow control
  // soon holds an Append for good.
  absl::Status appended;
  std::atomic<int> returned{0};  // Appends that returned
  std::thread appender([&] {
    const std::string chunk(256 * 1024, 'x');
    while (appended.ok()) {
      appended = (*writer)->Append(chunk);
      ++returned;
    }
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!env.hung() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(env.hung()) << "the node never received the first MiB";
  // Until no Append has returned for a second: one is then held by flow
  // control (were it not, Cancel() would end the write at the next Append,
  // with the same result, but without exercising the wake-up).
  for (int last = -1; returned != last && std::chrono::steady_clock::now() < deadline;) {
    last = returned;
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }

  (*writer)->Cancel();
  appender.join();
  EXPECT_EQ(appended.code(), absl::StatusCode::kCancelled) << appended;
  EXPECT_EQ((*writer)->Commit().status().code(), absl::StatusCode::kCancelled);
  // A cancel says nothing about the nodes: neither is marked as failing.
  for (int i = 0; i < nodes.size(); ++i) {
    EXPECT_EQ(cluster.Liveness(nodes.id(i)).liveness, NodeLiveness::kUp) << nodes.id(i);
  }
  env.Release();
  writer->reset();
  EXPECT_EQ(service.Stat(id, "original").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace streamgrid
