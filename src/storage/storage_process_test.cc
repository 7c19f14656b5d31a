// Runs the real streamgrid-storage binary: files acknowledged before a kill -9
// are all there, intact, after a restart on the same data directory.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "common/ids.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "storage/sha256.h"
#include "storage/storage_client.h"
#include "storage/test_util.h"
#include "storage/testing/bit_rot.h"

#ifndef STREAMGRID_STORAGE_BINARY
#error "STREAMGRID_STORAGE_BINARY must name the streamgrid-storage executable"
#endif

namespace streamgrid::storage {
namespace {

namespace fs = std::filesystem;

using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using testing::Pattern;
using ::testing::SizeIs;
using testing::TempDir;
using testing::TempFiles;
using testing::WaitFor;

// One streamgrid-storage process on port 0.
class NodeProcess {
 public:
  // `extra_args` go to the node after the usual ones.
  NodeProcess(fs::path data_dir, fs::path ready_file, std::vector<std::string> extra_args = {})
      : data_dir_(std::move(data_dir)),
        ready_file_(std::move(ready_file)),
        extra_args_(std::move(extra_args)) {}
  ~NodeProcess() {
    if (pid_ > 0) Kill9();
  }

  // Starts the node and waits until its ready file names its address.
  void Start() {
    fs::remove(ready_file_);
    // Built before fork(): the child of a threaded process must not allocate.
    std::vector<std::string> args = {STREAMGRID_STORAGE_BINARY,
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--data-dir",
                                     data_dir_.string(),
                                     "--ready-file",
                                     ready_file_.string(),
                                     "--log-level",
                                     "warn"};
    args.insert(args.end(), extra_args_.begin(), extra_args_.end());
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      execv(STREAMGRID_STORAGE_BINARY, argv.data());
      _exit(127);
    }
    ASSERT_TRUE(
        WaitFor([&] { return fs::exists(ready_file_) || Exited(); }, std::chrono::seconds(20)));
    ASSERT_FALSE(Exited()) << "streamgrid-storage exited with status " << status_;
    std::ifstream in(ready_file_);
    nlohmann::json ready = nlohmann::json::parse(in);
    target_ = ready.at("grpc").get<std::string>();
  }

  void Kill9() {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
    pid_ = -1;
  }

  // SIGTERM; true if it exits by itself, with status 0, within `timeout`.
  bool Terminate(std::chrono::milliseconds timeout) {
    kill(pid_, SIGTERM);
    if (!WaitFor([&] { return Exited(); }, timeout)) return false;
    return WIFEXITED(status_) && WEXITSTATUS(status_) == 0;
  }

  const std::string& target() const { return target_; }

 private:
  bool Exited() {
    if (pid_ <= 0) return true;
    if (waitpid(pid_, &status_, WNOHANG) != pid_) return false;
    pid_ = -1;
    return true;
  }

  const fs::path data_dir_;
  const fs::path ready_file_;
  const std::vector<std::string> extra_args_;
  pid_t pid_ = -1;
  int status_ = 0;
  std::string target_;
};

class StorageProcessTest : public ::testing::Test {
 protected:
  fs::path DataDir() const { return dir_.path() / "data"; }

  TempDir dir_;
  NodeProcess node_{DataDir(), dir_.path() / "ready.json"};
};

TEST_F(StorageProcessTest, AcknowledgedFilesSurviveKill9) {
  ASSERT_NO_FATAL_FAILURE(node_.Start());
  EXPECT_THAT(node_.target(), MatchesRegex("127\\.0\\.0\\.1:[0-9]+"));

  std::map<std::pair<std::string, std::string>, std::pair<StoredFile, std::string>> acked;
  std::unique_ptr<StorageClient::PutStream> unfinished;
  {
    StorageClient client(node_.target());
    const std::string videos[] = {NewVideoId(), NewVideoId()};
    for (int i = 0; i < 20; ++i) {
      const std::string& video = videos[i % 2];
      const std::string name = "chunk-" + std::to_string(i) + ".m4s";
      // A few multi-chunk files among many small ones.
      std::string data = Pattern(i % 7 == 0 ? 2 * 1024 * 1024 + i : 1000 * i, i);
      auto put = client.PutBytes(video, name, data);
      ASSERT_TRUE(put.ok()) << put.status();
      acked[{video, name}] = {*put, std::move(data)};
    }
    // An upload in flight when the node dies must not survive it.
    auto stream = client.StartPut(videos[0], "unfinished");
    ASSERT_TRUE(stream.ok()) << stream.status();
    ASSERT_TRUE((*stream)->Append(Pattern(1024 * 1024, 99)).ok());
    ASSERT_TRUE(WaitFor([&] { return !TempFiles(DataDir() / "content").empty(); }));
    unfinished = *std::move(stream);
  }
  node_.Kill9();
  unfinished.reset();

  ASSERT_NO_FATAL_FAILURE(node_.Start());
  StorageClient client(node_.target());
  for (const auto& [key, value] : acked) {
    const auto& [video, name] = key;
    const auto& [file, data] = value;
    SCOPED_TRACE(video + "/" + name);
    auto stat = client.Stat(video, name);
    ASSERT_TRUE(stat.ok()) << stat.status();
    EXPECT_EQ(*stat, file);
    std::string got;
    auto get = client.Get(video, name, 0, 0, [&](std::span<const char> chunk) {
      got.append(chunk.data(), chunk.size());
      return absl::OkStatus();
    });
    ASSERT_TRUE(get.ok()) << get.status();
    EXPECT_EQ(got, data);
    EXPECT_EQ(Sha256::HexOf(got), file.sha256);
  }
  auto health = client.Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(health->files, acked.size());
  auto all = client.List("", "", 1000);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(all->files, SizeIs(acked.size()));
  EXPECT_EQ(all->next_page_token, "");
  EXPECT_THAT(TempFiles(DataDir()), IsEmpty());
}

TEST_F(StorageProcessTest, CorruptCopiesAreRefusedQuarantinedAndFoundByTheScrubber) {
  // First without the scrubber, so that the read is what finds the damage.
  NodeProcess quiet(DataDir(), dir_.path() / "ready.json", {"--scrub-bytes-per-second", "0"});
  ASSERT_NO_FATAL_FAILURE(quiet.Start());
  const std::string video = NewVideoId();
  const std::string read_data = Pattern(3 * 1024 * 1024 + 17, 1);
  const std::string scrub_data = Pattern(70'000, 2);
  std::string first_instance;
  {
    StorageClient client(quiet.target());
    ASSERT_TRUE(client.PutBytes(video, "read.mp4", read_data).ok());
    ASSERT_TRUE(client.PutBytes(video, "scrub.m4s", scrub_data).ok());
    ASSERT_TRUE(client.PutBytes(video, "good.m4s", "fine").ok());
    auto health = client.Health();
    ASSERT_TRUE(health.ok()) << health.status();
    first_instance = health->instance_id;
    EXPECT_THAT(first_instance, MatchesRegex("[0-9a-f]{32}"));
    EXPECT_EQ(health->integrity.scrub().bytes_per_second(), 0u);

    testing::FlipBitKeepingMtime(DataDir() / "content" / video / "read.mp4", 2 * 1024 * 1024 + 5);
    // A Range read of the bad block gets DATA_LOSS and not one byte.
    std::string got;
    auto sink = [&](std::span<const char> chunk) {
      got.append(chunk.data(), chunk.size());
      return absl::OkStatus();
    };
    auto ranged = client.Get(video, "read.mp4", 2 * 1024 * 1024, 100, sink);
    EXPECT_EQ(ranged.status().code(), absl::StatusCode::kDataLoss) << ranged.status();
    EXPECT_THAT(got, IsEmpty());
    auto again = client.Get(video, "read.mp4", 0, 0, sink);
    EXPECT_EQ(again.status().code(), absl::StatusCode::kNotFound) << again.status();

    auto quarantined = client.ListQuarantined(0);
    ASSERT_TRUE(quarantined.ok()) << quarantined.status();
    ASSERT_THAT(quarantined->copies, SizeIs(1));
    const v1::QuarantinedCopy& copy = quarantined->copies[0];
    EXPECT_EQ(copy.seq(), 1u);
    EXPECT_EQ(copy.video_id(), video);
    EXPECT_EQ(copy.name(), "read.mp4");
    EXPECT_EQ(copy.damage(), v1::DAMAGE_CORRUPT);
    EXPECT_EQ(copy.expected_sha256(), Sha256::HexOf(read_data));
    EXPECT_EQ(copy.found_by(), "read");
    EXPECT_FALSE(quarantined->more);
    health = client.Health();
    ASSERT_TRUE(health.ok());
    EXPECT_EQ(health->integrity.quarantined_total(), 1u);
    EXPECT_EQ(health->integrity.last_quarantine_seq(), 1u);
  }
  ASSERT_TRUE(quiet.Terminate(std::chrono::seconds(20)));

  // Rot while the node is down; the scrubber of the next run finds it.
  testing::FlipBitKeepingMtime(DataDir() / "content" / video / "scrub.m4s", 1000);
  NodeProcess scrubbing(DataDir(), dir_.path() / "ready.json",
                        {"--scrub-bytes-per-second", "100000000", "--scrub-interval", "200ms"});
  ASSERT_NO_FATAL_FAILURE(scrubbing.Start());
  StorageClient client(scrubbing.target());
  ASSERT_TRUE(WaitFor(
      [&] {
        auto health = client.Health();
        return health.ok() && health->integrity.scrub().passes_completed() >= 1;
      },
      std::chrono::seconds(30)));
  auto health = client.Health();
  ASSERT_TRUE(health.ok());
  EXPECT_NE(health->instance_id, first_instance);
  EXPECT_EQ(health->integrity.scrub().damaged_found(), 1u);
  EXPECT_GE(health->integrity.scrub().files_checked(), 1u);
  EXPECT_EQ(health->integrity.quarantined_total(), 1u);
  EXPECT_EQ(health->integrity.last_quarantine_seq(), 2u);
  auto after = client.ListQuarantined(1);
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_THAT(after->copies, SizeIs(1));
  EXPECT_EQ(after->copies[0].seq(), 2u);
  EXPECT_EQ(after->copies[0].name(), "scrub.m4s");
  EXPECT_EQ(after->copies[0].found_by(), "scrub");
  EXPECT_EQ(after->oldest_kept_seq, 1u);
  EXPECT_EQ(client.Stat(video, "scrub.m4s").status().code(), absl::StatusCode::kNotFound);
  auto good = client.Stat(video, "good.m4s");
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->sha256, Sha256::HexOf("fine"));
  // A fresh copy (a repair) is stored and served again.
  ASSERT_TRUE(client.PutBytes(video, "scrub.m4s", scrub_data).ok());
  EXPECT_EQ(client.Stat(video, "scrub.m4s")->sha256, Sha256::HexOf(scrub_data));
  ASSERT_TRUE(scrubbing.Terminate(std::chrono::seconds(20)));
}

TEST_F(StorageProcessTest, SigtermShutsDownCleanly) {
  ASSERT_NO_FATAL_FAILURE(node_.Start());
  const std::string video = NewVideoId();
  {
    StorageClient client(node_.target());
    ASSERT_TRUE(client.PutBytes(video, "seg", "data").ok());
  }
  // (A client that kept its idle channel open would delay the exit by up to
  // 5 s: gRPC's server shutdown waits for clients to close their connections
  // after its GOAWAY, and an idle client only notices on its backup poll.)
  EXPECT_TRUE(node_.Terminate(std::chrono::seconds(15)));
  ASSERT_NO_FATAL_FAILURE(node_.Start());
  StorageClient client(node_.target());
  auto stat = client.Stat(video, "seg");
  ASSERT_TRUE(stat.ok()) << stat.status();
  EXPECT_EQ(stat->sha256, Sha256::HexOf("data"));
}

// The real binary with --cluster-token-file: calls without the token or with a
// wrong one are refused (and change nothing), calls with it work.
TEST(StorageProcessAuthTest, ClusterTokenFileIsRequiredOfEveryCaller) {
  TempDir dir;
  const fs::path token_file = dir.path() / "cluster-token";
  std::ofstream(token_file) << "cluster-secret\n";
  fs::permissions(token_file, fs::perms::owner_read | fs::perms::owner_write);
  NodeProcess node(dir.path() / "data", dir.path() / "ready.json",
                   {"--cluster-token-file", token_file.string()});
  ASSERT_NO_FATAL_FAILURE(node.Start());

  StorageClient with_token(node.target(), {.security = {.token = "cluster-secret"}});
  const std::string video = NewVideoId();
  ASSERT_TRUE(with_token.PutBytes(video, "seg", "data").ok());
  for (const std::string& token : {std::string(), std::string("cluster-secreT")}) {
    StorageClient client(node.target(), {.security = {.token = token}});
    EXPECT_EQ(client.PutBytes(video, "seg", "evil").status().code(),
              absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(client.Delete(video, "seg").code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(client.DeleteVideo(video).status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(client.List("").status().code(), absl::StatusCode::kUnauthenticated);
    auto health = client.Health();
    ASSERT_FALSE(health.ok());
    EXPECT_EQ(health.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_THAT(std::string(health.status().message()), ::testing::HasSubstr("cluster token"));
  }
  auto stat = with_token.Stat(video, "seg");
  ASSERT_TRUE(stat.ok()) << stat.status();
  EXPECT_EQ(stat->sha256, Sha256::HexOf("data"));
}

}  // namespace
}  // namespace streamgrid::storage
