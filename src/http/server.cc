#include "http/server.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <exception>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "http/connection.h"

namespace streamgrid::http {
namespace {

using tcp = boost::asio::ip::tcp;
using boost::asio::redirect_error;
using boost::asio::use_awaitable;

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

// How often each loop looks for connections past their deadline: an eighth
// of the shortest timeout, so that a timeout fires at most 12.5 % late, but
// no more than once per 10 ms and at least once a second.
std::chrono::milliseconds SweepPeriod(const ServerOptions& options) {
  const auto shortest =
      std::min({options.header_timeout, options.idle_timeout, options.io_timeout});
  return std::clamp<std::chrono::milliseconds>(shortest / 8, std::chrono::milliseconds(10),
                                               std::chrono::seconds(1));
}

}  // namespace

HttpServer::HttpServer(ServerOptions options, const Router& router)
    : options_(std::move(options)),
      router_(router),
      guard_(options_.write_guard),
      sweep_period_(SweepPeriod(options_)),
      loops_([n = EventLoopThreads(options_.threads)] {
        std::vector<std::unique_ptr<Loop>> loops;
        for (int i = 0; i < n; ++i) loops.push_back(std::make_unique<Loop>());
        return loops;
      }()),
      acceptor_(loops_.front()->io) {}

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
  boost::asio::co_spawn(loops_.front()->io, AcceptLoop(), boost::asio::detached);
  for (auto& loop : loops_) {
    boost::asio::co_spawn(loop->io, SweepTimeouts(*loop), boost::asio::detached);
    threads_.emplace_back([&context = loop->io] {
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
    Loop& home = *loops_[next_loop_];
    next_loop_ = (next_loop_ + 1) % loops_.size();
    Connection::Socket socket(home.io);
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
      boost::asio::steady_timer timer(loops_.front()->io, std::chrono::milliseconds(50));
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
      boost::asio::steady_timer timer(loops_.front()->io, std::chrono::milliseconds(2));
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
    auto connection = std::make_shared<Connection>(*this, home, std::move(socket));
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

boost::asio::awaitable<void> HttpServer::SweepTimeouts(Loop& loop) {
  boost::asio::steady_timer timer(loop.io);
  for (;;) {
    timer.expires_after(sweep_period_);
    boost::system::error_code ec;
    co_await timer.async_wait(redirect_error(use_awaitable, ec));
    if (ec) co_return;
    // Cancelling only queues the cancelled operations' completions, so the
    // list does not change under this walk.
    const auto now = Connection::Clock::now();
    for (Connection* c = loop.first; c != nullptr; c = c->next_in_loop()) c->ExpireIfDue(now);
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
    boost::asio::steady_timer timer(loops_.front()->io, std::chrono::milliseconds(5));
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
  boost::asio::steady_timer timer(loops_.front()->io, std::chrono::milliseconds(50));
  co_await timer.async_wait(redirect_error(use_awaitable, ec));
}

void HttpServer::Stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& loop : loops_) loop->io.stop();
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
