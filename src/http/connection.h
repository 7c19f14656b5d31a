#pragma once

#include <array>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <chrono>
#include <list>
#include <memory>
#include <string>
#include <string_view>

#include "http/message.h"
#include "http/server.h"

namespace streamgrid::http {

// The most one recv(2) of a request header takes; the parser's header limit
// bounds the buffered header, this only bounds one read past it.
inline constexpr size_t kHeaderReadBytes = 16 * 1024;

// One event-loop thread: its io_context, and the connections living on it
// (touched by that thread only), which the loop's timeout sweep walks.
struct HttpServer::Loop {
  Loop() : io(1) {}  // concurrency hint 1: run by exactly one thread
  // Declared before `io`: the connections io's destruction ends unlink
  // themselves from here.
  Connection* first = nullptr;
  // Scratch the loop's connections use in turn within one step (never across
  // a wait): a request header is received into read_scratch and a response
  // header serialised into header_scratch. Shared, they stay in the cache;
  // a thousand connections' own buffers would not.
  std::array<char, kHeaderReadBytes> read_scratch;
  std::string header_scratch;
  boost::asio::io_context io;
};

// One client connection: reads requests in a loop and writes responses, all on
// its loop's single thread. The common case makes no Asio operation at all: a
// request already received is read with a non-blocking recv(2), a response
// leaves with one sendmsg(2) (or a send(2) of the header and sendfile(2)), and
// only a socket with nothing to read, or one that is full, is waited on
// through the reactor. Timeouts are deadlines that the loop's sweep enforces
// by cancelling the socket, instead of a timer armed and cancelled for every
// operation.
class HttpServer::Connection : public std::enable_shared_from_this<HttpServer::Connection> {
 public:
  using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp,
                                                  boost::asio::io_context::executor_type>;
  using Clock = std::chrono::steady_clock;

  Connection(HttpServer& server, Loop& loop, Socket socket);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Serves requests until the client closes, a timeout, an error or eviction;
  // then closes the socket. Runs on the loop's thread.
  boost::asio::awaitable<void> Run();

  // On the connection's thread: closes it if it is (still) waiting for a
  // request header; returns whether it did.
  bool EvictIfIdle();
  bool evicted() const { return evicted_; }
  boost::asio::any_io_executor executor() { return socket_.get_executor(); }

  // On the connection's thread, from the loop's sweep: if the operation under
  // way has passed its deadline, cancels it (it then fails as a timeout).
  void ExpireIfDue(Clock::time_point now);
  Connection* next_in_loop() const { return next_; }

 private:
  using Parser = boost::beast::http::request_parser<boost::beast::http::buffer_body>;
  class BodyReaderImpl;
  class LoopMembership;
  enum class ReadStep { kDone, kWouldBlock };

  // Parses what is buffered and receives what the socket holds, without
  // waiting, until the parser has the whole header (kDone, `ec` clear), an
  // error or the end of the stream (kDone, `ec` set), or the socket is empty
  // (kWouldBlock).
  ReadStep TryReadHeader(Parser& parser, boost::beast::error_code& ec);
  // Reads a request header within `timeout`; the error is clear when the
  // parser has it.
  boost::asio::awaitable<boost::beast::error_code> ReadHeader(Parser& parser,
                                                              std::chrono::milliseconds timeout);

  // Serves one request whose header has been read. Returns whether the
  // connection may be reused.
  boost::asio::awaitable<bool> Handle(Parser& parser);
  // After answering a request whose body was left unread: see connection.cc.
  boost::asio::awaitable<void> Linger();
  // For requests too malformed to classify: answered like reads.
  boost::asio::awaitable<void> WriteAndClose(Response response);
  // Writes `response`; returns false if the connection broke.
  boost::asio::awaitable<bool> Write(Response response, bool head, bool keep_alive);
  enum class WriteState { kDone, kBroken, kBlocked };
  struct WriteProgress {
    uint64_t sent = 0;         // bytes of the header and then the body sent so far
    bool from_memory = false;  // the descriptor failed: the rest goes from memory
  };
  // Adds the security fields to `response`, serialises its header
  // (SerializeHeader), and sends what the socket takes now; kBlocked when the rest
  // must wait (FinishWrite), which is always so for a streamed body.
  WriteState StartWrite(Response& response, bool head, bool keep_alive, std::string_view request_id,
                        WriteProgress& progress);
  // Sends the rest of the header and of the body from memory or with
  // sendfile(2), without waiting; kBlocked when the socket is full.
  WriteState SendNow(const Response& response, bool head, WriteProgress& progress);
  // Finishes what StartWrite began, waiting for the socket as needed; false
  // if the connection broke or stalled past the I/O timeout.
  boost::asio::awaitable<bool> FinishWrite(const Response& response, bool head,
                                           WriteProgress& progress);
  // Puts the status line, `response`'s header fields and the server's own
  // (Server, Date, Content-Length `length` when given, X-Request-Id when not
  // empty, "Connection: close" unless `keep_alive`) into the loop's
  // header_scratch, and points header_view_ at it.
  void SerializeHeader(const Response& response, bool keep_alive, std::optional<uint64_t> length,
                       std::string_view request_id);
  // Sends `first` then `second`, gathered, as far as the socket takes them
  // without waiting, removing what was sent from both; kBlocked when the
  // socket is full.
  WriteState SendViewsNow(std::string_view& first, std::string_view& second);
  // Sends `first` then `second`, gathered; returns false if the connection
  // broke or stalled past the I/O timeout.
  boost::asio::awaitable<bool> SendAll(std::string_view first, std::string_view second = {});
  // Sends the header (header_view_), then a streamed body.
  boost::asio::awaitable<bool> WriteStreamed(const Response& response);
  // Waits until the socket takes more bytes, at most the I/O timeout.
  boost::asio::awaitable<bool> WaitWritable();

  // Deadlines: the next Asio operation fails with beast::error::timeout if it
  // has not completed by `timeout` from now.
  void Arm(std::chrono::milliseconds timeout) {
    deadline_ = Clock::now() + timeout;
    timed_out_ = false;
  }
  void Disarm() { deadline_ = Clock::time_point::max(); }
  // An operation cancelled by the sweep reports operation_aborted: says timeout.
  boost::beast::error_code Translate(boost::beast::error_code ec) const;

  friend class HttpServer;  // the idle-list fields below

  HttpServer& server_;
  Loop& loop_;
  Connection* prev_ = nullptr;  // in loop_'s list while Run() runs
  Connection* next_ = nullptr;
  Clock::time_point deadline_ = Clock::time_point::max();
  bool timed_out_ = false;
  bool linger_ = false;  // a request body was left unread: Linger() before closing
  // On the connection's thread: between requests (from its accept on),
  // evictable.
  bool waiting_header_ = true;
  bool evicted_ = false;
  bool in_idle_ = false;                       // guarded by server_.idle_mu_
  std::list<Connection*>::iterator idle_pos_;  // guarded by server_.idle_mu_
  Socket socket_;
  int fd_ = -1;  // socket_'s descriptor, non-blocking once Run() starts
  boost::beast::flat_buffer buffer_;
  // The response header being sent: in the loop's scratch until the socket
  // is found full, then in header_.
  std::string_view header_view_;
  std::string header_;
  std::string peer_;  // the client's address, once an observer wanted it
};

}  // namespace streamgrid::http
