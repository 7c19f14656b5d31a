#include "http/connection.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/read.hpp>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <exception>
#include <limits>
#include <optional>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "http/send_file.h"
#include "http/write_guard.h"

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

beast::error_code ErrnoCode(int e) {
  return beast::error_code(e, boost::asio::error::get_system_category());
}

absl::Status StatusFromReadError(const beast::error_code& ec) {
  if (ec == beast::error::timeout) return ClientTimeoutError("client sent no data in time");
  if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message ||
      ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset ||
      ec == boost::asio::error::operation_aborted) {
    return absl::UnavailableError("client closed the connection during the request body");
  }
  return absl::InvalidArgumentError(absl::StrCat("malformed request body: ", ec.message()));
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

bool HasNoBody(Status status) {
  return status == Status::no_content || status == Status::not_modified;
}

// Whether `response`, answering a HEAD request when `head`, puts a body on the
// wire at all.
bool CarriesBody(const Response& response, bool head) {
  return !head && !HasNoBody(response.status);
}

// Whether that body comes from a stream rather than from memory or a file.
bool StreamsBody(const Response& response, bool head) {
  return response.stream && CarriesBody(response, head);
}

// The length of the body `response` will carry on the wire.
uint64_t BodyBytes(const Response& response, bool head) {
  if (!CarriesBody(response, head)) return 0;
  if (response.stream) return response.stream_length;
  return response.shared_owner ? response.shared_bytes.size() : response.body.size();
}

}  // namespace

// Keeps a connection in its loop's list (for the timeout sweep) while Run()
// runs, including when its frame is destroyed with the io_context.
class HttpServer::Connection::LoopMembership {
 public:
  explicit LoopMembership(Connection& c) : c_(c) {
    c_.next_ = c_.loop_.first;
    if (c_.next_ != nullptr) c_.next_->prev_ = &c_;
    c_.loop_.first = &c_;
  }
  ~LoopMembership() {
    if (c_.prev_ != nullptr) c_.prev_->next_ = c_.next_;
    if (c_.next_ != nullptr) c_.next_->prev_ = c_.prev_;
    if (c_.loop_.first == &c_) c_.loop_.first = c_.next_;
    c_.prev_ = c_.next_ = nullptr;
  }
  LoopMembership(const LoopMembership&) = delete;
  LoopMembership& operator=(const LoopMembership&) = delete;

 private:
  Connection& c_;
};

class HttpServer::Connection::BodyReaderImpl : public BodyReader {
 public:
  static constexpr size_t kBodyReadBytes = 64 * 1024;  // Beast's largest read

  BodyReaderImpl(Connection& conn, Parser& parser, uint64_t limit, bool expect_continue)
      : conn_(conn), parser_(parser), limit_(limit), expect_continue_(expect_continue) {}

  boost::asio::awaitable<absl::StatusOr<size_t>> Read(std::span<char> buffer) override {
    if (!error_.ok()) co_return error_;
    if (parser_.is_done() || buffer.empty()) co_return size_t{0};
    if (expect_continue_) {
      // The client waits for this before sending a large body (curl does).
      expect_continue_ = false;
      if (!co_await conn_.SendAll("HTTP/1.1 100 Continue\r\n\r\n")) {
        co_return error_ = absl::UnavailableError("client closed the connection");
      }
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
      conn_.Arm(conn_.server_.options_.io_timeout);
      co_await bhttp::async_read_some(conn_.socket_, conn_.buffer_, parser_,
                                      redirect_error(use_awaitable, ec));
      conn_.Disarm();
      ec = conn_.Translate(ec);
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
  Parser& parser_;
  uint64_t limit_;
  bool expect_continue_;
  uint64_t received_ = 0;
  absl::Status error_;
};

HttpServer::Connection::Connection(HttpServer& server, Loop& loop, Socket socket)
    : server_(server), loop_(loop), socket_(std::move(socket)) {}

HttpServer::Connection::~Connection() { server_.MarkBusy(this); }

bool HttpServer::Connection::EvictIfIdle() {
  if (!waiting_header_) return false;
  evicted_ = true;
  beast::error_code ignored;
  socket_.cancel(ignored);  // the wait for a header ends with operation_aborted
  return true;
}

void HttpServer::Connection::ExpireIfDue(Clock::time_point now) {
  if (deadline_ > now) return;
  deadline_ = Clock::time_point::max();
  timed_out_ = true;
  beast::error_code ignored;
  socket_.cancel(ignored);
}

beast::error_code HttpServer::Connection::Translate(beast::error_code ec) const {
  if (ec == boost::asio::error::operation_aborted && timed_out_) return beast::error::timeout;
  return ec;
}

boost::asio::awaitable<void> HttpServer::Connection::Run() {
  LoopMembership membership(*this);
  beast::error_code ec;
  // The reads and writes below are made directly, and must never block the
  // loop (sendfile has no flag for that).
  socket_.native_non_blocking(true, ec);
  fd_ = socket_.native_handle();
  bool first = true;
  while (!ec) {
    // Per request from the allocator rather than in this frame: memory just
    // freed by the loop's previous request is still in the cache, while the
    // frames of a thousand connections are not.
    const auto parser_owner = std::make_unique<Parser>();
    Parser& parser = *parser_owner;
    parser.header_limit(server_.options_.header_limit);
    // Body limits are per route and enforced by BodyReaderImpl, not by Beast.
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    // Evicted before it ran (the acceptor registers it as idle at once).
    if (evicted_) break;
    const std::chrono::milliseconds timeout =
        first ? server_.options_.header_timeout : server_.options_.idle_timeout;
    // The common case under load, a request already here, needs no coroutine
    // frame, and no trip through the idle list (a lock both loops share):
    // only a connection that waits for its client is idle and evictable. The
    // first wait is registered by the acceptor.
    if (TryReadHeader(parser, ec) == ReadStep::kWouldBlock) {
      if (!first) server_.MarkIdle(this);
      waiting_header_ = true;
      ec = co_await ReadHeader(parser, timeout);
    }
    first = false;
    if (waiting_header_) {
      waiting_header_ = false;
      server_.MarkBusy(this);
    }
    if (ec) {
      if (ec == bhttp::error::header_limit) {
        co_await WriteAndClose(
            Response::Error(Status::request_header_fields_too_large, "request header too large"));
      } else if (ec != bhttp::error::end_of_stream && ec != beast::error::timeout &&
                 ec != boost::asio::error::eof && ec != boost::asio::error::connection_reset &&
                 ec != boost::asio::error::operation_aborted && buffer_.size() > 0) {
        co_await WriteAndClose(Response::Error(Status::bad_request,
                                               absl::StrCat("malformed request: ", ec.message())));
      }
      break;
    }
    if (!co_await Handle(parser)) break;
  }
  if (linger_) co_await Linger();
  beast::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

HttpServer::Connection::ReadStep HttpServer::Connection::TryReadHeader(Parser& parser,
                                                                       beast::error_code& ec) {
  for (;;) {
    if (buffer_.size() > 0) {
      const size_t used = parser.put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec == bhttp::error::need_more) {
        ec = {};
      } else if (ec || parser.is_header_done()) {
        return ReadStep::kDone;
      } else if (used > 0) {
        continue;
      }
    }
    // With nothing buffered (the common case: a whole request arrives at
    // once), the bytes go to the loop's scratch, which stays in the cache,
    // and only what the header leaves (a body's start, a pipelined request)
    // is kept in the connection's buffer.
    const bool scratch = buffer_.size() == 0;
    char* into;
    size_t room;
    if (scratch) {
      into = loop_.read_scratch.data();
      room = loop_.read_scratch.size();
    } else {
      const auto space = buffer_.prepare(
          std::clamp<size_t>(buffer_.capacity() - buffer_.size(), 1024, kHeaderReadBytes));
      into = static_cast<char*>(space.data());
      room = space.size();
    }
    const ssize_t n = ::recv(fd_, into, room, 0);
    if (n > 0) {
      if (!scratch) {
        buffer_.commit(static_cast<size_t>(n));
        continue;
      }
      const size_t used = parser.put(boost::asio::buffer(into, static_cast<size_t>(n)), ec);
      if (ec == bhttp::error::need_more) ec = {};
      const size_t left = static_cast<size_t>(n) - used;
      if (left > 0) {
        const auto space = buffer_.prepare(left);
        std::memcpy(space.data(), into + used, left);
        buffer_.commit(left);
      }
      if (ec || parser.is_header_done()) return ReadStep::kDone;
      continue;
    }
    if (n == 0) {
      // As Beast's read: the end of the stream before anything is a clean
      // close; in the middle of a header, a partial message.
      if (parser.got_some()) {
        parser.put_eof(ec);
        if (!ec) ec = bhttp::error::partial_message;
      } else {
        ec = bhttp::error::end_of_stream;
      }
      return ReadStep::kDone;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return ReadStep::kWouldBlock;
    ec = ErrnoCode(errno);
    return ReadStep::kDone;
  }
}

boost::asio::awaitable<beast::error_code> HttpServer::Connection::ReadHeader(
    Parser& parser, std::chrono::milliseconds timeout) {
  // The whole header must come within `timeout`: one deadline for all waits.
  Arm(timeout);
  beast::error_code ec;
  for (;;) {
    // Safe on an edge-triggered reactor because the loop has one thread: the
    // recv above found the socket empty, and any data since will be reported
    // by the loop's next epoll_wait, which comes after this wait is queued.
    co_await socket_.async_wait(Socket::wait_read, redirect_error(use_awaitable, ec));
    if (!ec && evicted_) ec = boost::asio::error::operation_aborted;
    if (ec) break;
    if (TryReadHeader(parser, ec) == ReadStep::kDone) break;
  }
  Disarm();
  co_return Translate(ec);
}

boost::asio::awaitable<bool> HttpServer::Connection::Handle(Parser& parser) {
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
  } else if (request.content_length && *request.content_length > match.route->options.body_limit) {
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
  // A response the socket takes at once is written without a coroutine frame.
  WriteProgress progress;
  const WriteState state = StartWrite(response, head, keep_alive, request.id, progress);
  bool written = state == WriteState::kDone;
  if (state == WriteState::kBlocked) written = co_await FinishWrite(response, head, progress);
  if (server_.options_.observers.empty()) co_return written&& keep_alive;
  const unsigned status = static_cast<unsigned>(response.status);
  const uint64_t body_bytes = BodyBytes(response, head);
  if (peer_.empty()) {
    beast::error_code ec;
    const tcp::endpoint remote = socket_.remote_endpoint(ec);
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
boost::asio::awaitable<void> HttpServer::Connection::Linger() {
  constexpr auto kLingerTime = std::chrono::seconds(5);
  constexpr uint64_t kLingerBytes = uint64_t{64} << 20;
  beast::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  if (ec) co_return;
  std::vector<char> sink(64 * 1024);
  // What the parser already buffered counts too.
  uint64_t dropped = buffer_.size();
  buffer_.consume(buffer_.size());
  Arm(kLingerTime);  // for all the reads together
  while (dropped < kLingerBytes) {
    const size_t n = co_await socket_.async_read_some(boost::asio::buffer(sink),
                                                      redirect_error(use_awaitable, ec));
    if (ec) break;  // the client finished (EOF), went away, or the time is up
    dropped += n;
  }
  Disarm();
}

boost::asio::awaitable<void> HttpServer::Connection::WriteAndClose(Response response) {
  if (server_.options_.cors) AddReadCorsHeaders(response.headers);
  co_await Write(std::move(response), false, false);
}

boost::asio::awaitable<bool> HttpServer::Connection::Write(Response response, bool head,
                                                           bool keep_alive) {
  WriteProgress progress;
  const WriteState state = StartWrite(response, head, keep_alive, "", progress);
  if (state != WriteState::kBlocked) co_return state == WriteState::kDone;
  co_return co_await FinishWrite(response, head, progress);
}

HttpServer::Connection::WriteState HttpServer::Connection::StartWrite(Response& response, bool head,
                                                                      bool keep_alive,
                                                                      std::string_view request_id,
                                                                      WriteProgress& progress) {
  AddSecurityHeaders(response.headers);
  std::optional<uint64_t> length;
  if (HasNoBody(response.status)) {
    // 204 and 304 state no length.
  } else if (response.stream) {
    length = response.stream_length;
  } else if (!head || response.headers.find(Field::content_length) == response.headers.end()) {
    // A HEAD answer states the length of the body it does not carry, unless
    // the handler did.
    length = response.shared_owner ? response.shared_bytes.size() : response.body.size();
  }
  SerializeHeader(response, keep_alive, length, request_id);
  const WriteState state =
      StreamsBody(response, head) ? WriteState::kBlocked : SendNow(response, head, progress);
  if (state == WriteState::kBlocked) {
    // The rest is sent after a wait, when the loop's scratch may hold another
    // connection's header: the connection keeps its own copy.
    header_.assign(header_view_);
    header_view_ = header_;
  }
  return state;
}

HttpServer::Connection::WriteState HttpServer::Connection::SendNow(const Response& response,
                                                                   bool head,
                                                                   WriteProgress& progress) {
  std::string_view body;
  int file = -1;
  uint64_t file_offset = 0;
  if (CarriesBody(response, head)) {
    if (response.shared_owner) {
      body = std::string_view(response.shared_bytes.data(), response.shared_bytes.size());
      // The kernel hands the file's pages to the socket (sendfile) instead of
      // copying the bytes from memory.
      if (response.shared_fd >= 0 && !progress.from_memory) {
        file = response.shared_fd;
        file_offset = response.shared_fd_offset;
      }
    } else {
      body = response.body;
    }
  }
  const std::string_view header = header_view_;
  const uint64_t total = header.size() + body.size();
  while (progress.sent < total && file >= 0) {
    if (progress.sent < header.size()) {
      // With MSG_MORE the header shares the body's first packet.
      const std::string_view rest = header.substr(progress.sent);
      const ssize_t n = ::send(fd_, rest.data(), rest.size(), MSG_MORE | MSG_NOSIGNAL);
      if (n >= 0) {
        progress.sent += static_cast<uint64_t>(n);
        continue;
      }
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? WriteState::kBlocked : WriteState::kBroken;
    }
    const uint64_t at = progress.sent - header.size();
    const absl::StatusOr<size_t> sent =
        SendFileOnce(fd_, file, file_offset + at, static_cast<size_t>(body.size() - at));
    if (sent.ok() && *sent == 0) return WriteState::kBlocked;
    if (sent.ok()) {
      progress.sent += *sent;
      continue;
    }
    if (absl::IsUnavailable(sent.status())) return WriteState::kBroken;
    // The descriptor cannot be sent from (or ended early): the same bytes are
    // in memory, so the rest goes from there.
    progress.from_memory = true;
    file = -1;
  }
  if (progress.sent >= total) return WriteState::kDone;
  const uint64_t of_header = std::min<uint64_t>(progress.sent, header.size());
  std::string_view first = header.substr(of_header);
  std::string_view second = body.substr(progress.sent - of_header);
  const WriteState state = SendViewsNow(first, second);
  progress.sent = total - first.size() - second.size();
  return state;
}

HttpServer::Connection::WriteState HttpServer::Connection::SendViewsNow(std::string_view& first,
                                                                        std::string_view& second) {
  for (;;) {
    iovec parts[2];
    int count = 0;
    if (!first.empty()) parts[count++] = {const_cast<char*>(first.data()), first.size()};
    if (!second.empty()) parts[count++] = {const_cast<char*>(second.data()), second.size()};
    if (count == 0) return WriteState::kDone;
    msghdr message{};
    message.msg_iov = parts;
    message.msg_iovlen = count;
    const ssize_t n = ::sendmsg(fd_, &message, MSG_NOSIGNAL);
    if (n >= 0) {
      const size_t sent = static_cast<size_t>(n);
      const size_t from_first = std::min(sent, first.size());
      first.remove_prefix(from_first);
      second.remove_prefix(std::min(sent - from_first, second.size()));
      continue;
    }
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? WriteState::kBlocked : WriteState::kBroken;
  }
}

boost::asio::awaitable<bool> HttpServer::Connection::FinishWrite(const Response& response,
                                                                 bool head,
                                                                 WriteProgress& progress) {
  if (StreamsBody(response, head)) co_return co_await WriteStreamed(response);
  // No co_await inside a switch: GCC 12 miscompiles the resumption.
  for (;;) {
    const WriteState state = SendNow(response, head, progress);
    if (state != WriteState::kBlocked) co_return state == WriteState::kDone;
    if (!co_await WaitWritable()) co_return false;
  }
}

void HttpServer::Connection::SerializeHeader(const Response& response, bool keep_alive,
                                             std::optional<uint64_t> length,
                                             std::string_view request_id) {
  // Serialised here into a buffer the connection reuses: Beast's serializer
  // walked a chain of buffer views per field and cost more than the rest of
  // the request. The fields the server owns are written here too rather than
  // set in the response's fields first (a lookup, an allocation and an
  // insertion each); the handler's own of the same names are left out.
  std::string& out = loop_.header_scratch;
  out.clear();
  const std::string_view reason = bhttp::obsolete_reason(response.status);
  absl::StrAppend(&out, "HTTP/1.1 ", static_cast<unsigned>(response.status), " ",
                  absl::string_view(reason.data(), reason.size()), "\r\n");
  for (const auto& field : response.headers) {
    const Field known = field.name();
    if (known == Field::server || known == Field::date || known == Field::connection ||
        (known == Field::content_length && length) ||
        (known == Field::unknown && !request_id.empty() &&
         beast::iequals(field.name_string(), "X-Request-Id"))) {
      continue;
    }
    const std::string_view name = field.name_string();
    const std::string_view value = field.value();
    out.append(name).append(": ").append(value).append("\r\n");
  }
  absl::StrAppend(&out, "Server: StreamGrid\r\nDate: ", HttpDate(), "\r\n");
  if (length) absl::StrAppend(&out, "Content-Length: ", *length, "\r\n");
  if (!request_id.empty()) {
    absl::StrAppend(&out, "X-Request-Id: ", absl::string_view(request_id.data(), request_id.size()),
                    "\r\n");
  }
  if (!keep_alive) out.append("Connection: close\r\n");
  out.append("\r\n");
  header_view_ = out;
}

boost::asio::awaitable<bool> HttpServer::Connection::SendAll(std::string_view first,
                                                             std::string_view second) {
  for (;;) {
    const WriteState state = SendViewsNow(first, second);
    if (state != WriteState::kBlocked) co_return state == WriteState::kDone;
    if (!co_await WaitWritable()) co_return false;
  }
}

boost::asio::awaitable<bool> HttpServer::Connection::WaitWritable() {
  beast::error_code ec;
  Arm(server_.options_.io_timeout);
  co_await socket_.async_wait(Socket::wait_write, redirect_error(use_awaitable, ec));
  Disarm();
  co_return !ec;
}

boost::asio::awaitable<bool> HttpServer::Connection::WriteStreamed(const Response& response) {
  if (!co_await SendAll(header_view_)) co_return false;
  uint64_t remaining = response.stream_length;
  // A source that can send itself (a local file, with sendfile) does, with
  // no copy through our memory; the framing needs nothing more, since the
  // length was announced.
  while (remaining > 0) {
    absl::StatusOr<size_t> n = co_await response.stream->SendTo(fd_, remaining);
    if (!n.ok()) {
      if (absl::IsUnimplemented(n.status()) && remaining == response.stream_length) break;
      spdlog::warn("response body ended {} bytes early: {}", remaining, n.status().ToString());
      co_return false;
    }
    if (*n == 0) {
      if (!co_await WaitWritable()) co_return false;
      continue;
    }
    remaining -= std::min<uint64_t>(*n, remaining);
  }
  if (remaining == 0) co_return true;
  std::vector<char> chunk(std::min<uint64_t>(kResponseChunk, remaining));
  while (remaining > 0) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(remaining, chunk.size()));
    absl::StatusOr<size_t> n = co_await response.stream->Read(std::span(chunk.data(), want));
    if (!n.ok() || *n == 0) {
      // Headers are out, so the only honest signal left is a short body.
      spdlog::warn("response body ended {} bytes early: {}", remaining,
                   n.ok() ? "source ended" : n.status().ToString());
      co_return false;
    }
    remaining -= std::min<uint64_t>(*n, remaining);
    if (!co_await SendAll(std::string_view(chunk.data(), std::min(*n, want)))) co_return false;
  }
  co_return true;
}

}  // namespace streamgrid::http
