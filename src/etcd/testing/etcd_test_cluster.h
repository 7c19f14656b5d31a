#pragma once

// A real etcd cluster of local processes, for tests.
//
// Each member is an `etcd` (found on PATH) listening on 127.0.0.1 ports picked
// at start, with its own temporary data directory and a log file that holds
// everything it writes, so test output stays clean. Raft timings are short
// (50 ms heartbeat, 500 ms election timeout), so a killed leader is replaced
// within about a second.
//
// Not thread-safe: drive one cluster from one thread. Members are forked with
// PR_SET_PDEATHSIG, so they die with the thread that started them; keep that
// thread alive for the cluster's lifetime (the test's main thread is fine).
// A cluster still alive when the process exits normally (say, one created in
// SetUpTestSuite and never deleted) is killed and its directory removed by an
// atexit handler; each member's data directory holds a 64 MB preallocated WAL.

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "etcd/etcd_client.h"
#include "gtest/gtest.h"

namespace streamgrid::etcd::testing {

// etcd's security features for a test cluster.
struct EtcdTestClusterOptions {
  // Clients reach the members over TLS only, with certificates made by
  // `openssl` at start (a CA, a server certificate for IP 127.0.0.1 and
  // localhost, a client certificate). The harness itself (health, status,
  // etcdctl) uses a second, plain client listener of each member.
  bool tls = false;
  // etcd's --client-cert-auth: TLS clients must show a certificate of the CA.
  bool client_cert_auth = false;
  // Non-empty: once the cluster is up, a root user with this password and the
  // root role is created and authentication enabled; etcdctl then runs as
  // root.
  std::string root_password;
  // etcd's --auth-token-ttl: seconds an unused simple token lives (0: etcd's
  // default, 300).
  int auth_token_ttl_s = 0;
};

class EtcdTestCluster {
 public:
  // Starts `members` etcd processes as one new cluster and waits (up to 30 s)
  // until every member reports healthy and a leader is elected (then enables
  // authentication if asked to). A start in which a member exits early (say, a
  // port taken between picking and binding) is retried on fresh ports a few
  // times. NOT_FOUND when etcd (or, for TLS, openssl) is not on PATH; other
  // errors carry the members' log tails.
  static absl::StatusOr<std::unique_ptr<EtcdTestCluster>> Start(
      int members = 3, EtcdTestClusterOptions options = {});

  // Kills every member and removes the data directories and logs.
  ~EtcdTestCluster();

  EtcdTestCluster(const EtcdTestCluster&) = delete;
  EtcdTestCluster& operator=(const EtcdTestCluster&) = delete;

  // Members are indexed 0 .. size() - 1; passing any other index aborts.
  int size() const { return static_cast<int>(members_.size()); }

  // "127.0.0.1:port" of each member's client URL, in member order (member i is
  // named "m<i+1>"). Stable across Kill/Restart.
  std::vector<std::string> client_endpoints() const;
  // client_endpoints() joined with ',', as etcdctl's --endpoints takes them.
  std::string endpoints_flag() const;
  // Options for a client of every member: the endpoints and, with TLS, the CA
  // and the client certificate and key (no username).
  EtcdOptions client_options() const;

  // With TLS: the PEM files of the CA, and of a client certificate it signed
  // and its key; "" without TLS.
  const std::string& ca_file() const { return ca_file_; }
  const std::string& client_cert_file() const { return client_cert_file_; }
  const std::string& client_key_file() const { return client_key_file_; }

  // SIGKILL member `i` and reap it. OK when it is already down.
  absl::Status Kill(int i);
  // SIGTERM member `i`; SIGKILL if it has not exited 10 s later. OK when it is
  // already down.
  absl::Status Stop(int i);
  // Starts member `i` again with its name, ports and data directory. Returns
  // once the process is spawned; use WaitHealthy() to wait for it to rejoin.
  // FAILED_PRECONDITION when it is running.
  absl::Status Restart(int i);
  // Whether member `i`'s process is alive (reaps it if it has exited).
  bool IsRunning(int i);

  // Polls until member `i` answers /health with "true". FAILED_PRECONDITION at
  // once if its process is not running or exits; DEADLINE_EXCEEDED (with its
  // log tail) when `timeout` passes.
  absl::Status WaitHealthy(int i, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Polls until every member then running answers /health with "true" and
  // LeaderIndex() succeeds. FAILED_PRECONDITION when no member is running;
  // DEADLINE_EXCEEDED after `timeout`.
  absl::Status WaitClusterHealthy(std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // The index of the current leader. Asks every running member for its status;
  // succeeds only when a quorum of the cluster's members name the same leader
  // and that leader is a running member that names itself. UNAVAILABLE
  // otherwise (for example during an election).
  absl::StatusOr<int> LeaderIndex();
  // Polls LeaderIndex() until it succeeds with a member other than `not_index`
  // (pass -1 for any), or DEADLINE_EXCEEDED after `timeout`.
  absl::StatusOr<int> WaitForLeader(std::chrono::milliseconds timeout, int not_index = -1);

  // Runs `etcdctl --endpoints=<the plain listeners> <args...>` (as root when
  // authentication is on) and returns its stdout. A later --endpoints or
  // --user in `args` overrides ours. INTERNAL (with
  // stderr) when it exits non-zero; DEADLINE_EXCEEDED (after killing it) when
  // it runs past `timeout`.
  absl::StatusOr<std::string> Etcdctl(const std::vector<std::string>& args,
                                      std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // The last `max_bytes` of member `i`'s log (etcd's stdout and stderr), for
  // failure messages.
  std::string LogTail(int i, size_t max_bytes = 4096) const;
  // LogTail of every member, each under a header line.
  std::string AllLogTails(size_t max_bytes_each = 2048) const;

  // Member `i`'s data directory.
  const std::string& data_dir(int i) const;

 private:
  struct Member {
    std::string name;
    int client_port = 0;
    // The plain listener the harness uses: client_port without TLS.
    int control_port = 0;
    int peer_port = 0;
    std::string data_dir;
    std::string log_path;
    pid_t pid = -1;         // -1 when not running
    std::string last_exit;  // how the last process ended, for messages
  };

  EtcdTestCluster();
  // Kills every member and removes root_dir_; idempotent.
  void Shutdown();

  // Spawns member `i`; `initial_state` is "new" or "existing".
  absl::Status Spawn(int i, const std::string& initial_state);
  // Waits (bounded) for member `i`'s process to end after a signal.
  absl::Status AwaitExit(int i, std::chrono::milliseconds timeout);
  // One /health request to member `i`: OK when it answers "true".
  absl::Status CheckHealth(int i, std::chrono::milliseconds timeout) const;
  // Start()'s wait: every member running and healthy, and a leader.
  absl::Status WaitStarted(std::chrono::milliseconds timeout);
  // Makes the CA and the server and client certificates under root_dir_.
  absl::Status MakeCertificates();
  // Creates the root user and role and enables authentication.
  absl::Status EnableAuth();
  std::string ControlEndpoints() const;
  void CheckIndex(int i) const;

  EtcdTestClusterOptions options_;
  std::string etcd_binary_;
  std::string etcdctl_binary_;
  std::string openssl_binary_;
  std::string ca_file_;
  std::string client_cert_file_;
  std::string client_key_file_;
  std::string server_cert_file_;
  std::string server_key_file_;
  bool auth_enabled_ = false;
  std::string root_dir_;  // removed by the destructor
  std::string cluster_token_;
  std::string initial_cluster_;
  std::vector<Member> members_;
};

// A GoogleTest fixture whose suite shares one 3-member cluster, started
// before the suite's first test and stopped after its last. Tests keep their
// keys apart (a prefix each) and restart any member they stop. A derived
// suite with more to set up calls these from its own SetUpTestSuite /
// TearDownTestSuite.
class SharedEtcdClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override;  // fails the test if the cluster did not start

  // A client of every member of the shared cluster; null (failing the test)
  // if it cannot be made.
  static std::unique_ptr<EtcdClient> ConnectClient();

  static EtcdTestCluster* cluster_;
};

// Revokes lease `id` directly, as etcd does when a lease expires, so that its
// holder finds it gone at its next refresh. Fails the test on an error.
void RevokeLease(EtcdClient& client, int64_t id);

// Polls `condition` every 20 ms until it holds (true) or `timeout` passes
// (false).
template <typename Condition>
bool Eventually(Condition condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace streamgrid::etcd::testing
