#include "common/spawn.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace streamgrid {
namespace {

using std::chrono::steady_clock;

// Reads `fd` to its end, then closes it.
std::string ReadAll(int fd) {
  std::string out;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) out.append(buffer, n);
  ::close(fd);
  return out;
}

// Reaps `pid`, waiting at most 30 s; the wait status, or -1 if it did not end.
int Reap(pid_t pid) {
  const auto deadline = steady_clock::now() + std::chrono::seconds(30);
  while (steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

// Runs `argv` with stdout captured (stdin and stderr /dev/null) plus `extra`
// descriptors; returns what it printed, after it exited 0.
std::string Output(const std::vector<std::string>& argv, SpawnOptions options = {},
                   std::vector<int> extra = {}) {
  int out[2];
  EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
  options.fds = {-1, out[1], -1};
  options.fds.insert(options.fds.end(), extra.begin(), extra.end());
  absl::StatusOr<pid_t> pid = SpawnChild(argv, options);
  ::close(out[1]);
  if (!pid.ok()) {
    ::close(out[0]);
    ADD_FAILURE() << pid.status();
    return "";
  }
  std::string printed = ReadAll(out[0]);
  const int status = Reap(*pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  return printed;
}

TEST(SpawnChildTest, GivesTheChildItsDescriptorsAndNothingElse) {
  // A descriptor opened without close-on-exec, as a library might leave one.
  const int leaked = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(leaked, 0);
  ASSERT_EQ(::dup2(leaked, 100), 100);
  int extra[2];
  ASSERT_EQ(::pipe2(extra, O_CLOEXEC), 0);
  const std::string listed =
      Output({"/bin/sh", "-c", "ls /proc/$$/fd; echo three >&3"}, {}, {extra[1]});
  ::close(extra[1]);
  // The shell's descriptors (listed by ls, a child of it).
  EXPECT_EQ(listed, "0\n1\n2\n3\n");
  EXPECT_EQ(ReadAll(extra[0]), "three\n");
  ::close(leaked);
  ::close(100);
}

TEST(SpawnChildTest, TargetsMayBeSourcesOfOtherTargets) {
  // Swapping two descriptors: placing one must not clobber the other.
  int a[2], b[2];
  ASSERT_EQ(::pipe2(a, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(b, O_CLOEXEC), 0);
  SpawnOptions options;
  options.fds = {-1, b[1], a[1]};
  absl::StatusOr<pid_t> pid = SpawnChild({"/bin/sh", "-c", "echo out; echo err >&2"}, options);
  ASSERT_TRUE(pid.ok()) << pid.status();
  ::close(a[1]);
  ::close(b[1]);
  EXPECT_EQ(ReadAll(b[0]), "out\n");
  EXPECT_EQ(ReadAll(a[0]), "err\n");
  EXPECT_EQ(Reap(*pid), 0);
}

TEST(SpawnChildTest, AMissingProgramIsNotFoundAtOnce) {
  SpawnOptions options;
  options.fds = {-1, -1, -1};
  absl::StatusOr<pid_t> pid = SpawnChild({"/nonexistent/program"}, options);
  EXPECT_EQ(pid.status().code(), absl::StatusCode::kNotFound) << pid.status();
  EXPECT_NE(pid.status().message().find("/nonexistent/program"), std::string::npos);
  // PATH is searched only when asked.
  EXPECT_EQ(SpawnChild({"true"}, options).status().code(), absl::StatusCode::kNotFound);
  options.search_path = true;
  absl::StatusOr<pid_t> found = SpawnChild({"true"}, options);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(Reap(*found), 0);
}

TEST(SpawnChildTest, RefusesAnEmptyCommandLine) {
  SpawnOptions options;
  options.fds = {-1, -1, -1};
  EXPECT_EQ(SpawnChild({}, options).status().code(), absl::StatusCode::kInvalidArgument);
  options.fds = {-1, -1};
  EXPECT_EQ(SpawnChild({"/bin/true"}, options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SpawnChildTest, SetsTheEnvironmentGroupAndPriorityAsAsked) {
  SpawnOptions options;
  options.env = std::vector<std::string>{"SG_SPAWN_TEST=seen"};
  EXPECT_EQ(Output({"/bin/sh", "-c", "echo $SG_SPAWN_TEST"}, options), "seen\n");

  options = {};
  options.new_process_group = true;
  // Field 5 of /proc/PID/stat is the process group, field 1 the pid.
  const std::string ids = Output({"/bin/sh", "-c", "cut -d' ' -f1,5 /proc/$$/stat"}, options);
  const size_t space = ids.find(' ');
  ASSERT_NE(space, std::string::npos) << ids;
  EXPECT_EQ(ids.substr(0, space) + "\n", ids.substr(space + 1));

  errno = 0;
  const int ours = ::getpriority(PRIO_PROCESS, 0);
  if (ours > 7) GTEST_SKIP() << "already at nice " << ours;
  options = {};
  options.nice = 7;
  options.search_path = true;
  EXPECT_EQ(Output({"nice"}, options), "7\n");
}

TEST(SpawnChildTest, TheChildDiesWithTheThreadThatStartedIt) {
  absl::StatusOr<pid_t> pid;
  std::thread starter([&pid] {
    SpawnOptions options;
    options.fds = {-1, -1, -1};
    pid = SpawnChild({"/bin/sleep", "600"}, options);
  });
  starter.join();
  ASSERT_TRUE(pid.ok()) << pid.status();
  const int status = Reap(*pid);
  ASSERT_NE(status, -1) << "the child outlived its thread";
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
}

}  // namespace
}  // namespace streamgrid
