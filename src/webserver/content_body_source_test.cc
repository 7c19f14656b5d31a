#include "webserver/content_body_source.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <string>

namespace streamgrid::webserver {
namespace {

// A reader of `data` whose SendableFd is `fd` (-1: none).
class FakeReader : public ContentReader {
 public:
  FakeReader(std::string data, int fd) : data_(std::move(data)), fd_(fd) {
    info_.size = data_.size();
  }
  absl::StatusOr<size_t> Read(std::span<char> buffer) override {
    const size_t n = std::min(buffer.size(), data_.size() - read_);
    std::copy_n(data_.data() + read_, n, buffer.data());
    read_ += n;
    return n;
  }
  const ContentInfo& info() const override { return info_; }
  int SendableFd(uint64_t* position) const override {
    *position = 0;
    return fd_;
  }

 private:
  std::string data_;
  int fd_;
  size_t read_ = 0;
  ContentInfo info_;
};

class ContentBodySourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    sender_ = pair[0];
    receiver_ = pair[1];
    ASSERT_EQ(::fcntl(sender_, F_SETFL, ::fcntl(sender_, F_GETFL) | O_NONBLOCK), 0);
    for (int i = 0; i < 100000; ++i) data_.push_back(static_cast<char>('a' + i % 23));
  }
  void TearDown() override {
    ::close(sender_);
    ::close(receiver_);
    pool_.join();
  }

  // Runs `fn` (a coroutine of this source) to completion; returns its result.
  template <typename Fn>
  absl::StatusOr<size_t> Run(Fn fn) {
    boost::asio::io_context io;
    auto result = boost::asio::co_spawn(io, fn(), boost::asio::use_future);
    io.run();
    return result.get();
  }

  // Everything the receiver has now.
  std::string Drain() {
    std::string got;
    char buffer[65536];
    ssize_t n;
    while ((n = ::recv(receiver_, buffer, sizeof(buffer), MSG_DONTWAIT)) > 0) {
      got.append(buffer, static_cast<size_t>(n));
    }
    return got;
  }

  boost::asio::thread_pool pool_{1};
  int sender_ = -1;
  int receiver_ = -1;
  std::string data_;
};

TEST_F(ContentBodySourceTest, ALocalFileIsSentWithSendfile) {
  const int memfd = ::memfd_create("body", MFD_CLOEXEC);
  ASSERT_EQ(::write(memfd, data_.data(), data_.size()), static_cast<ssize_t>(data_.size()));
  ContentBodySource source(std::make_unique<FakeReader>(data_, memfd), pool_);
  std::string got;
  uint64_t sent = 0;
  while (sent < data_.size()) {
    absl::StatusOr<size_t> n = Run([&] { return source.SendTo(sender_, data_.size() - sent); });
    ASSERT_TRUE(n.ok()) << n.status();
    sent += *n;
    got += Drain();  // a reading peer
  }
  got += Drain();
  EXPECT_EQ(got, data_);
  ::close(memfd);
}

TEST_F(ContentBodySourceTest, ADescriptorSendfileCannotReadFallsBackToReadFromTheStart) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  ContentBodySource source(std::make_unique<FakeReader>(data_, pipe_fds[0]), pool_);
  absl::StatusOr<size_t> n = Run([&] { return source.SendTo(sender_, data_.size()); });
  EXPECT_EQ(n.status().code(), absl::StatusCode::kUnimplemented) << n.status();
  EXPECT_EQ(Drain(), "");
  // As the server then does: the whole body through Read().
  std::string got;
  std::vector<char> buffer(30000);
  for (;;) {
    absl::StatusOr<size_t> r = Run([&] { return source.Read(buffer); });
    ASSERT_TRUE(r.ok()) << r.status();
    if (*r == 0) break;
    got.append(buffer.data(), *r);
  }
  EXPECT_EQ(got, data_);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
}

TEST_F(ContentBodySourceTest, AReaderWithoutADescriptorIsUnimplemented) {
  ContentBodySource source(std::make_unique<FakeReader>(data_, -1), pool_);
  absl::StatusOr<size_t> n = Run([&] { return source.SendTo(sender_, 100); });
  EXPECT_EQ(n.status().code(), absl::StatusCode::kUnimplemented) << n.status();
}

}  // namespace
}  // namespace streamgrid::webserver
