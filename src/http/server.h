#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "http/router.h"
#include "http/write_guard.h"

namespace streamgrid::http {

// What the server knows of a request once it has answered it.
struct RequestRecord {
  Verb method = Verb::unknown;
  // The pattern of the route that served it: Route::pattern itself, so its
  // address is the same for every request of that route while the router
  // lives. "" when no route served it (404, 405, refused writes, preflights).
  std::string_view route;
  std::string_view target;      // as sent (path and query)
  std::string_view request_id;  // Request::id
  std::string_view peer;        // the client's address
  unsigned status = 0;
  // The response body's length as announced (0 for HEAD, 204 and 304).
  uint64_t body_bytes = 0;
  // False when the connection broke before the whole response was written.
  bool completed = false;
  // From the request's header being read to the response's last byte.
  std::chrono::steady_clock::duration elapsed{};
};

// Told of every request the server answered (metrics, the access log). Called
// on the event-loop threads, concurrently, so it must be thread-safe, quick
// and must not block.
class RequestObserver {
 public:
  virtual ~RequestObserver() = default;
  virtual void OnRequest(const RequestRecord& record) = 0;
};

// Whether `id` may be taken as a request's id from a client: 1 to 64
// characters, letters, digits and "-_.:" only (so it is safe in logs and
// headers as it is).
bool IsSafeRequestId(std::string_view id);

struct ServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 0;  // 0 picks a free port; see HttpServer::port()
  int threads = 0;    // event-loop threads; 0 means one per core
  // A client must send a request's whole header within this time.
  std::chrono::milliseconds header_timeout{std::chrono::seconds(30)};
  // An idle keep-alive connection is closed after this time.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(75)};
  // Each read of a request body or write of a response must make progress within this time.
  std::chrono::milliseconds io_timeout{std::chrono::seconds(60)};
  uint32_t header_limit = 16 * 1024;  // bytes of request line plus headers
  // Open connections at most. At the limit a new connection takes the place of
  // the one that has waited longest for a request header (an idle keep-alive
  // connection, or one that never sent anything); when every connection is
  // busy, the new one is closed at once.
  int max_connections = 10000;
  bool cors = true;  // CORS headers on every response, OPTIONS preflight answered 204
  // Who may send writes (methods other than GET, HEAD, OPTIONS): checked for
  // every write before routing, so no route can forget it.
  WriteGuardOptions write_guard;
  // Told of each answered request, in order; each must outlive the server.
  std::vector<RequestObserver*> observers;
};

// An HTTP/1.1 server on Boost.Beast: one coroutine per connection, keep-alive,
// timeouts at every stage so a slow or silent client cannot hold resources,
// request and response bodies streamed in chunks. Each event-loop thread runs
// its own io_context (its own epoll set, like one nginx worker); a connection
// lives on one of them for its whole life, handed out in turn by the acceptor.
class HttpServer {
 public:
  HttpServer(ServerOptions options, const Router& router);
  ~HttpServer();  // calls Stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts serving on background threads.
  absl::Status Start();
  // The bound port (useful with port 0); valid after Start().
  uint16_t port() const { return port_; }
  // Stops accepting, drops open connections and joins the threads. In-flight
  // handler coroutines are destroyed when the server is, so anything they
  // reference must outlive the server object. Idempotent.
  void Stop();

  // Connections open now, and how many idle ones were closed so far to admit
  // new ones (for logs and tests).
  int connections() const { return connections_.load(); }
  uint64_t evicted() const { return evicted_.load(); }

 private:
  class Connection;
  struct Loop;
  boost::asio::awaitable<void> AcceptLoop();
  // Every sweep_period_, cancels the operations of `loop`'s connections that
  // passed their deadline; runs on the loop's thread until it stops.
  boost::asio::awaitable<void> SweepTimeouts(Loop& loop);
  // Accept failed for want of descriptors (EMFILE/ENFILE): frees one so the
  // acceptor neither spins nor wedges.
  boost::asio::awaitable<void> RecoverFromDescriptorShortage();
  // Registers `connection` as waiting for a request header, or no longer.
  void MarkIdle(Connection* connection);
  void MarkBusy(Connection* connection);
  // Asks the connection that has waited longest for a header to close; false
  // when none is waiting.
  bool EvictLongestIdle();

  // Declared before loops_, so they outlive the connections the loops destroy.
  std::mutex idle_mu_;
  std::list<Connection*> idle_;   // longest waiting first; guarded by idle_mu_
  std::atomic<int> evicting_{0};  // asked to close, not closed yet
  std::atomic<uint64_t> evicted_{0};
  int spare_fd_ = -1;  // kept open to be closed when descriptors run out

  ServerOptions options_;
  const Router& router_;
  const WriteGuard guard_;
  const std::chrono::milliseconds sweep_period_;
  // One per event-loop thread (options_.threads of them, at least one); the
  // first also runs the acceptor. A connection and its timeouts live on one
  // loop, so they need no strand.
  std::vector<std::unique_ptr<Loop>> loops_;
  size_t next_loop_ = 0;  // the loop the next connection goes to; acceptor only
  boost::asio::ip::tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  std::atomic<int> connections_{0};
  uint16_t port_ = 0;
  bool stopped_ = false;
};

}  // namespace streamgrid::http
