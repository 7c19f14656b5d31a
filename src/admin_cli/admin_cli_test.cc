#include "admin_cli/admin_cli.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "admin_cli/admin_client.h"
#include "admin_cli/progress.h"
#include "auth/grpc_auth.h"
#include "gmock/gmock.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/admin.grpc.pb.h"

namespace streamgrid::admin_cli {
namespace {

namespace v1 = ::streamgrid::admin::v1;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr auto kWaitLimit = std::chrono::seconds(10);

// ---- Command line ----

std::variant<CliOptions, int> Parse(std::vector<std::string> args, std::string* out = nullptr,
                                    std::string* err = nullptr) {
  args.insert(args.begin(), "streamgrid-admin");
  std::ostringstream out_stream, err_stream;
  auto parsed = ParseCommandLine(args, out_stream, err_stream);
  if (out != nullptr) *out = out_stream.str();
  if (err != nullptr) *err = err_stream.str();
  return parsed;
}

TEST(AdminParseCommandLineTest, AcceptsEachCommand) {
  auto parsed = Parse({"list", "127.0.0.1:8081"});
  ASSERT_TRUE(std::holds_alternative<CliOptions>(parsed));
  EXPECT_EQ(std::get<CliOptions>(parsed).command, Command::kList);
  EXPECT_EQ(std::get<CliOptions>(parsed).server, "127.0.0.1:8081");
  EXPECT_EQ(std::get<CliOptions>(parsed).timeout, std::chrono::hours(1));

  parsed =
      Parse({"--json", "add", "s:1", "n:2", "--id", "n2", "--weight", "2.5", "--timeout", "1.5"});
  ASSERT_TRUE(std::holds_alternative<CliOptions>(parsed));
  const CliOptions add = std::get<CliOptions>(parsed);
  EXPECT_EQ(add.command, Command::kAdd);
  EXPECT_TRUE(add.json);
  EXPECT_EQ(add.node_address, "n:2");
  EXPECT_EQ(add.node_id, "n2");
  EXPECT_EQ(add.weight, 2.5);
  EXPECT_TRUE(add.wait);
  EXPECT_EQ(add.timeout, std::chrono::milliseconds(1500));

  parsed = Parse({"remove", "s:1", "n2", "--no-wait", "--json"});
  ASSERT_TRUE(std::holds_alternative<CliOptions>(parsed));
  EXPECT_EQ(std::get<CliOptions>(parsed).command, Command::kRemove);
  EXPECT_EQ(std::get<CliOptions>(parsed).node, "n2");
  EXPECT_FALSE(std::get<CliOptions>(parsed).wait);
  EXPECT_TRUE(std::get<CliOptions>(parsed).json);

  parsed = Parse({"status", "s:1"});
  ASSERT_TRUE(std::holds_alternative<CliOptions>(parsed));
  EXPECT_EQ(std::get<CliOptions>(parsed).command, Command::kStatus);
  parsed = Parse({"--timeout", "30", "resume", "s:1"});
  ASSERT_TRUE(std::holds_alternative<CliOptions>(parsed));
  EXPECT_EQ(std::get<CliOptions>(parsed).command, Command::kResume);
  EXPECT_EQ(std::get<CliOptions>(parsed).timeout, std::chrono::seconds(30));
}

TEST(AdminParseCommandLineTest, RejectsBadCommandLinesWithExitCode2) {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"frobnicate", "s:1"},
      {"list"},
      {"list", "s:1", "extra"},
      {"add", "s:1"},
      {"add", "s:1", "n:2", "--weight", "-1"},
      {"add", "s:1", "n:2", "--weight", "heavy"},
      {"--timeout", "0", "list", "s:1"},
      {"list", "s:1", "--no-such-option"},
      {"status", "s:1", "--no-wait"},
  };
  for (const auto& args : bad) {
    std::string err;
    auto parsed = Parse(args, nullptr, &err);
    ASSERT_TRUE(std::holds_alternative<int>(parsed)) << ::testing::PrintToString(args);
    EXPECT_EQ(std::get<int>(parsed), kExitUsage) << ::testing::PrintToString(args);
    EXPECT_THAT(err, Not(IsEmpty())) << ::testing::PrintToString(args);
  }
}

TEST(AdminParseCommandLineTest, HelpExitsZero) {
  std::string out;
  auto parsed = Parse({"--help"}, &out);
  ASSERT_TRUE(std::holds_alternative<int>(parsed));
  EXPECT_EQ(std::get<int>(parsed), kExitOk);
  EXPECT_THAT(out, HasSubstr("resume"));

  parsed = Parse({"add", "--help"}, &out);
  ASSERT_TRUE(std::holds_alternative<int>(parsed));
  EXPECT_EQ(std::get<int>(parsed), kExitOk);
  EXPECT_THAT(out, HasSubstr("--weight"));
}

TEST(AdminParseCommandLineTest, TokenFileGoesBeforeOrAfterTheCommand) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--token-file", "/t", "list", "s:1"},
        std::vector<std::string>{"list", "--token-file", "/t", "s:1"},
        std::vector<std::string>{"list", "s:1", "--token-file", "/t"},
        std::vector<std::string>{"add", "s:1", "n:2", "--token-file=/t", "--no-wait"}}) {
    auto parsed = Parse(args);
    ASSERT_TRUE(std::holds_alternative<CliOptions>(parsed)) << ::testing::PrintToString(args);
    EXPECT_EQ(std::get<CliOptions>(parsed).token_file, "/t") << ::testing::PrintToString(args);
  }
  auto parsed = Parse(
      {"status", "s:1", "--tls-ca", "/ca.pem", "--tls-cert", "/c.pem", "--tls-key", "/k.pem"});
  ASSERT_TRUE(std::holds_alternative<CliOptions>(parsed));
  EXPECT_EQ(std::get<CliOptions>(parsed).tls_ca, "/ca.pem");
  EXPECT_EQ(std::get<CliOptions>(parsed).tls_cert, "/c.pem");
  EXPECT_EQ(std::get<CliOptions>(parsed).tls_key, "/k.pem");
}

TEST(AdminParseCommandLineTest, TokenFileFromTheEnvironment) {
  ASSERT_EQ(setenv(kTokenFileEnv, "/from-env", 1), 0);
  auto from_env = Parse({"list", "s:1"});
  // The flag wins over the variable.
  auto from_flag = Parse({"list", "s:1", "--token-file", "/from-flag"});
  unsetenv(kTokenFileEnv);
  auto neither = Parse({"list", "s:1"});
  ASSERT_TRUE(std::holds_alternative<CliOptions>(from_env));
  EXPECT_EQ(std::get<CliOptions>(from_env).token_file, "/from-env");
  ASSERT_TRUE(std::holds_alternative<CliOptions>(from_flag));
  EXPECT_EQ(std::get<CliOptions>(from_flag).token_file, "/from-flag");
  ASSERT_TRUE(std::holds_alternative<CliOptions>(neither));
  EXPECT_EQ(std::get<CliOptions>(neither).token_file, "");
}

// ---- Against a fake AdminService ----

v1::Migration MakeMigration(v1::MigrationState state) {
  v1::Migration migration;
  migration.set_state(state);
  migration.set_description("add node 127.0.0.1:9104");
  migration.set_partitions_total(40);
  migration.set_partitions_done(state == v1::MIGRATION_STATE_COPYING ? 10 : 40);
  migration.set_files_copied(123);
  migration.set_bytes_copied(47815066);
  migration.set_files_deleted(state == v1::MIGRATION_STATE_DONE ? 120 : 0);
  migration.set_started_unix_ms(1714564800000);
  migration.set_from_version(3);
  migration.set_to_version(4);
  return migration;
}

// Canned answers; the membership calls run the test's handler.
class FakeAdminService final : public v1::AdminService::Service {
 public:
  using Handler = std::function<grpc::Status(grpc::ServerContext*, v1::MembershipChangeResponse*)>;

  grpc::Status ListNodes(grpc::ServerContext* context, const v1::ListNodesRequest*,
                         v1::ListNodesResponse* response) override {
    if (grpc::Status denied = auth_.Check(*context); !denied.ok()) return denied;
    std::lock_guard lock(mu_);
    *response = nodes_;
    return grpc::Status::OK;
  }

  grpc::Status Status(grpc::ServerContext*, const v1::StatusRequest*,
                      v1::StatusResponse* response) override {
    std::unique_lock lock(mu_);
    ++status_calls_;
    changed_.notify_all();
    // Held, when the test asks, until it releases it (or the limit passes).
    changed_.wait_for(lock, kWaitLimit, [this] { return !hold_status_; });
    *response = status_;
    if (next_status_) next_status_(status_calls_, &status_);
    changed_.notify_all();
    return grpc::Status::OK;
  }

  grpc::Status AddNode(grpc::ServerContext* context, const v1::AddNodeRequest* request,
                       v1::MembershipChangeResponse* response) override {
    {
      std::lock_guard lock(mu_);
      last_add_ = *request;
    }
    return membership_(context, response);
  }

  grpc::Status RemoveNode(grpc::ServerContext* context, const v1::RemoveNodeRequest* request,
                          v1::MembershipChangeResponse* response) override {
    {
      std::lock_guard lock(mu_);
      last_remove_ = *request;
    }
    return membership_(context, response);
  }

  grpc::Status ResumeMigration(grpc::ServerContext* context, const v1::ResumeMigrationRequest*,
                               v1::MembershipChangeResponse* response) override {
    return membership_(context, response);
  }

  // Blocks until `done` holds (checked under the lock) or the limit passes.
  bool WaitUntil(const std::function<bool()>& done) {
    std::unique_lock lock(mu_);
    return changed_.wait_for(lock, kWaitLimit, done);
  }

  // ListNodes checks it (set before the server starts serving calls).
  auth::TokenCheck auth_;
  std::mutex mu_;
  std::condition_variable changed_;
  v1::ListNodesResponse nodes_;
  v1::StatusResponse status_;
  int status_calls_ = 0;
  bool hold_status_ = false;
  // Called after each Status answer with the call's number, to change the next.
  std::function<void(int, v1::StatusResponse*)> next_status_;
  Handler membership_;
  v1::AddNodeRequest last_add_;
  v1::RemoveNodeRequest last_remove_;
};

struct RunResult {
  int exit_code;
  std::string out;
  std::string err;
};

class AdminCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    address_ = "127.0.0.1:" + std::to_string(port);
    service_.status_.set_nodes(3);
    service_.status_.set_replication_factor(2);
    service_.status_.set_placement_version(3);
  }

  void TearDown() override { server_->Shutdown(std::chrono::system_clock::now()); }

  RunResult Run(std::vector<std::string> args, bool progress = false) {
    std::ostringstream out, err;
    args.insert(args.begin(), "streamgrid-admin");
    auto parsed = ParseCommandLine(args, out, err);
    if (const int* code = std::get_if<int>(&parsed)) return {*code, out.str(), err.str()};
    const RunEnvironment env{.out = &out,
                             .err = &err,
                             .progress = progress,
                             .terminal_width = 100,
                             .short_call_timeout = std::chrono::seconds(5),
                             .poll_interval = std::chrono::milliseconds(20),
                             .poll_call_timeout = std::chrono::seconds(2)};
    const int exit_code = RunCommand(std::get<CliOptions>(parsed), env);
    return {exit_code, out.str(), err.str()};
  }

  FakeAdminService service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

TEST_F(AdminCliTest, ListPrintsTheTable) {
  v1::Node* node = service_.nodes_.add_nodes();
  node->set_id("127.0.0.1:9101");
  node->set_address("127.0.0.1:9101");
  node->set_state(v1::NODE_STATE_ACTIVE);
  node->set_reachable(true);
  node->set_weight(1);
  node->set_files(42);
  node->set_share_of_keyspace(1);
  service_.nodes_.set_replication_factor(1);
  service_.nodes_.set_placement_version(5);

  RunResult result = Run({"list", address_});
  EXPECT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_THAT(result.out, HasSubstr("ID              ADDRESS"));
  EXPECT_THAT(result.out, HasSubstr("127.0.0.1:9101  127.0.0.1:9101  active  up"));
  EXPECT_THAT(result.out, HasSubstr("replication factor 1, placement version 5\n"));
  EXPECT_EQ(result.err, "");

  result = Run({"list", address_, "--json"});
  EXPECT_EQ(result.exit_code, kExitOk) << result.err;
  const nlohmann::json json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["placement_version"], 5);
  EXPECT_EQ(json["nodes"][0]["files"], 42);
  EXPECT_EQ(json["nodes"][0]["state"], "active");
}

TEST_F(AdminCliTest, StatusTextAndJson) {
  RunResult result = Run({"status", address_});
  EXPECT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_THAT(result.out, HasSubstr("no migration has run"));

  *service_.status_.mutable_migration() = MakeMigration(v1::MIGRATION_STATE_COPYING);
  result = Run({"--json", "status", address_});
  EXPECT_EQ(result.exit_code, kExitOk) << result.err;
  const nlohmann::json json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["migration"]["state"], "copying");
  EXPECT_EQ(json["nodes"], 3);
}

TEST_F(AdminCliTest, AddWaitsForTheMigration) {
  service_.membership_ = [](grpc::ServerContext*, v1::MembershipChangeResponse* response) {
    *response->mutable_migration() = MakeMigration(v1::MIGRATION_STATE_DONE);
    return grpc::Status::OK;
  };
  RunResult result = Run({"add", address_, "127.0.0.1:9104", "--weight", "2"});
  EXPECT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_EQ(result.out,
            "added node 127.0.0.1:9104: 123 files copied (45.6 MiB) to new owners, 120 surplus "
            "copies deleted\n");
  EXPECT_EQ(result.err, "");  // Not a terminal: no progress.
  EXPECT_EQ(service_.last_add_.address(), "127.0.0.1:9104");
  EXPECT_EQ(service_.last_add_.weight(), 2);
  EXPECT_TRUE(service_.last_add_.wait());

  result = Run({"add", address_, "127.0.0.1:9104", "--json"});
  EXPECT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_EQ(nlohmann::json::parse(result.out)["files_copied"], 123);
}

TEST_F(AdminCliTest, DrawsProgressWhileTheCallRuns) {
  // The Status before the call shows no migration; later ones the new one.
  service_.next_status_ = [](int, v1::StatusResponse* next) {
    *next->mutable_migration() = MakeMigration(v1::MIGRATION_STATE_COPYING);
  };
  service_.membership_ = [this](grpc::ServerContext*, v1::MembershipChangeResponse* response) {
    // Answers once the client polled a few times.
    if (!service_.WaitUntil([this] { return service_.status_calls_ >= 3; })) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "client never polled");
    }
    *response->mutable_migration() = MakeMigration(v1::MIGRATION_STATE_DONE);
    return grpc::Status::OK;
  };
  RunResult result = Run({"add", address_, "127.0.0.1:9104"}, /*progress=*/true);
  EXPECT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_THAT(result.err, HasSubstr("\radd node 127.0.0.1:9104 [#"));
  EXPECT_THAT(result.err, HasSubstr("10/40  25%  copying, 123 files, 45.6 MiB\x1b[K"));
  EXPECT_THAT(result.err, testing::EndsWith("\r\x1b[K"));  // Cleared at the end.
  EXPECT_THAT(result.out, HasSubstr("123 files copied"));
}

TEST_F(AdminCliTest, ServerErrorsExitOneWithTheirMessage) {
  service_.membership_ = [](grpc::ServerContext*, v1::MembershipChangeResponse*) {
    return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                        "node 127.0.0.1:9104 is already a member");
  };
  RunResult result = Run({"--json", "add", address_, "127.0.0.1:9104"});
  EXPECT_EQ(result.exit_code, kExitFailed);
  EXPECT_EQ(result.out, "");
  EXPECT_EQ(result.err,
            "streamgrid-admin: add failed: ALREADY_EXISTS: node 127.0.0.1:9104 is already a "
            "member\n");
}

TEST_F(AdminCliTest, UnavailableFromTheServerItselfIsAnError) {
  // The server answers UNAVAILABLE (the new node does not) and Status shows
  // no change: not a lost connection.
  service_.membership_ = [](grpc::ServerContext*, v1::MembershipChangeResponse*) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "node 127.0.0.1:9104 does not answer");
  };
  RunResult result = Run({"add", address_, "127.0.0.1:9104"});
  EXPECT_EQ(result.exit_code, kExitFailed);
  EXPECT_EQ(result.err,
            "streamgrid-admin: add failed: UNAVAILABLE: node 127.0.0.1:9104 does not answer\n");
}

TEST_F(AdminCliTest, FollowsTheMigrationAfterTheCallDrops) {
  bool started = false;
  int polls_after_start = 0;
  service_.next_status_ = [&](int, v1::StatusResponse* next) {
    if (!started) return;
    ++polls_after_start;
    *next->mutable_migration() = MakeMigration(polls_after_start < 3 ? v1::MIGRATION_STATE_COPYING
                                                                     : v1::MIGRATION_STATE_DONE);
  };
  service_.membership_ = [&](grpc::ServerContext*, v1::MembershipChangeResponse*) {
    std::lock_guard lock(service_.mu_);
    started = true;
    *service_.status_.mutable_migration() = MakeMigration(v1::MIGRATION_STATE_COPYING);
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "Socket closed");
  };
  RunResult result = Run({"add", address_, "127.0.0.1:9104"});
  EXPECT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_THAT(result.err, HasSubstr("the migration continues on the server"));
  EXPECT_THAT(result.out, HasSubstr("123 files copied"));
}

TEST_F(AdminCliTest, TimeoutLeavesTheMigrationRunningWithExitCode3) {
  service_.next_status_ = [](int, v1::StatusResponse* next) {
    *next->mutable_migration() = MakeMigration(v1::MIGRATION_STATE_COPYING);
  };
  service_.membership_ = [this](grpc::ServerContext* context, v1::MembershipChangeResponse*) {
    // Never over: holds the call until the client's deadline.
    std::unique_lock lock(service_.mu_);
    service_.changed_.wait_until(lock, context->deadline(), [&] { return context->IsCancelled(); });
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "deadline");
  };
  RunResult result = Run({"--timeout", "0.3", "add", address_, "127.0.0.1:9104"});
  EXPECT_EQ(result.exit_code, kExitStillRunning) << result.err;
  EXPECT_THAT(result.err, HasSubstr("continues on the server"));
  EXPECT_THAT(result.err, HasSubstr("streamgrid-admin status " + address_));
}

TEST_F(AdminCliTest, FailedMigrationExitsOne) {
  service_.membership_ = [](grpc::ServerContext*, v1::MembershipChangeResponse* response) {
    v1::Migration migration = MakeMigration(v1::MIGRATION_STATE_FAILED);
    migration.set_error("node 127.0.0.1:9102 unreachable");
    *response->mutable_migration() = migration;
    return grpc::Status::OK;
  };
  RunResult result = Run({"resume", address_});
  EXPECT_EQ(result.exit_code, kExitFailed);
  EXPECT_THAT(result.err, HasSubstr("node 127.0.0.1:9102 unreachable"));
}

TEST_F(AdminCliTest, NoWaitReportsTheStart) {
  service_.membership_ = [](grpc::ServerContext*, v1::MembershipChangeResponse* response) {
    v1::Migration migration = MakeMigration(v1::MIGRATION_STATE_COPYING);
    migration.set_description("remove node 127.0.0.1:9103");
    *response->mutable_migration() = migration;
    return grpc::Status::OK;
  };
  RunResult result = Run({"remove", address_, "127.0.0.1:9103", "--no-wait"});
  EXPECT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_THAT(result.out, HasSubstr("migration started: remove node 127.0.0.1:9103"));
  EXPECT_EQ(service_.last_remove_.node(), "127.0.0.1:9103");
  EXPECT_FALSE(service_.last_remove_.wait());
}

TEST_F(AdminCliTest, PollerStopsAtOnceWithAPollInFlight) {
  service_.hold_status_ = true;
  AdminClient client(address_);
  std::optional<StatusPoller> poller;
  poller.emplace(client, std::chrono::milliseconds(1), std::chrono::seconds(60),
                 [](const v1::StatusResponse&) {});
  ASSERT_TRUE(service_.WaitUntil([this] { return service_.status_calls_ >= 1; }));
  const auto start = std::chrono::steady_clock::now();
  poller.reset();  // Must cancel the held poll, not wait for its answer.
  const auto stopping_took = std::chrono::steady_clock::now() - start;
  {
    std::lock_guard lock(service_.mu_);
    service_.hold_status_ = false;
  }
  service_.changed_.notify_all();
  EXPECT_LT(stopping_took, std::chrono::seconds(5));
}

// A port nothing listens on (bound, then released).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

TEST_F(AdminCliTest, UnreachableServerExitsOneQuickly) {
  const std::string nowhere = "127.0.0.1:" + std::to_string(FreePort());
  for (const std::string command : {"list", "add"}) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::string> args = {command, nowhere};
    if (command == "add") args.push_back("127.0.0.1:9104");
    RunResult result = Run(args);
    EXPECT_EQ(result.exit_code, kExitFailed);
    EXPECT_THAT(result.err, HasSubstr("streamgrid-admin: " + command + " failed: UNAVAILABLE: "));
    EXPECT_THAT(result.err, HasSubstr(nowhere));
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
  }
}

// A token file in the test's temporary directory.
std::string WriteTokenFile(const std::string& name, const std::string& contents) {
  const std::filesystem::path path = std::filesystem::path(::testing::TempDir()) /
                                     (name + "-" + std::to_string(getpid()) + ".token");
  std::ofstream(path) << contents;
  std::filesystem::permissions(
      path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  return path.string();
}

TEST_F(AdminCliTest, TokenIsSentAndARefusalExplainsWhatToDo) {
  service_.auth_ = auth::TokenCheck("right-token", "admin token");
  const std::string right = WriteTokenFile("right", "right-token\n");
  const std::string wrong = WriteTokenFile("wrong", "wrong-token\n");

  RunResult result = Run({"list", address_, "--token-file", right});
  EXPECT_EQ(result.exit_code, kExitOk) << result.err;

  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"list", address_},
        std::vector<std::string>{"--token-file", wrong, "list", address_}}) {
    result = Run(args);
    EXPECT_EQ(result.exit_code, kExitFailed);
    EXPECT_THAT(result.err, HasSubstr("list failed: UNAUTHENTICATED"));
    EXPECT_THAT(result.err,
                HasSubstr("the admin token was refused or is missing: pass --token-file"));
    EXPECT_THAT(result.err, Not(HasSubstr("right-token")));
  }

  ASSERT_EQ(setenv(kTokenFileEnv, right.c_str(), 1), 0);
  result = Run({"list", address_});
  unsetenv(kTokenFileEnv);
  EXPECT_EQ(result.exit_code, kExitOk) << result.err;
}

TEST_F(AdminCliTest, UnreadableTokenFileIsAUsageError) {
  RunResult result = Run({"list", address_, "--token-file", "/nonexistent/admin-token"});
  EXPECT_EQ(result.exit_code, kExitUsage);
  EXPECT_THAT(result.err,
              HasSubstr("--token-file: token file /nonexistent/admin-token: No such file"));
  result = Run({"list", address_, "--token-file", WriteTokenFile("empty", "")});
  EXPECT_EQ(result.exit_code, kExitUsage);
  EXPECT_THAT(result.err, HasSubstr("is empty"));
}

}  // namespace
}  // namespace streamgrid::admin_cli
