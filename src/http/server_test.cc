#include "http/server.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <latch>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "http/send_file.h"

namespace streamgrid::http {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A body source producing `size` bytes of a known pattern.
class PatternSource : public BodySource {
 public:
  explicit PatternSource(uint64_t size) : left_(size) {}
  asio::awaitable<absl::StatusOr<size_t>> Read(std::span<char> buffer) override {
    size_t n = std::min<uint64_t>(left_, buffer.size());
    for (size_t i = 0; i < n; ++i) buffer[i] = static_cast<char>('a' + (produced_++ % 26));
    left_ -= n;
    co_return n;
  }

 private:
  uint64_t left_;
  uint64_t produced_ = 0;
};

// Keeps a copy of every record the server reports.
class RecordingObserver : public RequestObserver {
 public:
  struct Copy {
    std::string route, target, id;
    unsigned status;
    uint64_t bytes;
    bool completed;
  };
  void OnRequest(const RequestRecord& r) override {
    std::lock_guard lock(mu_);
    copies_.push_back({std::string(r.route), std::string(r.target), std::string(r.request_id),
                       r.status, r.body_bytes, r.completed});
  }
  // The record of the request for `target`, waiting up to 10 s for it (the
  // server reports a request after its answer is out).
  std::optional<Copy> Of(std::string_view target) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    do {
      {
        std::lock_guard lock(mu_);
        for (const Copy& c : copies_) {
          if (c.target == target) return c;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    } while (std::chrono::steady_clock::now() < deadline);
    return std::nullopt;
  }

 private:
  std::mutex mu_;
  std::vector<Copy> copies_;
};

// The value of the response header `name` in `reply`, or "".
std::string HeaderOf(const std::string& reply, std::string_view name) {
  const std::string prefix =
      absl::StrCat("\r\n", absl::string_view(name.data(), name.size()), ": ");
  const size_t at = reply.find(prefix);
  if (at == std::string::npos) return "";
  const size_t from = at + prefix.size();
  return reply.substr(from, reply.find("\r\n", from) - from);
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.Add(Verb::get, "/hello", [](Request&) -> asio::awaitable<Response> {
      co_return Response::Text(Status::ok, "hello");
    });
    router_.Add(Verb::post, "/count",
                [](Request& request) -> asio::awaitable<Response> {
                  std::vector<char> buffer(4096);
                  uint64_t total = 0;
                  for (;;) {
                    absl::StatusOr<size_t> n = co_await request.body->Read(buffer);
                    if (!n.ok()) co_return ErrorFromStatus(n.status());
                    if (*n == 0) break;
                    total += *n;
                  }
                  co_return Response::Text(Status::ok, absl::StrCat(total));
                },
                {.body_limit = 1 << 20});
    router_.Add(Verb::get, "/stream", [](Request&) -> asio::awaitable<Response> {
      Response r;
      r.stream = std::make_unique<PatternSource>(3 << 20);
      r.stream_length = 3 << 20;
      co_return r;
    });
    // A shared in-memory body of 6 MiB (more than a loopback socket takes at
    // once, so sendfile meets a full socket), also held in a memfd.
    shared_ = std::make_shared<SharedBody>(6 << 20);
    auto serve_shared = [this](Request& request, int fd) -> asio::awaitable<Response> {
      // ?from=N: the body starts at offset N of the file.
      size_t from = request.query.empty() ? 0 : std::stoul(request.query.substr(5));
      Response r;
      r.shared_owner = shared_;
      r.shared_bytes = std::string_view(shared_->bytes).substr(from);
      r.shared_fd = fd;
      r.shared_fd_offset = from;
      co_return r;
    };
    router_.Add(Verb::get, "/shared/memfd", [this, serve_shared](Request& request) {
      return serve_shared(request, shared_->memfd);
    });
    router_.Add(Verb::get, "/shared/memory",
                [serve_shared](Request& request) { return serve_shared(request, -1); });
    // A descriptor sendfile refuses (a pipe): the body must still arrive, from memory.
    router_.Add(Verb::get, "/shared/unsendable", [this, serve_shared](Request& request) {
      return serve_shared(request, shared_->pipe[0]);
    });
    // A streamed body that sends itself from the memfd (as a local file does).
    router_.Add(Verb::get, "/shared/sendto", [this](Request&) -> asio::awaitable<Response> {
      Response r;
      r.stream = std::make_unique<SendingSource>(shared_);
      r.stream_length = shared_->bytes.size();
      co_return r;
    });
    router_.Add(Verb::options, "/caps", [](Request&) -> asio::awaitable<Response> {
      Response r;
      r.status = Status::no_content;
      r.headers.set("X-Capabilities", "a,b");
      r.headers.set(Field::access_control_allow_origin, "https://not.chosen.here");
      co_return r;
    });
    router_.Add(Verb::get, "/throws", [](Request&) -> asio::awaitable<Response> {
      throw std::runtime_error("boom");
      co_return Response::Text(Status::ok, "unreachable");
    });
    ServerOptions options{
        .port = 0, .threads = 2, .header_timeout = std::chrono::milliseconds(300)};
    options.observers = {&observer_};
    server_ = std::make_unique<HttpServer>(options, router_);
    ASSERT_TRUE(server_->Start().ok());
  }

  int Connect() { return ConnectTo(server_->port()); }

  static int ConnectTo(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    timeval tv{.tv_sec = 20, .tv_usec = 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
  }

  // Sends `request` and returns everything the server sends until it closes.
  std::string Exchange(std::string_view request) { return ExchangeWith(server_->port(), request); }

  static std::string ExchangeWith(uint16_t port, std::string_view request) {
    int fd = ConnectTo(port);
    EXPECT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
    std::string reply = ReadAll(fd);
    ::close(fd);
    return reply;
  }

  static std::string ReadAll(int fd) {
    std::string reply;
    char buf[65536];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) reply.append(buf, static_cast<size_t>(n));
    return reply;
  }

  // A body held both in memory and in a memfd, and a pipe to stand for a
  // descriptor sendfile cannot read.
  struct SharedBody {
    explicit SharedBody(size_t size) {
      bytes.resize(size);
      for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>('A' + (i * 7 + i / 4096) % 26);
      memfd = ::memfd_create("server-test", MFD_CLOEXEC);
      EXPECT_EQ(::write(memfd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
      EXPECT_EQ(::pipe(pipe), 0);
    }
    ~SharedBody() {
      ::close(memfd);
      ::close(pipe[0]);
      ::close(pipe[1]);
    }
    std::string bytes;
    int memfd = -1;
    int pipe[2] = {-1, -1};
  };

  // Sends the shared body's memfd with sendfile; never read.
  class SendingSource : public BodySource {
   public:
    explicit SendingSource(std::shared_ptr<SharedBody> body) : body_(std::move(body)) {}
    asio::awaitable<absl::StatusOr<size_t>> Read(std::span<char>) override {
      co_return absl::InternalError("read although it can send itself");
    }
    asio::awaitable<absl::StatusOr<size_t>> SendTo(int socket, uint64_t max) override {
      absl::StatusOr<size_t> n =
          SendFileOnce(socket, body_->memfd, sent_, static_cast<size_t>(max));
      if (n.ok()) sent_ += *n;
      co_return n;
    }

   private:
    std::shared_ptr<SharedBody> body_;
    uint64_t sent_ = 0;
  };

  Router router_;
  RecordingObserver observer_;
  std::shared_ptr<SharedBody> shared_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, EachAnswerCarriesARequestIdAndIsReported) {
  std::string reply = Exchange("GET /hello?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const std::string id = HeaderOf(reply, "X-Request-Id");
  EXPECT_TRUE(IsSafeRequestId(id)) << reply;
  std::optional<RecordingObserver::Copy> seen = observer_.Of("/hello?x=1");
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->route, "/hello");
  EXPECT_EQ(seen->status, 200u);
  EXPECT_EQ(seen->bytes, 5u);
  EXPECT_TRUE(seen->completed);
  EXPECT_EQ(seen->id, id);

  // Ids differ from request to request.
  reply = Exchange("GET /hello?x=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(HeaderOf(reply, "X-Request-Id"), id);

  // A path no route has is reported without a route.
  reply = Exchange("GET /nowhere/at/all HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  seen = observer_.Of("/nowhere/at/all");
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->route, "");
  EXPECT_EQ(seen->status, 404u);
}

TEST_F(HttpServerTest, TakesTheClientsRequestIdOnlyWhenItIsSafe) {
  std::string reply = Exchange(
      "GET /hello?given HTTP/1.1\r\nHost: x\r\nX-Request-Id: lb-7f3a.2:9_x\r\n"
      "Connection: close\r\n\r\n");
  EXPECT_EQ(HeaderOf(reply, "X-Request-Id"), "lb-7f3a.2:9_x");
  ASSERT_TRUE(observer_.Of("/hello?given").has_value());
  EXPECT_EQ(observer_.Of("/hello?given")->id, "lb-7f3a.2:9_x");

  for (const std::string& bad :
       {std::string("a\"b"), std::string("x/../y"), std::string(65, 'a')}) {
    reply = Exchange(absl::StrCat("GET /hello HTTP/1.1\r\nHost: x\r\nX-Request-Id: ", bad,
                                  "\r\nConnection: close\r\n\r\n"));
    const std::string id = HeaderOf(reply, "X-Request-Id");
    EXPECT_NE(id, bad);
    EXPECT_TRUE(IsSafeRequestId(id)) << id;
  }
  EXPECT_FALSE(IsSafeRequestId(""));
  EXPECT_FALSE(IsSafeRequestId("a b"));
  EXPECT_TRUE(IsSafeRequestId(std::string(64, 'a')));
}

TEST_F(HttpServerTest, ServesAndAddsCors) {
  std::string reply = Exchange("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 200 OK"));
  EXPECT_THAT(reply, HasSubstr("Access-Control-Allow-Origin: *"));
  EXPECT_THAT(reply, HasSubstr("\r\n\r\nhello"));
}

TEST_F(HttpServerTest, SharedBodiesArriveWholeFromMemoryOrDescriptor) {
  for (const char* path :
       {"/shared/memfd", "/shared/memory", "/shared/unsendable", "/shared/sendto"}) {
    for (size_t from : {size_t{0}, size_t{123457}}) {
      if (std::string_view(path) == "/shared/sendto" && from > 0) continue;  // whole only
      SCOPED_TRACE(absl::StrCat(path, " from ", from));
      // Two requests on one connection: the second header must follow the
      // first body exactly, with the right length.
      std::string request =
          absl::StrCat("GET ", path, "?from=", from, " HTTP/1.1\r\nHost: x\r\n\r\n");
      std::string reply =
          Exchange(absl::StrCat(request, "GET ", path, "?from=", from,
                                " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
      const std::string body = shared_->bytes.substr(from);
      const std::string length = absl::StrCat("Content-Length: ", body.size(), "\r\n");
      size_t first_end = reply.find("\r\n\r\n");
      ASSERT_NE(first_end, std::string::npos);
      EXPECT_THAT(reply.substr(0, first_end + 2), StartsWith("HTTP/1.1 200 OK\r\n"));
      EXPECT_THAT(reply.substr(0, first_end + 2), HasSubstr(length));
      ASSERT_GE(reply.size(), first_end + 4 + body.size());
      EXPECT_TRUE(reply.compare(first_end + 4, body.size(), body) == 0);
      std::string second = reply.substr(first_end + 4 + body.size());
      size_t second_end = second.find("\r\n\r\n");
      ASSERT_NE(second_end, std::string::npos);
      EXPECT_THAT(second, StartsWith("HTTP/1.1 200 OK\r\n"));
      EXPECT_THAT(second.substr(0, second_end + 2), HasSubstr("Connection: close\r\n"));
      EXPECT_EQ(second.substr(second_end + 4), body);
    }
  }
}

TEST_F(HttpServerTest, RefusesCrossOriginWritesOfAnyMethodBeforeRouting) {
  // The write rule is the server's, whatever the route: POST to a route, PUT
  // and PATCH to routes that do not exist.
  for (const char* line : {"POST /count", "PUT /count", "PATCH /nowhere", "DELETE /hello"}) {
    std::string reply =
        Exchange(absl::StrCat(line, " HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n",
                              "Content-Length: 5\r\nConnection: close\r\n\r\nhello"));
    EXPECT_THAT(reply, StartsWith("HTTP/1.1 403")) << line;
    EXPECT_THAT(reply, HasSubstr("cross-origin write refused")) << line;
    EXPECT_THAT(reply, ::testing::Not(HasSubstr("Access-Control-Allow-Origin"))) << line;
    EXPECT_THAT(reply, HasSubstr("X-Content-Type-Options: nosniff")) << line;
  }
  std::string same = Exchange(
      "POST /count HTTP/1.1\r\nHost: x:1\r\nOrigin: http://x:1\r\nContent-Length: 5\r\n"
      "Connection: close\r\n\r\nhello");
  EXPECT_THAT(same, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(same, HasSubstr("\r\n\r\n5"));
}

TEST_F(HttpServerTest, KeepAliveServesPipelinedRequests) {
  std::string reply = Exchange(
      "GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\nConnection: "
      "close\r\n\r\n");
  EXPECT_EQ(std::count(reply.begin(), reply.end(), 'h') >= 2, true);
  size_t first = reply.find("HTTP/1.1 200");
  EXPECT_NE(reply.find("HTTP/1.1 200", first + 1), std::string::npos);
}

TEST_F(HttpServerTest, StreamsRequestBodiesOfAnyFraming) {
  std::string body(300000, 'x');
  std::string reply =
      Exchange(absl::StrCat("POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: ", body.size(),
                            "\r\nConnection: close\r\n\r\n", body));
  EXPECT_THAT(reply, HasSubstr("\r\n\r\n300000"));
  reply = Exchange(
      "POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  EXPECT_THAT(reply, HasSubstr("\r\n\r\n11"));
}

TEST_F(HttpServerTest, AnswersExpectContinueBeforeReadingTheBody) {
  int fd = Connect();
  std::string head =
      "POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n"
      "Connection: close\r\n\r\n";
  ::send(fd, head.data(), head.size(), MSG_NOSIGNAL);
  char buf[256];
  ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
  ASSERT_GT(n, 0);
  EXPECT_THAT(std::string(buf, n), StartsWith("HTTP/1.1 100 Continue"));
  ::send(fd, "abcd", 4, MSG_NOSIGNAL);
  EXPECT_THAT(ReadAll(fd), HasSubstr("\r\n\r\n4"));
  ::close(fd);
}

TEST_F(HttpServerTest, RefusesBodiesOverTheRouteLimit) {
  std::string reply =
      Exchange("POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n");
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 413"));
  // Chunked: only discovered while reading.
  std::string chunk(600000, 'y');
  std::string request =
      "POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  for (int i = 0; i < 2; ++i) absl::StrAppend(&request, "927c0\r\n", chunk, "\r\n");
  absl::StrAppend(&request, "0\r\n\r\n");
  EXPECT_THAT(Exchange(request), StartsWith("HTTP/1.1 413"));
}

TEST_F(HttpServerTest, StreamsResponseBodies) {
  std::string reply = Exchange("GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  size_t split = reply.find("\r\n\r\n");
  ASSERT_NE(split, std::string::npos);
  EXPECT_THAT(reply.substr(0, split), HasSubstr("Content-Length: 3145728"));
  std::string body = reply.substr(split + 4);
  ASSERT_EQ(body.size(), 3u << 20);
  EXPECT_EQ(body[0], 'a');
  EXPECT_EQ(body[27], 'b');
}

TEST_F(HttpServerTest, HeadSendsHeadersOnly) {
  std::string reply = Exchange("HEAD /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(reply, HasSubstr("Content-Length: 3145728"));
  EXPECT_EQ(reply.substr(reply.find("\r\n\r\n") + 4), "");
}

TEST_F(HttpServerTest, ErrorsAreClear) {
  EXPECT_THAT(Exchange("GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
              StartsWith("HTTP/1.1 404"));
  std::string wrong = Exchange("DELETE /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(wrong, StartsWith("HTTP/1.1 405"));
  EXPECT_THAT(wrong, HasSubstr("Allow: GET, HEAD, OPTIONS"));
  EXPECT_THAT(Exchange("GET /throws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
              StartsWith("HTTP/1.1 500"));
  EXPECT_THAT(Exchange("BLAH\r\n\r\n"), StartsWith("HTTP/1.1 400"));
  std::string preflight =
      Exchange("OPTIONS /anything HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(preflight, StartsWith("HTTP/1.1 204"));
  EXPECT_THAT(preflight, HasSubstr("Access-Control-Allow-Headers: Range"));
}

TEST_F(HttpServerTest, AGrantedOptionsGetsTheRoutesOwnHeadersButTheGuardsCors) {
  std::string reply = Exchange("OPTIONS /caps HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 204"));
  EXPECT_THAT(reply, HasSubstr("X-Capabilities: a,b"));
  EXPECT_THAT(reply, HasSubstr("Access-Control-Allow-Origin: *"));
  EXPECT_THAT(reply, ::testing::Not(HasSubstr("not.chosen.here")));
  // A refused write preflight stays refused, without the route's headers.
  std::string refused = Exchange(
      "OPTIONS /caps HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n"
      "Access-Control-Request-Method: PATCH\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(refused, StartsWith("HTTP/1.1 403"));
  EXPECT_THAT(refused, ::testing::Not(HasSubstr("X-Capabilities")));
}

TEST_F(HttpServerTest, SilentClientsAreDisconnected) {
  // Half a request line, then nothing: the header timeout (300 ms here) closes it.
  int fd = Connect();
  ::send(fd, "GET /hel", 8, MSG_NOSIGNAL);
  EXPECT_EQ(ReadAll(fd), "");
  ::close(fd);
  // The server still serves others.
  EXPECT_THAT(Exchange("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
              StartsWith("HTTP/1.1 200"));
}

TEST_F(HttpServerTest, StalledBodiesAndUnreadResponsesTimeOut) {
  // Each read of a body and each write must make progress within io_timeout;
  // the event loops' sweep enforces it.
  server_ = std::make_unique<HttpServer>(ServerOptions{.port = 0,
                                                       .threads = 2,
                                                       .io_timeout = std::chrono::milliseconds(300),
                                                       .observers = {&observer_}},
                                         router_);
  ASSERT_TRUE(server_->Start().ok());
  // A body that stops half-way: the handler's read fails as a timeout, which
  // the client is told (408), and the connection ends.
  const std::string stalled =
      "POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789";
  EXPECT_THAT(Exchange(stalled), StartsWith("HTTP/1.1 408"));
  // A client that asks for 6 MiB and never reads: the server gives up once
  // the socket stays full, and reports the answer as not completed.
  int fd = Connect();
  const std::string get = "GET /shared/memory HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(fd, get.data(), get.size(), MSG_NOSIGNAL), static_cast<ssize_t>(get.size()));
  std::optional<RecordingObserver::Copy> record = observer_.Of("/shared/memory");
  ASSERT_TRUE(record.has_value());
  EXPECT_FALSE(record->completed);
  ::close(fd);
  // The others are still served.
  EXPECT_THAT(Exchange("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
              StartsWith("HTTP/1.1 200"));
}

// Sends a request header announcing a body, then waits for the server's
// "100 Continue", which proves a handler is running (the connection is busy).
void StartBusyRequest(int fd) {
  std::string head =
      "POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n"
      "Connection: close\r\n\r\n";
  ASSERT_EQ(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  char buf[256];
  ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
  ASSERT_GT(n, 0);
  ASSERT_THAT(std::string(buf, n), StartsWith("HTTP/1.1 100 Continue"));
}

TEST_F(HttpServerTest, AtTheLimitIdleConnectionsMakeRoom) {
  server_ = std::make_unique<HttpServer>(
      ServerOptions{.port = 0, .threads = 2, .max_connections = 4}, router_);
  ASSERT_TRUE(server_->Start().ok());
  int busy = Connect();
  StartBusyRequest(busy);
  std::vector<int> idle;
  for (int i = 0; i < 10; ++i) idle.push_back(Connect());
  // New clients get served although idle connections fill the limit...
  for (int i = 0; i < 3; ++i) {
    EXPECT_THAT(Exchange("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                StartsWith("HTTP/1.1 200"));
  }
  // ...because the longest-idle ones were closed (EOF, not a timeout)...
  char c;
  EXPECT_EQ(::recv(idle[0], &c, 1, 0), 0);
  EXPECT_GT(server_->evicted(), 0u);
  // ...and never one busy with a request.
  ::send(busy, "abcd", 4, MSG_NOSIGNAL);
  EXPECT_THAT(ReadAll(busy), HasSubstr("\r\n\r\n4"));
  ::close(busy);
  for (int fd : idle) ::close(fd);
}

TEST_F(HttpServerTest, ANewClientWaitsForEvictionsThatLagInsteadOfBeingClosed) {
  server_.reset();
  // A handler that blocks its event-loop thread until released: evictions of
  // the connections on that thread cannot finish meanwhile, as when a loaded
  // machine does not schedule the thread.
  std::promise<void> entered;
  std::latch release(1);
  router_.Add(Verb::get, "/block", [&](Request&) -> asio::awaitable<Response> {
    entered.set_value();
    release.wait();
    co_return Response::Text(Status::ok, "released");
  });
  server_ = std::make_unique<HttpServer>(
      ServerOptions{.port = 0, .threads = 2, .max_connections = 4}, router_);
  ASSERT_TRUE(server_->Start().ok());
  // Connections are dealt to the threads in turn: the first to thread 0 (the
  // acceptor's), the second to thread 1, which the blocked request holds.
  int first = Connect();
  int blocker = Connect();
  const std::string block = "GET /block HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(blocker, block.data(), block.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(block.size()));
  ASSERT_EQ(entered.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  // Idle clients past the limit and its overshoot: half of their evictions
  // are stuck behind the blocked thread.
  std::vector<int> idle;
  for (int i = 0; i < 40; ++i) idle.push_back(Connect());
  for (int i = 0; i < 3000 && server_->connections() < 4 + 16; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GE(server_->connections(), 4 + 16) << "the overshoot was never reached";
  // A new client arrives while evictions lag; they finish once the thread
  // runs again, and the client is then served, not closed.
  int late = Connect();
  const std::string hello = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(late, hello.data(), hello.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(hello.size()));
  release.count_down();
  EXPECT_THAT(ReadAll(late), StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(ReadAll(blocker), HasSubstr("released"));
  for (int fd : idle) ::close(fd);
  ::close(first);
  ::close(late);
  ::close(blocker);
}

// Runs a server in a child process whose descriptors are nearly used up
// (RLIMIT_NOFILE just above what it has open), with no connection limit of
// its own, so that accept itself fails with EMFILE.
class DescriptorShortageTest : public HttpServerTest {
 protected:
  void TearDown() override {
    if (child_ > 0) {
      ::kill(child_, SIGKILL);
      ::waitpid(child_, nullptr, 0);
    }
  }

  // Starts the child; returns its port.
  uint16_t StartChild(int spare_descriptors) {
    server_.reset();  // the child inherits no serving threads
    int pipe_fds[2];
    EXPECT_EQ(::pipe(pipe_fds), 0);
    child_ = ::fork();
    if (child_ == 0) {
      ::close(pipe_fds[0]);
      HttpServer server(ServerOptions{.port = 0, .threads = 1, .max_connections = 100000}, router_);
      if (!server.Start().ok()) ::_exit(1);
      int open = 0;
      for ([[maybe_unused]] const auto& entry :
           std::filesystem::directory_iterator("/proc/self/fd"))
        ++open;
      rlimit limit{};
      ::getrlimit(RLIMIT_NOFILE, &limit);
      limit.rlim_cur = static_cast<rlim_t>(open + spare_descriptors);
      if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) ::_exit(2);
      uint16_t port = server.port();
      if (::write(pipe_fds[1], &port, sizeof(port)) != sizeof(port)) ::_exit(3);
      for (;;) ::pause();
    }
    ::close(pipe_fds[1]);
    uint16_t port = 0;
    EXPECT_EQ(::read(pipe_fds[0], &port, sizeof(port)), static_cast<ssize_t>(sizeof(port)));
    ::close(pipe_fds[0]);
    return port;
  }

  // The child's RLIMIT_NOFILE, or 0 if it cannot be read.
  size_t SoftDescriptorLimit() const {
    std::ifstream limits("/proc/" + std::to_string(child_) + "/limits");
    std::string line;
    while (std::getline(limits, line)) {
      if (line.starts_with("Max open files")) {
        return std::stoul(line.substr(std::string_view("Max open files").size()));
      }
    }
    return 0;
  }

  // How many of the child's descriptors are numbered below `limit` (only
  // those take the slots RLIMIT_NOFILE leaves).
  size_t DescriptorsBelow(size_t limit) const {
    size_t count = 0;
    std::error_code ec;
    for (const auto& entry :
         std::filesystem::directory_iterator("/proc/" + std::to_string(child_) + "/fd", ec)) {
      if (std::stoul(entry.path().filename().string()) < limit) ++count;
    }
    return count;
  }

  pid_t child_ = -1;
};

TEST_F(DescriptorShortageTest, IdleConnectionsGiveWayWhenDescriptorsRunOut) {
  const uint16_t port = StartChild(10);
  std::vector<int> idle;
  for (int i = 0; i < 40; ++i) idle.push_back(ConnectTo(port));
  EXPECT_THAT(ExchangeWith(port, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
              StartsWith("HTTP/1.1 200"));
  char c;
  EXPECT_EQ(::recv(idle[0], &c, 1, 0), 0);  // closed to make room
  for (int fd : idle) ::close(fd);
}

TEST_F(DescriptorShortageTest, TheLastDescriptorTakenDropsNobodyUntilAClientWaits) {
  const uint16_t port = StartChild(10);
  // Linux's accept fails for want of a descriptor even with nobody queued.
  // Fill every descriptor with idle clients: none may be dropped for that.
  const size_t limit = SoftDescriptorLimit();
  ASSERT_GT(limit, 0u);
  const size_t free_slots = limit - DescriptorsBelow(limit);
  std::vector<int> idle;
  for (size_t i = 0; i < free_slots; ++i) idle.push_back(ConnectTo(port));
  bool full = false;
  for (int i = 0; i < 2000 && !full; ++i) {
    full = DescriptorsBelow(limit) == limit;
    if (!full) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(full) << "the clients were never all accepted, or one was dropped";
  for (int fd : idle) {
    const std::string hello = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    ::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL);
    EXPECT_THAT(ReadAll(fd), StartsWith("HTTP/1.1 200"));
    ::close(fd);
  }
}

TEST_F(DescriptorShortageTest, WithEveryConnectionBusyNewOnesAreClosedNotLeftWaiting) {
  const uint16_t port = StartChild(10);
  // Connections whose handlers wait for a body, until the descriptors are
  // gone: the next client is then accepted on the spare descriptor and closed
  // at once (it reads EOF) instead of waiting in the backlog forever.
  std::vector<int> busy;
  int refused = -1;
  const std::string head =
      "POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n"
      "Connection: close\r\n\r\n";
  for (int i = 0; i < 30 && refused < 0; ++i) {
    int fd = ConnectTo(port);
    ::send(fd, head.data(), head.size(), MSG_NOSIGNAL);
    char buf[256];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n > 0 && std::string(buf, n).starts_with("HTTP/1.1 100")) {
      busy.push_back(fd);
    } else {
      refused = fd;
    }
  }
  ASSERT_GE(refused, 0) << "the descriptors never ran out";
  EXPECT_GE(busy.size(), 5u);
  ::close(refused);
  for (int i = 0; i < 3; ++i) {
    int fd = ConnectTo(port);
    ::send(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", 33, MSG_NOSIGNAL);
    EXPECT_EQ(ReadAll(fd), "");
    ::close(fd);
  }
  // Once the busy requests end, service resumes.
  for (int fd : busy) {
    ::send(fd, "abcd", 4, MSG_NOSIGNAL);
    EXPECT_THAT(ReadAll(fd), HasSubstr("\r\n\r\n4"));
    ::close(fd);
  }
  EXPECT_THAT(ExchangeWith(port, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
              StartsWith("HTTP/1.1 200"));
}

}  // namespace
}  // namespace streamgrid::http
