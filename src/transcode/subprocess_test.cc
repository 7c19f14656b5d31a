#include "transcode/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace streamgrid {
namespace {

using ::testing::AllOf;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::Ge;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::vector<std::string> Sh(const std::string& script) { return {"/bin/sh", "-c", script}; }

absl::StatusOr<ExitStatus> RunCollecting(const std::vector<std::string>& argv,
                                         std::vector<std::string>* lines,
                                         SubprocessOptions options = {}) {
  options.on_stdout_line = [lines](std::string_view line) { lines->emplace_back(line); };
  auto proc = Subprocess::Start(argv, std::move(options));
  if (!proc.ok()) return proc.status();
  return (*proc)->Wait();
}

// True once `pid` no longer runs: gone, or a zombie nobody has reaped yet
// (in a container the reaper may be slow or absent).
bool ProcessEnded(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string text;
  if (!std::getline(stat, text)) return true;
  size_t paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] == 'Z';
}

bool WaitForProcessEnd(pid_t pid, milliseconds timeout) {
  auto end = Clock::now() + timeout;
  while (Clock::now() < end) {
    if (ProcessEnded(pid)) return true;
    std::this_thread::sleep_for(milliseconds(10));  // polling a condition
  }
  return ProcessEnded(pid);
}

TEST(SubprocessTest, DeliversStdoutLineByLine) {
  std::vector<std::string> lines;
  auto exit = RunCollecting(Sh("printf 'one\\ntwo\\r\\n\\nthree'"), &lines);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->success());
  EXPECT_THAT(lines, ElementsAre("one", "two", "", "three"));
}

TEST(SubprocessTest, ReportsExitCode) {
  std::vector<std::string> lines;
  auto exit = RunCollecting(Sh("exit 3"), &lines);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->exit_code, 3);
  EXPECT_EQ(exit->signal, 0);
  EXPECT_FALSE(exit->success());
  EXPECT_EQ(exit->ToString(), "exit code 3");
}

TEST(SubprocessTest, ReportsDeathBySignal) {
  std::vector<std::string> lines;
  auto exit = RunCollecting(Sh("kill -9 $$"), &lines);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->signal, SIGKILL);
  EXPECT_THAT(exit->ToString(), HasSubstr("signal 9"));
}

TEST(SubprocessTest, KeepsOnlyTheTailOfStderr) {
  SubprocessOptions options;
  options.stderr_tail_bytes = 100;
  auto proc = Subprocess::Start(
      Sh("i=0; while [ $i -lt 2000 ]; do echo 'noise noise noise' >&2; i=$((i+1)); done; "
         "echo 'the real error' >&2; exit 1"),
      std::move(options));
  ASSERT_TRUE(proc.ok()) << proc.status();
  auto exit = (*proc)->Wait();
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->exit_code, 1);
  EXPECT_LE((*proc)->stderr_tail().size(), 100u);
  EXPECT_THAT((*proc)->stderr_tail(), ::testing::EndsWith("the real error\n"));
}

TEST(SubprocessTest, TheChildDiesWithTheThreadThatStartedIt) {
  // As when the server is killed: the starter goes away without Kill() or Wait().
  std::unique_ptr<Subprocess> proc;
  std::thread([&] {
    auto started = Subprocess::Start({"sleep", "60"}, {});
    ASSERT_TRUE(started.ok()) << started.status();
    proc = *std::move(started);
  }).join();
  ASSERT_NE(proc, nullptr);
  absl::StatusOr<ExitStatus> status = proc->Wait();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->signal, SIGKILL);
}

TEST(SubprocessTest, MissingProgramIsNotFound) {
  EXPECT_EQ(Subprocess::Start({"/nonexistent/program"}, {}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Subprocess::Start({"sg-no-such-program-on-path"}, {}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Subprocess::Start({}, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SubprocessTest, ArgumentsAreNotInterpretedByAShell) {
  std::vector<std::string> lines;
  auto exit = RunCollecting({"/bin/echo", "$HOME", "a;b", "'q'", "*"}, &lines);
  ASSERT_TRUE(exit.ok());
  EXPECT_THAT(lines, ElementsAre("$HOME a;b 'q' *"));
}

TEST(SubprocessTest, StdinIsEmpty) {
  std::vector<std::string> lines;
  auto exit = RunCollecting({"/bin/cat"}, &lines);
  ASSERT_TRUE(exit.ok());
  EXPECT_TRUE(exit->success());
  EXPECT_TRUE(lines.empty());
}

TEST(SubprocessTest, ChildInheritsNoOtherDescriptors) {
  // Deliberately without O_CLOEXEC, as careless code elsewhere might open it.
  int leaked = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(leaked, 3);
  std::vector<std::string> lines;
  auto exit = RunCollecting(Sh("ls /proc/$$/fd"), &lines);
  ::close(leaked);
  ASSERT_TRUE(exit.ok());
  std::vector<std::string> fds;
  for (const std::string& line : lines) {
    for (absl::string_view fd : absl::StrSplit(line, ' ', absl::SkipEmpty())) fds.emplace_back(fd);
  }
  // The shell's own 0, 1, 2 and whatever it opens itself (the directory ls reads
  // belongs to ls); never the test's descriptor.
  EXPECT_THAT(fds, ::testing::Not(::testing::Contains(absl::StrCat(leaked))));
  EXPECT_THAT(fds, ::testing::IsSupersetOf({"0", "1", "2"}));
}

TEST(SubprocessTest, SplitsVeryLongLines) {
  std::vector<std::string> lines;
  auto exit = RunCollecting(Sh("head -c 150000 /dev/zero | tr '\\0' a"), &lines);
  ASSERT_TRUE(exit.ok());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].size(), 65536u);
  EXPECT_EQ(lines[1].size(), 65536u);
  EXPECT_EQ(lines[2].size(), 150000u - 2 * 65536u);
}

TEST(SubprocessTest, KillFromAnotherThreadEndsTheProcessGroup) {
  std::promise<void> ready;
  std::vector<std::string> lines;
  SubprocessOptions options;
  options.on_stdout_line = [&](std::string_view line) {
    lines.emplace_back(line);
    if (lines.size() == 1) ready.set_value();
  };
  // The grandchild `sleep` would outlive a kill of the shell alone.
  auto proc = Subprocess::Start(Sh("sleep 300 & echo $!; wait"), std::move(options));
  ASSERT_TRUE(proc.ok()) << proc.status();
  Subprocess* raw = proc->get();
  std::thread killer([&] {
    ready.get_future().wait();
    raw->Kill();
  });
  auto start = Clock::now();
  auto exit = (*proc)->Wait();
  killer.join();
  EXPECT_EQ(exit.status().code(), absl::StatusCode::kCancelled);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
  ASSERT_EQ(lines.size(), 1u);
  pid_t grandchild = 0;
  ASSERT_TRUE(absl::SimpleAtoi(lines[0], &grandchild));
  EXPECT_TRUE(WaitForProcessEnd(grandchild, milliseconds(5000)));
}

TEST(SubprocessTest, KillEscalatesToSigkillWhenSigtermIsIgnored) {
  SubprocessOptions options;
  options.kill_grace = milliseconds(200);
  std::promise<void> ready;
  options.on_stdout_line = [&](std::string_view) { ready.set_value(); };
  // An ignored signal stays ignored across exec, so `sleep` ignores it too.
  auto proc = Subprocess::Start(Sh("trap '' TERM; echo ready; sleep 300"), std::move(options));
  ASSERT_TRUE(proc.ok()) << proc.status();
  Subprocess* raw = proc->get();
  std::thread killer([&] {
    ready.get_future().wait();
    raw->Kill();
  });
  auto start = Clock::now();
  auto exit = (*proc)->Wait();
  killer.join();
  EXPECT_EQ(exit.status().code(), absl::StatusCode::kCancelled);
  auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, milliseconds(200));
  EXPECT_LT(elapsed, std::chrono::seconds(3));
}

TEST(SubprocessTest, KillBeforeWaitIsHonoured) {
  auto proc = Subprocess::Start({"/bin/sleep", "300"}, {});
  ASSERT_TRUE(proc.ok());
  (*proc)->Kill();
  EXPECT_EQ((*proc)->Wait().status().code(), absl::StatusCode::kCancelled);
}

TEST(SubprocessTest, DeadlineKillsTheProcess) {
  SubprocessOptions options;
  options.deadline = milliseconds(200);
  auto start = Clock::now();
  auto proc = Subprocess::Start({"/bin/sleep", "300"}, std::move(options));
  ASSERT_TRUE(proc.ok());
  auto exit = (*proc)->Wait();
  EXPECT_EQ(exit.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
}

TEST(SubprocessTest, StallTimeoutKillsASilentProcess) {
  SubprocessOptions options;
  options.stall_timeout = milliseconds(300);
  std::vector<std::string> lines;
  auto exit = RunCollecting(Sh("echo started; sleep 300"), &lines, std::move(options));
  EXPECT_EQ(exit.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(exit.status().message(), HasSubstr("no output"));
  EXPECT_THAT(lines, ElementsAre("started"));
}

TEST(SubprocessTest, StallTimeoutSparesAProcessThatKeepsTalking) {
  SubprocessOptions options;
  options.stall_timeout = milliseconds(600);
  std::vector<std::string> lines;
  // 1 s in total but never much more than 0.1 s without output (stderr counts too).
  auto exit = RunCollecting(
      Sh("i=0; while [ $i -lt 10 ]; do echo $i; echo e >&2; sleep 0.1; i=$((i+1)); done"), &lines,
      std::move(options));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->success());
  EXPECT_EQ(lines.size(), 10u);
}

TEST(SubprocessTest, LeftoverChildrenDoNotBlockWaitAndAreKilled) {
  std::vector<std::string> lines;
  auto start = Clock::now();
  // The background sleep keeps stdout open after the shell exits.
  auto exit = RunCollecting(Sh("sleep 300 & echo $!"), &lines);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->success());
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
  ASSERT_EQ(lines.size(), 1u);
  pid_t leftover = 0;
  ASSERT_TRUE(absl::SimpleAtoi(lines[0], &leftover));
  EXPECT_TRUE(WaitForProcessEnd(leftover, milliseconds(5000)));
}

TEST(SubprocessTest, DestructorReapsAnUnwaitedChild) {
  pid_t pid;
  {
    auto proc = Subprocess::Start({"/bin/sleep", "300"}, {});
    ASSERT_TRUE(proc.ok());
    pid = (*proc)->pid();
  }
  // Reaped by us, so not even a zombie remains.
  EXPECT_NE(::kill(pid, 0), 0);
}

// The fields of /proc/PID/stat after the command name ("S", ppid, pgrp, ...);
// empty when the process is gone.
std::vector<std::string> StatFields(const std::filesystem::path& stat_file) {
  std::ifstream stat(stat_file);
  std::string text;
  if (!std::getline(stat, text)) return {};
  const size_t paren = text.rfind(')');
  if (paren == std::string::npos || paren + 2 >= text.size()) return {};
  return absl::StrSplit(text.substr(paren + 2), ' ');
}

// The nice value of every thread of every live process in process group
// `group` (a child started by Subprocess leads a group of its own).
std::vector<int> NiceValuesOfGroup(pid_t group) {
  std::vector<int> nices;
  std::error_code ec;
  for (const auto& process : std::filesystem::directory_iterator("/proc", ec)) {
    int pgrp = 0;
    std::vector<std::string> fields = StatFields(process.path() / "stat");
    if (fields.size() < 17 || fields[0] == "Z" || !absl::SimpleAtoi(fields[2], &pgrp) ||
        pgrp != group) {
      continue;
    }
    for (const auto& thread : std::filesystem::directory_iterator(process.path() / "task", ec)) {
      std::vector<std::string> thread_fields = StatFields(thread.path() / "stat");
      int nice = 0;
      if (thread_fields.size() >= 17 && absl::SimpleAtoi(thread_fields[16], &nice)) {
        nices.push_back(nice);
      }
    }
  }
  return nices;
}

TEST(SubprocessTest, ALoweredChildAndItsOwnChildrenRunLowUntilRestored) {
  if (!ChildPriority::CanRestore()) {
    GTEST_SKIP() << "this process may not raise a priority back (no CAP_SYS_NICE, RLIMIT_NICE 0)";
  }
  const int server_nice = ::getpriority(PRIO_PROCESS, 0);
  const int low = std::max(19, server_nice);
  auto priority = std::make_shared<ChildPriority>(19);
  SubprocessOptions options;
  options.priority = priority;
  auto proc = Subprocess::Start(Sh("sleep 300 & sleep 300"), options);
  ASSERT_TRUE(proc.ok()) << proc.status();
  const pid_t group = (*proc)->pid();
  const auto end = Clock::now() + std::chrono::seconds(30);
  while (NiceValuesOfGroup(group).size() < 2 && Clock::now() < end) {
    std::this_thread::sleep_for(milliseconds(10));  // polling a condition
  }
  // The shell and its background sleep (and, depending on the shell, a
  // second process for the last sleep).
  EXPECT_THAT(NiceValuesOfGroup(group), AllOf(SizeIs(Ge(2u)), Each(low)));

  ASSERT_TRUE(priority->Restore().ok());
  EXPECT_THAT(NiceValuesOfGroup(group), AllOf(SizeIs(Ge(2u)), Each(server_nice)));

  // Started after the restore: at the server's priority from the start.
  auto later = Subprocess::Start({"/bin/sleep", "300"}, options);
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_THAT(NiceValuesOfGroup((*later)->pid()), ElementsAre(server_nice));
  (*proc)->Kill();
  (*later)->Kill();
  EXPECT_TRUE(absl::IsCancelled((*proc)->Wait().status()));
  EXPECT_TRUE(absl::IsCancelled((*later)->Wait().status()));
}

TEST(SubprocessTest, RestoreForgetsChildrenThatEnded) {
  auto priority = std::make_shared<ChildPriority>(19);
  SubprocessOptions options;
  options.priority = priority;
  auto exit = RunSubprocess({"/bin/true"}, options);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->exit.success());
  // Its id may already belong to someone else: nothing is reniced, no error.
  EXPECT_TRUE(priority->Restore().ok());
  EXPECT_TRUE(priority->Restore().ok());
}

TEST(SubprocessTest, RunSubprocessCollectsOutput) {
  auto output = RunSubprocess(Sh("echo a; echo b; echo oops >&2; exit 2"), {});
  ASSERT_TRUE(output.ok()) << output.status();
  EXPECT_EQ(output->stdout_text, "a\nb\n");
  EXPECT_EQ(output->stderr_tail, "oops\n");
  EXPECT_EQ(output->exit.exit_code, 2);
}

TEST(SubprocessTest, RunSubprocessBoundsStdout) {
  auto output = RunSubprocess(Sh("seq 1 100000"), {}, 1000);
  ASSERT_TRUE(output.ok()) << output.status();
  EXPECT_LE(output->stdout_text.size(), 1000u);
  EXPECT_TRUE(output->stdout_text.starts_with("1\n2\n3\n"));
}

}  // namespace
}  // namespace streamgrid
