#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "http/router.h"
#include "http/write_guard.h"

namespace streamgrid::http {

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
  int max_connections = 10000;        // further connections are closed at once
  bool cors = true;  // CORS headers on every response, OPTIONS preflight answered 204
  // Who may send writes (methods other than GET, HEAD, OPTIONS): checked for
  // every write before routing, so no route can forget it.
  WriteGuardOptions write_guard;
};

// An HTTP/1.1 server on Boost.Beast: one coroutine per connection on a pool of
// event-loop threads, keep-alive, timeouts at every stage so a slow or silent
// client cannot hold resources, request and response bodies streamed in chunks.
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

 private:
  class Connection;
  boost::asio::awaitable<void> AcceptLoop();

  ServerOptions options_;
  const Router& router_;
  const WriteGuard guard_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  std::atomic<int> connections_{0};
  uint16_t port_ = 0;
  bool stopped_ = false;
};

}  // namespace streamgrid::http
