#include "etcd/testing/etcd_test_cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string_view>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/strings.h"
#include "etcd/testing/subprocess.h"
#include "grpcpp/client_context.h"
#include "nlohmann/json.hpp"

namespace streamgrid::etcd::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr int kStartAttempts = 3;
constexpr milliseconds kStartTimeout = std::chrono::seconds(30);
constexpr milliseconds kStopGrace = std::chrono::seconds(10);
constexpr milliseconds kPollInterval{25};
constexpr milliseconds kRequestTimeout{1000};

// Ports on 127.0.0.1 that were free a moment ago: each is bound to port 0 and
// the kernel's choice read back. All are held until all are chosen, so they
// are distinct, then released for etcd to take.
absl::StatusOr<std::vector<int>> PickFreePorts(int count) {
  std::vector<std::unique_ptr<Fd>> sockets;
  std::vector<int> ports;
  for (int k = 0; k < count; ++k) {
    auto socket = std::make_unique<Fd>(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (socket->get() < 0) return ErrnoStatus(errno, "socket");
    sockaddr_in address = {};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    if (::bind(socket->get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      return ErrnoStatus(errno, "bind 127.0.0.1:0");
    }
    socklen_t length = sizeof address;
    if (::getsockname(socket->get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      return ErrnoStatus(errno, "getsockname");
    }
    ports.push_back(ntohs(address.sin_port));
    sockets.push_back(std::move(socket));
  }
  return ports;
}

struct HttpResponse {
  int status = 0;
  std::string body;
};

// One HTTP/1.0 request to 127.0.0.1:`port` (so the reply is never chunked and
// ends when the server closes), all of it within `timeout`.
absl::StatusOr<HttpResponse> HttpRequest(int port, std::string_view method, std::string_view path,
                                         std::string_view body, milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  Fd socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (socket.get() < 0) return ErrnoStatus(errno, "socket");
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  std::string where = absl::StrCat("127.0.0.1:", port);

  // Waits until the socket is ready for `events`, or the deadline.
  auto await = [&](short events) -> absl::Status {
    while (true) {
      milliseconds left = Remaining(deadline);
      if (left.count() == 0) {
        return absl::DeadlineExceededError(absl::StrCat("HTTP ", where, " timed out"));
      }
      pollfd pfd = {socket.get(), events, 0};
      int ready = ::poll(&pfd, 1, static_cast<int>(left.count()));
      if (ready > 0) return absl::OkStatus();
      if (ready < 0 && errno != EINTR) return ErrnoStatus(errno, "poll");
    }
  };

  if (::connect(socket.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    if (errno != EINPROGRESS) return ErrnoStatus(errno, absl::StrCat("connect ", where));
    if (absl::Status ready = await(POLLOUT); !ready.ok()) return ready;
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(socket.get(), SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) return ErrnoStatus(error, absl::StrCat("connect ", where));
  }

  std::string request =
      absl::StrCat(ToAbsl(method), " ", ToAbsl(path), " HTTP/1.0\r\nHost: ", where,
                   "\r\nContent-Type: application/json\r\n", "Content-Length: ", body.size(),
                   "\r\n\r\n", ToAbsl(body));
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(socket.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (errno == EAGAIN || errno == EINTR) {
      if (absl::Status ready = await(POLLOUT); !ready.ok()) return ready;
    } else {
      return ErrnoStatus(errno, absl::StrCat("send to ", where));
    }
  }

  std::string reply;
  while (true) {
    char buffer[4096];
    ssize_t n = ::recv(socket.get(), buffer, sizeof buffer, 0);
    if (n > 0) {
      reply.append(buffer, static_cast<size_t>(n));
      if (reply.size() > (1 << 20)) return absl::InternalError("HTTP reply too large");
    } else if (n == 0) {
      break;
    } else if (errno == EAGAIN || errno == EINTR) {
      if (absl::Status ready = await(POLLIN); !ready.ok()) return ready;
    } else {
      return ErrnoStatus(errno, absl::StrCat("recv from ", where));
    }
  }

  // "HTTP/1.x NNN reason\r\n" headers "\r\n\r\n" body
  size_t space = reply.find(' ');
  size_t header_end = reply.find("\r\n\r\n");
  std::optional<int64_t> status;
  if (space != std::string::npos && reply.size() >= space + 4) {
    status = ParseInt64(std::string_view(reply).substr(space + 1, 3));
  }
  if (!reply.starts_with("HTTP/") || !status || header_end == std::string::npos) {
    return absl::InternalError(absl::StrCat("malformed HTTP reply from ", where));
  }
  return HttpResponse{static_cast<int>(*status), reply.substr(header_end + 4)};
}

std::string ReadTail(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "(no log)";
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  std::streamoff start = std::max<std::streamoff>(0, size - static_cast<std::streamoff>(max_bytes));
  in.seekg(start);
  std::string tail(static_cast<size_t>(size - start), '\0');
  in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  return tail;
}

// Clusters not yet destroyed, for the atexit handler. Never destroyed itself,
// so it outlives every static destructor.
struct LiveClusters {
  std::mutex mu;
  std::set<EtcdTestCluster*> clusters;
};

LiveClusters& Live() {
  static LiveClusters* live = new LiveClusters();
  return *live;
}

std::string UniqueToken() {
  static std::atomic<int> counter{0};
  std::random_device random;
  return absl::StrCat("streamgrid-test-", ::getpid(), "-", counter.fetch_add(1), "-", random());
}

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdTestCluster>> EtcdTestCluster::Start(
    int members, EtcdTestClusterOptions options) {
  if (members < 1) return absl::InvalidArgumentError("an etcd cluster needs at least one member");
  std::string etcd = FindOnPath("etcd");
  std::string etcdctl = FindOnPath("etcdctl");
  if (etcd.empty() || etcdctl.empty()) {
    return absl::NotFoundError("etcd and etcdctl must be on PATH to run an etcd test cluster");
  }
  std::string openssl = options.tls ? FindOnPath("openssl") : "";
  if (options.tls && openssl.empty()) {
    return absl::NotFoundError("openssl must be on PATH to run an etcd test cluster with TLS");
  }

  absl::Status last_error;
  for (int attempt = 1; attempt <= kStartAttempts; ++attempt) {
    std::unique_ptr<EtcdTestCluster> cluster(new EtcdTestCluster());
    cluster->etcd_binary_ = etcd;
    cluster->etcdctl_binary_ = etcdctl;
    cluster->openssl_binary_ = openssl;
    cluster->options_ = options;
    cluster->cluster_token_ = UniqueToken();

    const char* tmp = getenv("TMPDIR");
    std::string pattern =
        absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/streamgrid-etcd-test-XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr) return ErrnoStatus(errno, "mkdtemp " + pattern);
    cluster->root_dir_ = pattern;
    if (options.tls) {
      if (absl::Status s = cluster->MakeCertificates(); !s.ok()) return s;
    }

    const int ports_each = options.tls ? 3 : 2;
    absl::StatusOr<std::vector<int>> ports = PickFreePorts(ports_each * members);
    if (!ports.ok()) return ports.status();
    std::vector<std::string> peers;
    for (int i = 0; i < members; ++i) {
      Member member;
      member.name = absl::StrCat("m", i + 1);
      member.client_port = (*ports)[ports_each * i];
      member.peer_port = (*ports)[ports_each * i + 1];
      member.control_port = options.tls ? (*ports)[ports_each * i + 2] : member.client_port;
      // etcd creates the data directory itself, with the 0700 mode it wants.
      member.data_dir = absl::StrCat(cluster->root_dir_, "/", member.name, ".data");
      member.log_path = absl::StrCat(cluster->root_dir_, "/", member.name, ".log");
      peers.push_back(absl::StrCat(member.name, "=http://127.0.0.1:", member.peer_port));
      cluster->members_.push_back(std::move(member));
    }
    cluster->initial_cluster_ = absl::StrJoin(peers, ",");

    absl::Status status;
    for (int i = 0; i < members && status.ok(); ++i) status = cluster->Spawn(i, "new");
    if (status.ok()) status = cluster->WaitStarted(kStartTimeout);
    if (status.ok() && !options.root_password.empty()) status = cluster->EnableAuth();
    if (status.ok()) return cluster;

    last_error =
        absl::Status(status.code(), absl::StrCat("etcd test cluster start (attempt ", attempt,
                                                 " of ", kStartAttempts, "): ", status.message(),
                                                 "\n", cluster->AllLogTails()));
    // Only an early exit (typically a port taken before etcd bound it) is worth
    // another try; a cluster that stays up but never gets healthy will not.
    if (status.code() != absl::StatusCode::kFailedPrecondition) break;
  }
  return last_error;
}

EtcdTestCluster::EtcdTestCluster() {
  static std::once_flag once;
  std::call_once(once, [] {
    std::atexit([] {
      LiveClusters& live = Live();
      std::lock_guard<std::mutex> lock(live.mu);
      for (EtcdTestCluster* cluster : live.clusters) cluster->Shutdown();
    });
  });
  LiveClusters& live = Live();
  std::lock_guard<std::mutex> lock(live.mu);
  live.clusters.insert(this);
}

EtcdTestCluster::~EtcdTestCluster() {
  {
    LiveClusters& live = Live();
    std::lock_guard<std::mutex> lock(live.mu);
    live.clusters.erase(this);
  }
  Shutdown();
}

void EtcdTestCluster::Shutdown() {
  for (Member& member : members_) {
    if (member.pid > 0) ::kill(member.pid, SIGKILL);
  }
  for (int i = 0; i < size(); ++i) AwaitExit(i, kKillWait).IgnoreError();
  if (!root_dir_.empty()) {
    std::error_code ignored;
    fs::remove_all(root_dir_, ignored);
    root_dir_.clear();
  }
}

std::vector<std::string> EtcdTestCluster::client_endpoints() const {
  std::vector<std::string> endpoints;
  for (const Member& member : members_) {
    endpoints.push_back(absl::StrCat("127.0.0.1:", member.client_port));
  }
  return endpoints;
}

std::string EtcdTestCluster::endpoints_flag() const {
  return absl::StrJoin(client_endpoints(), ",");
}

std::string EtcdTestCluster::ControlEndpoints() const {
  std::vector<std::string> endpoints;
  for (const Member& member : members_) {
    endpoints.push_back(absl::StrCat("127.0.0.1:", member.control_port));
  }
  return absl::StrJoin(endpoints, ",");
}

EtcdOptions EtcdTestCluster::client_options() const {
  return {.endpoints = client_endpoints(),
          .tls_ca_file = ca_file_,
          .tls_cert_file = client_cert_file_,
          .tls_key_file = client_key_file_};
}

absl::Status EtcdTestCluster::MakeCertificates() {
  ca_file_ = root_dir_ + "/ca.crt";
  const std::string ca_key = root_dir_ + "/ca.key";
  server_cert_file_ = root_dir_ + "/server.crt";
  server_key_file_ = root_dir_ + "/server.key";
  client_cert_file_ = root_dir_ + "/client.crt";
  client_key_file_ = root_dir_ + "/client.key";
  const std::string server_ext = root_dir_ + "/server.ext";
  const std::string client_ext = root_dir_ + "/client.ext";
  {
    std::ofstream(server_ext) << "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                 "extendedKeyUsage=serverAuth,clientAuth\n";
    std::ofstream(client_ext) << "extendedKeyUsage=clientAuth\n";
  }
  // EC keys: made at once, where RSA keys take a while on a busy machine.
  const std::vector<std::string> key = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                                        "-nodes"};
  auto with_key = [&](std::vector<std::string> args) {
    args.insert(args.begin() + 2, key.begin(), key.end());
    return args;
  };
  const std::vector<std::vector<std::string>> steps = {
      with_key({"openssl", "req", "-x509", "-days", "2", "-subj", "/CN=streamgrid-test-ca",
                "-keyout", ca_key, "-out", ca_file_}),
      with_key({"openssl", "req", "-subj", "/CN=etcd-test-server", "-keyout", server_key_file_,
                "-out", root_dir_ + "/server.csr"}),
      {"openssl", "x509", "-req", "-days", "2", "-in", root_dir_ + "/server.csr", "-CA", ca_file_,
       "-CAkey", ca_key, "-CAcreateserial", "-extfile", server_ext, "-out", server_cert_file_},
      with_key({"openssl", "req", "-subj", "/CN=streamgrid-test-client", "-keyout",
                client_key_file_, "-out", root_dir_ + "/client.csr"}),
      {"openssl", "x509", "-req", "-days", "2", "-in", root_dir_ + "/client.csr", "-CA", ca_file_,
       "-CAkey", ca_key, "-CAcreateserial", "-extfile", client_ext, "-out", client_cert_file_},
  };
  for (const std::vector<std::string>& step : steps) {
    absl::StatusOr<CommandResult> result =
        RunCommand(openssl_binary_, step, CleanEnvironment(), std::chrono::seconds(30));
    if (!result.ok()) return result.status();
    if (!WIFEXITED(result->wait_status) || WEXITSTATUS(result->wait_status) != 0) {
      return absl::InternalError(absl::StrCat(absl::StrJoin(step, " "), " ",
                                              DescribeWaitStatus(result->wait_status),
                                              "; stderr: ", result->err));
    }
  }
  return absl::OkStatus();
}

absl::Status EtcdTestCluster::EnableAuth() {
  const std::vector<std::vector<std::string>> steps = {
      {"role", "add", "root"},
      {"user", "add", "root", "--new-user-password=" + options_.root_password},
      {"user", "grant-role", "root", "root"},
      {"auth", "enable"},
  };
  for (const std::vector<std::string>& step : steps) {
    if (absl::StatusOr<std::string> out = Etcdctl(step); !out.ok()) return out.status();
  }
  auth_enabled_ = true;
  return absl::OkStatus();
}

absl::Status EtcdTestCluster::Kill(int i) {
  CheckIndex(i);
  if (!IsRunning(i)) return absl::OkStatus();
  ::kill(members_[i].pid, SIGKILL);
  return AwaitExit(i, kKillWait);
}

absl::Status EtcdTestCluster::Stop(int i) {
  CheckIndex(i);
  if (!IsRunning(i)) return absl::OkStatus();
  ::kill(members_[i].pid, SIGTERM);
  if (AwaitExit(i, kStopGrace).ok()) return absl::OkStatus();
  ::kill(members_[i].pid, SIGKILL);
  return AwaitExit(i, kKillWait);
}

absl::Status EtcdTestCluster::Restart(int i) {
  CheckIndex(i);
  if (IsRunning(i)) {
    return absl::FailedPreconditionError(
        absl::StrCat("etcd member ", members_[i].name, " is still running"));
  }
  return Spawn(i, "existing");
}

bool EtcdTestCluster::IsRunning(int i) {
  CheckIndex(i);
  Member& member = members_[i];
  if (member.pid <= 0) return false;
  int status = 0;
  pid_t done = ::waitpid(member.pid, &status, WNOHANG);
  if (done == 0) return true;
  member.last_exit = done == member.pid ? DescribeWaitStatus(status) : "lost (not our child)";
  member.pid = -1;
  return false;
}

absl::Status EtcdTestCluster::WaitHealthy(int i, milliseconds timeout) {
  CheckIndex(i);
  const Clock::time_point deadline = Clock::now() + timeout;
  while (true) {
    if (!IsRunning(i)) {
      return absl::FailedPreconditionError(absl::StrCat("etcd member ", members_[i].name,
                                                        " is not running (", members_[i].last_exit,
                                                        ")\n", LogTail(i)));
    }
    absl::Status health = CheckHealth(i, std::min(kRequestTimeout, Remaining(deadline)));
    if (health.ok()) return health;
    if (Clock::now() + kPollInterval >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("etcd member ", members_[i].name,
                                                      " not healthy after ", timeout.count(),
                                                      " ms: ", health.message(), "\n", LogTail(i)));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

absl::Status EtcdTestCluster::WaitClusterHealthy(milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (true) {
    absl::Status status;
    bool any_running = false;
    for (int i = 0; i < size() && status.ok(); ++i) {
      if (!IsRunning(i)) continue;
      any_running = true;
      status = CheckHealth(i, std::min(kRequestTimeout, Remaining(deadline)));
    }
    if (!any_running) return absl::FailedPreconditionError("no etcd member is running");
    if (status.ok()) status = LeaderIndex().status();
    if (status.ok()) return status;
    if (Clock::now() + kPollInterval >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("etcd cluster not healthy after ",
                                                      timeout.count(), " ms: ", status.message()));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

absl::Status EtcdTestCluster::WaitStarted(milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (true) {
    absl::Status status;
    for (int i = 0; i < size(); ++i) {
      if (!IsRunning(i)) {
        return absl::FailedPreconditionError(absl::StrCat("etcd member ", members_[i].name,
                                                          " exited while starting (",
                                                          members_[i].last_exit, ")"));
      }
    }
    for (int i = 0; i < size() && status.ok(); ++i) {
      status = CheckHealth(i, std::min(kRequestTimeout, Remaining(deadline)));
    }
    if (status.ok()) status = LeaderIndex().status();
    if (status.ok()) return status;
    if (Clock::now() + kPollInterval >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("etcd cluster not healthy after ",
                                                      timeout.count(), " ms: ", status.message()));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

absl::StatusOr<int> EtcdTestCluster::LeaderIndex() {
  // Each running member's own id and the leader id it reports ("0" for none).
  std::map<std::string, int> index_by_id;
  std::map<std::string, int> votes;
  std::string errors;
  for (int i = 0; i < size(); ++i) {
    if (!IsRunning(i)) continue;
    absl::StatusOr<HttpResponse> response = HttpRequest(
        members_[i].control_port, "POST", "/v3/maintenance/status", "{}", kRequestTimeout);
    if (!response.ok() || response->status != 200) {
      absl::StrAppend(&errors, " ", members_[i].name, ": ",
                      response.ok() ? absl::StrCat("HTTP ", response->status)
                                    : std::string(response.status().message()));
      continue;
    }
    nlohmann::json status = nlohmann::json::parse(response->body, nullptr, false);
    // The gateway writes uint64 fields as JSON strings.
    if (!status.is_object() || !status.contains("header") ||
        !status["header"].contains("member_id") || !status["header"]["member_id"].is_string()) {
      absl::StrAppend(&errors, " ", members_[i].name, ": unexpected status reply");
      continue;
    }
    index_by_id[status["header"]["member_id"].get<std::string>()] = i;
    std::string leader = status.value("leader", "0");
    if (leader != "0") ++votes[leader];
  }
  const int quorum = size() / 2 + 1;
  for (const auto& [leader, count] : votes) {
    auto self = index_by_id.find(leader);
    if (count >= quorum && self != index_by_id.end()) return self->second;
  }
  return absl::UnavailableError(
      absl::StrCat("no leader confirmed by a quorum of ", quorum, " members;", errors));
}

absl::StatusOr<int> EtcdTestCluster::WaitForLeader(milliseconds timeout, int not_index) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (true) {
    absl::StatusOr<int> leader = LeaderIndex();
    if (leader.ok() && *leader != not_index) return leader;
    if (Clock::now() + kPollInterval >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("no new etcd leader within ", timeout.count(), " ms: ",
                       leader.ok() ? absl::StrCat("still member ", *leader)
                                   : std::string(leader.status().message())));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

absl::StatusOr<std::string> EtcdTestCluster::Etcdctl(const std::vector<std::string>& args,
                                                     milliseconds timeout) {
  std::vector<std::string> argv = {etcdctl_binary_, "--endpoints=" + ControlEndpoints()};
  if (auth_enabled_) argv.push_back("--user=root:" + options_.root_password);
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<std::string> env = CleanEnvironment();
  env.push_back("ETCDCTL_API=3");
  std::string command = absl::StrJoin(argv, " ");
  absl::StatusOr<CommandResult> result =
      RunCommand(etcdctl_binary_, std::move(argv), std::move(env), timeout);
  if (!result.ok()) {
    return absl::Status(result.status().code(),
                        absl::StrCat(command, ": ", result.status().message()));
  }
  if (!WIFEXITED(result->wait_status) || WEXITSTATUS(result->wait_status) != 0) {
    return absl::InternalError(absl::StrCat(command, " ", DescribeWaitStatus(result->wait_status),
                                            "; stderr: ", result->err));
  }
  return std::move(result->out);
}

std::string EtcdTestCluster::LogTail(int i, size_t max_bytes) const {
  CheckIndex(i);
  return ReadTail(members_[i].log_path, max_bytes);
}

std::string EtcdTestCluster::AllLogTails(size_t max_bytes_each) const {
  std::string all;
  for (int i = 0; i < size(); ++i) {
    absl::StrAppend(&all, "----- etcd member ", members_[i].name, " (", members_[i].log_path,
                    ") -----\n", LogTail(i, max_bytes_each), "\n");
  }
  return all;
}

const std::string& EtcdTestCluster::data_dir(int i) const {
  CheckIndex(i);
  return members_[i].data_dir;
}

absl::Status EtcdTestCluster::Spawn(int i, const std::string& initial_state) {
  Member& member = members_[i];
  const std::string control_url = absl::StrCat("http://127.0.0.1:", member.control_port);
  const std::string client_url =
      options_.tls ? absl::StrCat("https://127.0.0.1:", member.client_port) : control_url;
  // With TLS, clients get the https:// listener and the harness the plain one.
  const std::string listen_urls = options_.tls ? client_url + "," + control_url : client_url;
  std::string peer_url = absl::StrCat("http://127.0.0.1:", member.peer_port);
  std::vector<std::string> argv = {
      etcd_binary_,
      "--name=" + member.name,
      "--data-dir=" + member.data_dir,
      "--listen-client-urls=" + listen_urls,
      "--advertise-client-urls=" + client_url,
      "--listen-peer-urls=" + peer_url,
      "--initial-advertise-peer-urls=" + peer_url,
      "--initial-cluster=" + initial_cluster_,
      "--initial-cluster-state=" + initial_state,
      "--initial-cluster-token=" + cluster_token_,
      "--experimental-initial-corrupt-check=true",
      // etcd requires an election timeout of at least 5 heartbeats.
      "--heartbeat-interval=50",
      "--election-timeout=500",
      // zap to stderr, which goes to the log file with anything else etcd writes
      // (a Go panic, say).
      "--logger=zap",
      "--log-outputs=stderr",
  };
  if (options_.tls) {
    argv.push_back("--cert-file=" + server_cert_file_);
    argv.push_back("--key-file=" + server_key_file_);
    argv.push_back("--trusted-ca-file=" + ca_file_);
    if (options_.client_cert_auth) argv.push_back("--client-cert-auth");
  }
  if (options_.auth_token_ttl_s > 0) {
    argv.push_back(absl::StrCat("--auth-token-ttl=", options_.auth_token_ttl_s));
  }

  Fd log(::open(member.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (log.get() < 0) return ErrnoStatus(errno, "open " + member.log_path);
  std::string banner = absl::StrCat("===== EtcdTestCluster: starting ", member.name,
                                    " (initial-cluster-state ", initial_state, ") =====\n");
  if (::write(log.get(), banner.data(), banner.size()) < 0) {
    return ErrnoStatus(errno, "write " + member.log_path);
  }
  Fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (null.get() < 0) return ErrnoStatus(errno, "open /dev/null");

  absl::StatusOr<pid_t> pid =
      ForkExec(etcd_binary_, std::move(argv), CleanEnvironment(), null.get(), log.get(), log.get());
  if (!pid.ok()) return pid.status();
  member.pid = *pid;
  member.last_exit.clear();
  return absl::OkStatus();
}

absl::Status EtcdTestCluster::AwaitExit(int i, milliseconds timeout) {
  Member& member = members_[i];
  if (member.pid <= 0) return absl::OkStatus();
  std::optional<int> status = WaitForExit(member.pid, Clock::now() + timeout);
  if (!status) {
    return absl::DeadlineExceededError(absl::StrCat("etcd member ", member.name, " (pid ",
                                                    member.pid, ") did not exit within ",
                                                    timeout.count(), " ms"));
  }
  member.last_exit = DescribeWaitStatus(*status);
  member.pid = -1;
  return absl::OkStatus();
}

absl::Status EtcdTestCluster::CheckHealth(int i, milliseconds timeout) const {
  const Member& member = members_[i];
  absl::StatusOr<HttpResponse> response =
      HttpRequest(member.control_port, "GET", "/health", "", timeout);
  if (!response.ok()) return response.status();
  nlohmann::json health = nlohmann::json::parse(response->body, nullptr, false);
  if (response->status == 200 && health.is_object() && health.value("health", "") == "true") {
    return absl::OkStatus();
  }
  return absl::UnavailableError(
      absl::StrCat(member.name, " /health: HTTP ", response->status, " ", response->body));
}

void EtcdTestCluster::CheckIndex(int i) const {
  if (i < 0 || i >= size()) {
    std::fprintf(stderr, "EtcdTestCluster: member index %d out of range [0, %d)\n", i, size());
    std::abort();
  }
}

EtcdTestCluster* SharedEtcdClusterTest::cluster_ = nullptr;

void SharedEtcdClusterTest::SetUpTestSuite() {
  absl::StatusOr<std::unique_ptr<EtcdTestCluster>> cluster = EtcdTestCluster::Start(3);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  cluster_ = cluster->release();
}

void SharedEtcdClusterTest::TearDownTestSuite() {
  delete cluster_;
  cluster_ = nullptr;
}

void SharedEtcdClusterTest::SetUp() { ASSERT_NE(cluster_, nullptr) << "etcd did not start"; }

std::unique_ptr<EtcdClient> SharedEtcdClusterTest::ConnectClient() {
  if (cluster_ == nullptr) {
    ADD_FAILURE() << "etcd did not start";
    return nullptr;
  }
  absl::StatusOr<std::unique_ptr<EtcdClient>> client =
      EtcdClient::Create({.endpoints = cluster_->client_endpoints()});
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

void RevokeLease(EtcdClient& client, int64_t id) {
  size_t index = 0;
  etcdserverpb::Lease::Stub stub(client.PreferredChannel(&index));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(id);
  etcdserverpb::LeaseRevokeResponse response;
  grpc::Status status = stub.LeaseRevoke(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

}  // namespace streamgrid::etcd::testing
