#include "http/server.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <ctime>
#include <exception>
#include <limits>
#include <optional>
#include <random>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "http/send_file.h"

namespace streamgrid::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using boost::asio::redirect_error;
using boost::asio::use_awaitable;

constexpr size_t kResponseChunk = 256 * 1024;

// The Date header's value; formatted once per second per thread, since
// every response carries it.
const std::string& HttpDate() {
  thread_local std::time_t cached_at = 0;
  thread_local std::string cached;
  std::time_t now = std::time(nullptr);
  if (now != cached_at || cached.empty()) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[64];
    std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached = buf;
    cached_at = now;
  }
  return cached;
}

absl::Status StatusFromReadError(const beast::error_code& ec) {
  if (ec == beast::error::timeout)
    return absl::DeadlineExceededError("client sent no data in time");
  if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message ||
      ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset ||
      ec == boost::asio::error::operation_aborted) {
    return absl::UnavailableError("client closed the connection during the request body");
  }
  return absl::InvalidArgumentError(absl::StrCat("malformed request body: ", ec.message()));
}

// Hands the response's fields to Beast's message (a move, not a copy per
// field: this runs for every response).
template <typename Body>
void CopyHeaders(Fields& from, bhttp::response<Body>& to) {
  static_cast<Fields&>(to.base()) = std::move(from);
}

// A request id unique within the process: a random prefix drawn at start-up
// (so that ids from different processes, or a restarted one, differ) and a
// counter.
std::string MakeRequestId() {
  static const std::string prefix = [] {
    std::random_device random;
    return absl::StrCat(absl::Hex(random(), absl::kZeroPad8), "-");
  }();
  static std::atomic<uint64_t> next{1};
  return absl::StrCat(prefix, absl::Hex(next.fetch_add(1, std::memory_order_relaxed)));
}

// The length of the body `response` will carry on the wire.
uint64_t BodyBytes(const Response& response, bool head) {
  if (head || response.status == Status::no_content || response.status == Status::not_modified) {
    return 0;
  }
  if (response.stream) return response.stream_length;
  return response.shared_owner ? response.shared_bytes.size() : response.body.size();
}

}  // namespace

bool IsSafeRequestId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (const char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' &&
        c != ':') {
      return false;
    }
  }
  return true;
}

// One client connection: reads requests in a loop and writes responses, all on
// its io_context's single thread (so the stream's timer never races its
// operations).
class HttpServer::Connection : public std::enable_shared_from_this<HttpServer::Connection> {
 public:
  Connection(HttpServer& server, tcp::socket socket)
      : server_(server), stream_(std::move(socket)) {}
  ~Connection() { server_.MarkBusy(this); }

  // On the connection's thread: closes it if it is (still) waiting for a
  // request header; returns whether it did.
  bool EvictIfIdle() {
    if (!waiting_header_) return false;
    evicted_ = true;
    stream_.cancel();  // the header read ends with operation_aborted
    return true;
  }
  bool evicted() const { return evicted_; }
  boost::asio::any_io_executor executor() { return stream_.get_executor(); }

  boost::asio::awaitable<void> Run() {
    bool first = true;
    for (;;) {
      bhttp::request_parser<bhttp::buffer_body> parser;
      parser.header_limit(server_.options_.header_limit);
      // Body limits are per route and enforced by BodyReaderImpl, not by Beast.
      parser.body_limit(std::numeric_limits<std::uint64_t>::max());
      stream_.expires_after(first ? server_.options_.header_timeout
                                  : server_.options_.idle_timeout);
      beast::error_code ec;
      // Evicted before it ran (the acceptor registers it as idle at once).
      if (evicted_) break;
      waiting_header_ = true;
      if (!first) server_.MarkIdle(this);
      first = false;
      co_await bhttp::async_read_header(stream_, buffer_, parser,
                                        redirect_error(use_awaitable, ec));
      waiting_header_ = false;
      server_.MarkBusy(this);
      if (ec) {
        if (ec == bhttp::error::header_limit) {
          co_await WriteAndClose(
              Response::Error(Status::request_header_fields_too_large, "request header too large"));
        } else if (ec != bhttp::error::end_of_stream && ec != beast::error::timeout &&
                   ec != boost::asio::error::eof && ec != boost::asio::error::connection_reset &&
                   ec != boost::asio::error::operation_aborted && buffer_.size() > 0) {
          co_await WriteAndClose(Response::Error(
              Status::bad_request, absl::StrCat("malformed request: ", ec.message())));
        }
        break;
      }
      bool keep_alive = co_await Handle(parser);
      if (!keep_alive) break;
    }
    if (linger_) co_await Linger();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

 private:
  class BodyReaderImpl : public BodyReader {
   public:
    static constexpr size_t kBodyReadBytes = 64 * 1024;  // Beast's largest read

    BodyReaderImpl(Connection& conn, bhttp::request_parser<bhttp::buffer_body>& parser,
                   uint64_t limit, bool expect_continue)
        : conn_(conn), parser_(parser), limit_(limit), expect_continue_(expect_continue) {}

    boost::asio::awaitable<absl::StatusOr<size_t>> Read(std::span<char> buffer) override {
      if (!error_.ok()) co_return error_;
      if (parser_.is_done() || buffer.empty()) co_return size_t{0};
      if (expect_continue_) {
        // The client waits for this before sending a large body (curl does).
        expect_continue_ = false;
        bhttp::response<bhttp::empty_body> cont{Status::continue_, 11};
        beast::error_code ec;
        conn_.stream_.expires_after(conn_.server_.options_.io_timeout);
        co_await bhttp::async_write(conn_.stream_, cont, redirect_error(use_awaitable, ec));
        if (ec) co_return error_ = StatusFromReadError(ec);
      }
      // Beast reads no more than the buffer's free capacity (at least 512
      // bytes): without room reserved, a large body arrives 512 bytes per
      // system call.
      conn_.buffer_.reserve(kBodyReadBytes);
      size_t n = 0;
      while (n == 0 && !parser_.is_done()) {
        auto& body = parser_.get().body();
        body.data = buffer.data();
        body.size = buffer.size();
        beast::error_code ec;
        conn_.stream_.expires_after(conn_.server_.options_.io_timeout);
        co_await bhttp::async_read_some(conn_.stream_, conn_.buffer_, parser_,
                                        redirect_error(use_awaitable, ec));
        if (ec == bhttp::error::need_buffer) ec = {};
        if (ec) co_return error_ = StatusFromReadError(ec);
        n = buffer.size() - body.size;
      }
      received_ += n;
      if (received_ > limit_) {
        co_return error_ = BodyTooLargeError(
            absl::StrCat("request body is larger than the limit of ", limit_, " bytes"));
      }
      co_return n;
    }

   private:
    Connection& conn_;
    bhttp::request_parser<bhttp::buffer_body>& parser_;
    uint64_t limit_;
    bool expect_continue_;
    uint64_t received_ = 0;
    absl::Status error_;
  };

  // Serves one request whose header has been read. Returns whether the
  // connection may be reused.
  boost::asio::awaitable<bool> Handle(bhttp::request_parser<bhttp::buffer_body>& parser) {
    const auto started = std::chrono::steady_clock::now();
    auto& msg = parser.get();
    Request request;
    request.method = msg.method();
    request.target = std::string(msg.target());
    size_t q = request.target.find('?');
    request.path = request.target.substr(0, q);
    if (q != std::string::npos) request.query = request.target.substr(q + 1);
    if (auto length = parser.content_length()) request.content_length = *length;
    bool keep_alive = msg.keep_alive();
    bool head = request.method == Verb::head;
    const bool expects_continue = beast::iequals(msg[Field::expect], "100-continue");
    // The parser needs no field to read the body (its framing is parsed
    // already), so the request takes the fields over instead of copying each.
    request.headers = std::move(static_cast<Fields&>(msg.base()));
    if (const auto given = request.headers.find("X-Request-Id");
        given != request.headers.end() && IsSafeRequestId(given->value())) {
      request.id = std::string(given->value());
    } else {
      request.id = MakeRequestId();
    }

    Response response;
    Router::Match match;
    absl::Status write_allowed;
    if (request.method == Verb::options && server_.options_.cors) {
      response = server_.guard_.Preflight(request.headers);
      // A granted OPTIONS also gets what the path's own OPTIONS route says
      // (e.g. the tus protocol's capabilities); CORS headers stay the guard's.
      if (response.status == Status::no_content) {
        if (match = server_.router_.Find(request.method, request.path); match.route) {
          BodyReaderImpl body(*this, parser, 0, false);
          request.body = &body;
          request.params = std::move(match.params);
          Response own = co_await match.route->handler(request);
          for (const auto& field : own.headers) {
            if (response.headers.find(field.name_string()) == response.headers.end()) {
              response.headers.insert(field.name_string(), field.value());
            }
          }
        }
      }
    } else if (request.method == Verb::unknown) {
      response = Response::Error(Status::not_implemented, "unsupported method");
    } else if (!IsReadMethod(request.method) &&
               !(write_allowed = server_.guard_.CheckWrite(request.headers)).ok()) {
      response = ErrorFromStatus(write_allowed);
      if (absl::IsUnauthenticated(write_allowed)) {
        response.headers.set(Field::www_authenticate, "Bearer realm=\"StreamGrid\"");
      }
    } else if (match = server_.router_.Find(request.method, request.path); !match.route) {
      if (!match.allow.empty()) {
        response = Response::Error(Status::method_not_allowed, "method not allowed");
        response.headers.set(Field::allow, match.allow);
      } else {
        response = Response::Error(Status::not_found, "no such page");
      }
    } else if (request.content_length &&
               *request.content_length > match.route->options.body_limit) {
      response = Response::Error(
          Status::payload_too_large,
          absl::StrCat("request body of ", *request.content_length,
                       " bytes is larger than the limit of ", match.route->options.body_limit));
    } else {
      bool expect_continue = expects_continue && !parser.is_done();
      BodyReaderImpl body(*this, parser, match.route->options.body_limit, expect_continue);
      request.body = &body;
      request.params = std::move(match.params);
      try {
        response = co_await match.route->handler(request);
      } catch (const std::exception& e) {
        spdlog::error("handler for {} {} threw: {}", bhttp::to_string(request.method), request.path,
                      e.what());
        response = Response::Error(Status::internal_server_error, "internal error");
      }
    }
    // A body left unread cannot be skipped reliably, so the connection ends here.
    if (!parser.is_done()) {
      keep_alive = false;
      linger_ = true;
    }
    if (server_.options_.cors) {
      server_.guard_.AddCorsHeaders(request.method, request.headers, response.headers);
    }
    response.headers.set("X-Request-Id", request.id);
    if (server_.options_.observers.empty()) {
      co_return co_await Write(std::move(response), head, keep_alive) && keep_alive;
    }
    const unsigned status = static_cast<unsigned>(response.status);
    const uint64_t body_bytes = BodyBytes(response, head);
    const bool written = co_await Write(std::move(response), head, keep_alive);
    if (peer_.empty()) {
      beast::error_code ec;
      const tcp::endpoint remote = stream_.socket().remote_endpoint(ec);
      peer_ = ec ? "-" : remote.address().to_string();
    }
    const RequestRecord record{
        .method = request.method,
        .route = match.route != nullptr ? std::string_view(match.route->pattern) : "",
        .target = request.target,
        .request_id = request.id,
        .peer = peer_,
        .status = status,
        .body_bytes = body_bytes,
        .completed = written,
        .elapsed = std::chrono::steady_clock::now() - started,
    };
    for (RequestObserver* observer : server_.options_.observers) observer->OnRequest(record);
    co_return written&& keep_alive;
  }

  // After answering a request whose body was left unread (an upload refused
  // early): stop sending, then read and drop what the client still sends for
  // a bounded time and amount. Closing at once would reset the connection
  // while the client is still sending, and most clients then report the reset
  // instead of the answer they were sent.
  boost::asio::awaitable<void> Linger() {
    constexpr auto kLingerTime = std::chrono::seconds(5);
    constexpr uint64_t kLingerBytes = uint64_t{64} << 20;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) co_return;
    std::vector<char> sink(64 * 1024);
    // What the parser already buffered counts too.
    uint64_t dropped = buffer_.size();
    buffer_.consume(buffer_.size());
    stream_.expires_after(kLingerTime);
    while (dropped < kLingerBytes) {
      const size_t n = co_await stream_.async_read_some(boost::asio::buffer(sink),
                                                        redirect_error(use_awaitable, ec));
      if (ec) break;  // the client finished (EOF), went away, or the time is up
      dropped += n;
    }
  }

  // For requests too malformed to classify: answered like reads.
  boost::asio::awaitable<void> WriteAndClose(Response response) {
    if (server_.options_.cors) AddReadCorsHeaders(response.headers);
    co_await Write(std::move(response), false, false);
  }

  // Writes `response`; returns false if the connection broke.
  boost::asio::awaitable<bool> Write(Response response, bool head, bool keep_alive) {
    AddSecurityHeaders(response.headers);
    response.headers.set(Field::server, "StreamGrid");
    response.headers.set(Field::date, HttpDate());
    beast::error_code ec;
    stream_.expires_after(server_.options_.io_timeout);
    if (!response.stream) {
      if (head || response.status == Status::no_content ||
          response.status == Status::not_modified) {
        bhttp::response<bhttp::empty_body> res{response.status, 11};
        CopyHeaders(response.headers, res);
        // A HEAD answer may state the length of a body it does not carry.
        bool has_length = res.find(Field::content_length) != res.end();
        if (!has_length && response.status != Status::no_content &&
            response.status != Status::not_modified) {
          res.content_length(response.shared_owner ? response.shared_bytes.size()
                                                   : response.body.size());
        }
        res.keep_alive(keep_alive);
        co_await bhttp::async_write(stream_, res, redirect_error(use_awaitable, ec));
      } else if (response.shared_owner) {
        // The hot path (a cached file): the header is serialised here into a
        // buffer the connection reuses (Beast's serializer walked a chain of
        // buffer views per field, and cost more than the rest of the request).
        SerializeHeader(response, keep_alive, response.shared_bytes.size());
        if (response.shared_fd >= 0 && !response.shared_bytes.empty()) {
          co_return co_await SendFromDescriptor(response);
        }
        // Header and body leave in one gathered write; the bytes stay where
        // they are (the owner is held until the write is done).
        const std::array<boost::asio::const_buffer, 2> buffers{
            boost::asio::buffer(header_),
            boost::asio::buffer(response.shared_bytes.data(), response.shared_bytes.size())};
        co_await boost::asio::async_write(stream_, buffers, redirect_error(use_awaitable, ec));
      } else {
        bhttp::response<bhttp::string_body> res{response.status, 11, std::move(response.body)};
        CopyHeaders(response.headers, res);
        res.keep_alive(keep_alive);
        res.prepare_payload();
        co_await bhttp::async_write(stream_, res, redirect_error(use_awaitable, ec));
      }
      co_return !ec;
    }
    if (head) {
      bhttp::response<bhttp::empty_body> res{response.status, 11};
      CopyHeaders(response.headers, res);
      res.content_length(response.stream_length);
      res.keep_alive(keep_alive);
      co_await bhttp::async_write(stream_, res, redirect_error(use_awaitable, ec));
      co_return !ec;
    }
    co_return co_await WriteStreamed(response, keep_alive);
  }

  // Puts the status line and `response`'s header fields, with Content-Length
  // `length` (and "Connection: close" unless `keep_alive`), into header_.
  void SerializeHeader(Response& response, bool keep_alive, uint64_t length) {
    response.headers.set(Field::content_length, std::to_string(length));
    if (!keep_alive) response.headers.set(Field::connection, "close");
    header_.clear();
    const std::string_view reason = bhttp::obsolete_reason(response.status);
    absl::StrAppend(&header_, "HTTP/1.1 ", static_cast<unsigned>(response.status), " ",
                    absl::string_view(reason.data(), reason.size()), "\r\n");
    for (const auto& field : response.headers) {
      const std::string_view name = field.name_string();
      const std::string_view value = field.value();
      header_.append(name).append(": ").append(value).append("\r\n");
    }
    header_.append("\r\n");
  }

  // Sends header_ then the body from response.shared_fd with sendfile(2):
  // the kernel hands the file's pages to the socket instead of copying the
  // bytes from memory. The header goes with MSG_MORE so that it shares the
  // body's first packet. Returns false if the connection broke.
  boost::asio::awaitable<bool> SendFromDescriptor(const Response& response) {
    const int sock = stream_.socket().native_handle();
    beast::error_code ec;
    if (!MakeNonBlocking()) co_return false;
    size_t header_sent = 0;
    const ssize_t h = ::send(sock, header_.data(), header_.size(), MSG_MORE | MSG_NOSIGNAL);
    if (h > 0) header_sent = static_cast<size_t>(h);
    if (h < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) co_return false;
    if (header_sent < header_.size()) {
      co_await boost::asio::async_write(
          stream_, boost::asio::buffer(header_.data() + header_sent, header_.size() - header_sent),
          redirect_error(use_awaitable, ec));
      if (ec) co_return false;
    }
    const uint64_t length = response.shared_bytes.size();
    uint64_t sent = 0;
    while (sent < length) {
      const absl::StatusOr<size_t> n =
          SendFileOnce(sock, response.shared_fd, response.shared_fd_offset + sent,
                       static_cast<size_t>(length - sent));
      if (n.ok() && *n > 0) {
        sent += *n;
        continue;
      }
      if (n.ok()) {
        if (!co_await WaitWritable()) co_return false;
        continue;
      }
      if (absl::IsUnavailable(n.status())) co_return false;
      // The descriptor cannot be sent from (or ended early): the same bytes
      // are in memory, so the rest goes from there.
      stream_.expires_after(server_.options_.io_timeout);
      co_await boost::asio::async_write(
          stream_, boost::asio::buffer(response.shared_bytes.data() + sent, length - sent),
          redirect_error(use_awaitable, ec));
      co_return !ec;
    }
    co_return true;
  }

  // Asio made the socket non-blocking for its own operations already; says so
  // explicitly before the socket is handed to sendfile, which must never block
  // an event loop (or a pool thread) on a full socket.
  bool MakeNonBlocking() {
    if (non_blocking_) return true;
    beast::error_code ec;
    stream_.socket().native_non_blocking(true, ec);
    non_blocking_ = !ec;
    return non_blocking_;
  }

  // Waits until the socket takes more bytes, at most io_timeout; false when
  // it did not in time or broke.
  boost::asio::awaitable<bool> WaitWritable() {
    tcp::socket& socket = stream_.socket();
    auto timer = std::make_shared<boost::asio::steady_timer>(socket.get_executor(),
                                                             server_.options_.io_timeout);
    auto timed_out = std::make_shared<bool>(false);
    // The handler may run after this frame is gone (fired just as the wait
    // ended): it holds what it touches, and the connection.
    timer->async_wait([self = shared_from_this(), timer, timed_out](beast::error_code e) {
      if (e || *timed_out) return;
      *timed_out = true;
      beast::error_code ignored;
      self->stream_.socket().cancel(ignored);
    });
    beast::error_code ec;
    co_await socket.async_wait(tcp::socket::wait_write, redirect_error(use_awaitable, ec));
    const bool expired = *timed_out;
    *timed_out = true;  // a late timer handler does nothing now
    timer->cancel();
    co_return !ec && !expired;
  }

  boost::asio::awaitable<bool> WriteStreamed(Response& response, bool keep_alive) {
    bhttp::response<bhttp::buffer_body> res{response.status, 11};
    CopyHeaders(response.headers, res);
    res.content_length(response.stream_length);
    res.keep_alive(keep_alive);
    res.body().data = nullptr;
    res.body().more = true;
    bhttp::response_serializer<bhttp::buffer_body> serializer{res};
    beast::error_code ec;
    co_await bhttp::async_write_header(stream_, serializer, redirect_error(use_awaitable, ec));
    if (ec) co_return false;
    uint64_t remaining = response.stream_length;
    // A source that can send itself (a local file, with sendfile) does, with
    // no copy through our memory; the framing needs nothing more, since the
    // length was announced.
    if (remaining > 0 && MakeNonBlocking()) {
      const int sock = stream_.socket().native_handle();
      bool direct = true;
      while (remaining > 0) {
        absl::StatusOr<size_t> n = co_await response.stream->SendTo(sock, remaining);
        if (!n.ok()) {
          if (absl::IsUnimplemented(n.status()) && remaining == response.stream_length) {
            direct = false;
            break;
          }
          spdlog::warn("response body ended {} bytes early: {}", remaining, n.status().ToString());
          co_return false;
        }
        if (*n == 0) {
          if (!co_await WaitWritable()) co_return false;
          continue;
        }
        remaining -= std::min<uint64_t>(*n, remaining);
      }
      if (direct) co_return true;
    }
    std::vector<char> chunk(
        std::min<uint64_t>(kResponseChunk, std::max<uint64_t>(response.stream_length, 1)));
    while (remaining > 0) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(remaining, chunk.size()));
      absl::StatusOr<size_t> n = co_await response.stream->Read(std::span(chunk.data(), want));
      if (!n.ok() || *n == 0) {
        // Headers are out, so the only honest signal left is a short body.
        spdlog::warn("response body ended {} bytes early: {}", remaining,
                     n.ok() ? "source ended" : n.status().ToString());
        co_return false;
      }
      remaining -= *n;
      res.body().data = chunk.data();
      res.body().size = *n;
      res.body().more = remaining > 0;
      stream_.expires_after(server_.options_.io_timeout);
      co_await bhttp::async_write(stream_, serializer, redirect_error(use_awaitable, ec));
      if (ec == bhttp::error::need_buffer) ec = {};
      if (ec) co_return false;
    }
    if (!serializer.is_done()) {
      res.body().data = nullptr;
      res.body().size = 0;
      res.body().more = false;
      co_await bhttp::async_write(stream_, serializer, redirect_error(use_awaitable, ec));
      if (ec == bhttp::error::need_buffer) ec = {};
    }
    co_return !ec;
  }

  friend class HttpServer;  // the idle-list fields below

  HttpServer& server_;
  bool linger_ = false;  // a request body was left unread: Linger() before closing
  // On the connection's thread: between requests (from its accept on),
  // evictable.
  bool waiting_header_ = true;
  bool evicted_ = false;
  bool in_idle_ = false;                       // guarded by server_.idle_mu_
  std::list<Connection*>::iterator idle_pos_;  // guarded by server_.idle_mu_
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::string header_;         // the response header being sent; reused
  bool non_blocking_ = false;  // the socket was set non-blocking for sendfile
  std::string peer_;           // the client's address, once an observer wanted it
};

void HttpServer::MarkIdle(Connection* connection) {
  std::lock_guard lock(idle_mu_);
  if (connection->in_idle_) idle_.erase(connection->idle_pos_);
  connection->idle_pos_ = idle_.insert(idle_.end(), connection);
  connection->in_idle_ = true;
}

void HttpServer::MarkBusy(Connection* connection) {
  std::lock_guard lock(idle_mu_);
  if (!connection->in_idle_) return;
  idle_.erase(connection->idle_pos_);
  connection->in_idle_ = false;
}

bool HttpServer::EvictLongestIdle() {
  std::shared_ptr<Connection> victim;
  {
    std::lock_guard lock(idle_mu_);
    while (!victim && !idle_.empty()) {
      Connection* candidate = idle_.front();
      idle_.pop_front();
      candidate->in_idle_ = false;
      // Null when its destructor is already waiting for the lock.
      victim = candidate->weak_from_this().lock();
    }
  }
  if (!victim) return false;
  ++evicting_;
  // Its stream belongs to its thread; it may have received a request
  // meanwhile, in which case it stays.
  boost::asio::post(victim->executor(), [this, victim] {
    if (victim->EvictIfIdle()) {
      ++evicted_;
    } else {
      --evicting_;
    }
  });
  return true;
}

namespace {

int EventLoopThreads(int requested) {
  return requested > 0 ? requested
                       : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

std::vector<std::unique_ptr<boost::asio::io_context>> MakeContexts(int count) {
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts;
  // Concurrency hint 1: each context is run by exactly one thread.
  for (int i = 0; i < count; ++i) contexts.push_back(std::make_unique<boost::asio::io_context>(1));
  return contexts;
}

}  // namespace

HttpServer::HttpServer(ServerOptions options, const Router& router)
    : options_(std::move(options)),
      router_(router),
      guard_(options_.write_guard),
      io_(MakeContexts(EventLoopThreads(options_.threads))),
      acceptor_(*io_.front()) {}

HttpServer::~HttpServer() { Stop(); }

absl::Status HttpServer::Start() {
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(options_.address, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("bad listen address ", options_.address));
  tcp::endpoint endpoint(address, options_.port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.address, ":",
                                               options_.port, ": ", ec.message()));
  }
  port_ = acceptor_.local_endpoint().port();
  // Closed to make room when accept finds no descriptor left (see
  // RecoverFromDescriptorShortage).
  spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  boost::asio::co_spawn(*io_.front(), AcceptLoop(), boost::asio::detached);
  for (auto& io : io_) {
    threads_.emplace_back([&context = *io] {
      // Idle connections hold no work; run until Stop().
      auto guard = boost::asio::make_work_guard(context);
      context.run();
    });
  }
  return absl::OkStatus();
}

boost::asio::awaitable<void> HttpServer::AcceptLoop() {
  // Connections over the limit admitted while evictions are still under way;
  // their descriptors come out of the reserve the limit leaves.
  constexpr int kMaxOvershoot = 16;
  constexpr auto kMaxEvictionWait = std::chrono::seconds(5);
  // Set once the acceptor was seen readable after a descriptor shortage.
  bool client_waiting = false;
  for (;;) {
    // Connections are dealt to the event-loop threads in turn. A strand per
    // connection on one shared io_context cost a mutex and an allocated
    // executor per completion, and all threads shared one epoll set and one
    // queue: the cost per request grew with the number of connections.
    boost::asio::io_context& home = *io_[next_io_];
    next_io_ = (next_io_ + 1) % io_.size();
    tcp::socket socket(home);
    boost::system::error_code ec;
    co_await acceptor_.async_accept(socket, redirect_error(use_awaitable, ec));
    if (ec == boost::asio::error::operation_aborted || !acceptor_.is_open()) co_return;
    if (ec == boost::asio::error::no_descriptors || ec.value() == ENFILE) {
      // Linux takes the descriptor before it looks at the queue, so accept
      // fails like this right after the last descriptor went to a client,
      // with nobody waiting. Making room then would drop an idle connection
      // (often the one just accepted) for no one: wait for a client first,
      // and try once more in case a descriptor was freed meanwhile.
      if (!client_waiting) {
        co_await acceptor_.async_wait(tcp::acceptor::wait_read, redirect_error(use_awaitable, ec));
        if (ec == boost::asio::error::operation_aborted || !acceptor_.is_open()) co_return;
        client_waiting = true;
        continue;
      }
      client_waiting = false;
      co_await RecoverFromDescriptorShortage();
      continue;
    }
    client_waiting = false;
    if (ec) {
      spdlog::warn("accept failed: {}", ec.message());
      boost::asio::steady_timer timer(*io_.front(), std::chrono::milliseconds(50));
      co_await timer.async_wait(redirect_error(use_awaitable, ec));
      continue;
    }
    // Evictions finish on the victims' threads, which under load can lag
    // behind this loop by more than the overshoot: a new client then waits
    // for them (the backlog holds the others) instead of being closed. Only
    // evictions stuck for kMaxEvictionWait refuse it.
    const auto wait_until = std::chrono::steady_clock::now() + kMaxEvictionWait;
    while (connections_.load() >= options_.max_connections + kMaxOvershoot &&
           evicting_.load() > 0 && std::chrono::steady_clock::now() < wait_until) {
      boost::asio::steady_timer timer(*io_.front(), std::chrono::milliseconds(2));
      co_await timer.async_wait(redirect_error(use_awaitable, ec));
      if (!acceptor_.is_open()) co_return;
    }
    const int open = connections_.load();
    // Idle connections are cheap to drop and a new client may be the one that
    // matters (a health check, a viewer, an upload): at the limit, the
    // longest-idle connection gives way.
    const bool admit = open < options_.max_connections + kMaxOvershoot &&
                       (open - evicting_.load() < options_.max_connections || EvictLongestIdle());
    if (!admit) {
      // Rare and worth knowing (every connection busy, or evictions stuck);
      // at most one line a second, since a flood would repeat it.
      static std::atomic<int64_t> last_refusal_log{0};
      const int64_t second = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
      if (last_refusal_log.exchange(second) != second) {
        spdlog::warn("refused a connection: {} open, {} evictions under way (limit {})", open,
                     evicting_.load(), options_.max_connections);
      }
      socket.close(ec);
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    ++connections_;
    auto executor = socket.get_executor();
    auto connection = std::make_shared<Connection>(*this, std::move(socket));
    // Waiting for its first header from now on, so evictable at once: its
    // coroutine starts later on its own thread, and the next client must be
    // able to take its place even before that (or it would be refused).
    MarkIdle(connection.get());
    boost::asio::co_spawn(
        executor, [connection]() { return connection->Run(); },
        [this, connection](std::exception_ptr e) {
          if (connection->evicted()) --evicting_;
          --connections_;
          if (e) {
            try {
              std::rethrow_exception(e);
            } catch (const std::exception& ex) {
              spdlog::error("connection failed: {}", ex.what());
            }
          }
        });
  }
}

boost::asio::awaitable<void> HttpServer::RecoverFromDescriptorShortage() {
  // Something besides connections (files, pipes, gRPC) used up the
  // descriptors. The waiting client keeps the acceptor readable, so retrying
  // at once would spin: first drop an idle connection and give it a moment
  // to close, then retry with the client still queued.
  static std::atomic<int64_t> last_warning{0};
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  if (last_warning.exchange(now) != now) {
    spdlog::warn("out of file descriptors accepting a connection ({} open)", connections_.load());
  }
  boost::system::error_code ec;
  if (EvictLongestIdle()) {
    boost::asio::steady_timer timer(*io_.front(), std::chrono::milliseconds(5));
    co_await timer.async_wait(redirect_error(use_awaitable, ec));
    co_return;
  }
  // Nothing to drop: the classic spare descriptor. Closing it lets one accept
  // succeed; that client is closed at once (it would get no service anyway)
  // and the spare taken back.
  if (spare_fd_ >= 0) {
    ::close(spare_fd_);
    spare_fd_ = -1;
    int fd = ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) ::close(fd);
    spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) co_return;
  }
  // Not even that: back off rather than spin.
  boost::asio::steady_timer timer(*io_.front(), std::chrono::milliseconds(50));
  co_await timer.async_wait(redirect_error(use_awaitable, ec));
}

void HttpServer::Stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& io : io_) io->stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  boost::system::error_code ec;
  acceptor_.close(ec);
  if (spare_fd_ >= 0) ::close(spare_fd_);
  spare_fd_ = -1;
}

}  // namespace streamgrid::http
