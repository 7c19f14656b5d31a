#include "http/send_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "absl/status/status.h"

namespace streamgrid::http {
namespace {

// A connected pair of stream sockets: `sender` is non-blocking with a small
// send buffer (so that it fills quickly), `receiver` is read by the test.
class SendFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);  // as the servers do; a closed peer is an error, not a signal
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    sender_ = pair[0];
    receiver_ = pair[1];
    ASSERT_EQ(::fcntl(sender_, F_SETFL, ::fcntl(sender_, F_GETFL) | O_NONBLOCK), 0);
    const int small = 16 * 1024;
    ASSERT_EQ(::setsockopt(sender_, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    content_.resize(300 * 1024);
    for (size_t i = 0; i < content_.size(); ++i) {
      content_[i] = static_cast<char>('a' + (i * 13 + i / 1000) % 26);
    }
    file_ = ::memfd_create("send-file-test", MFD_CLOEXEC);
    ASSERT_GE(file_, 0);
    ASSERT_EQ(::write(file_, content_.data(), content_.size()),
              static_cast<ssize_t>(content_.size()));
  }
  void TearDown() override {
    for (int fd : {sender_, receiver_, file_}) {
      if (fd >= 0) ::close(fd);
    }
  }

  // Reads whatever the receiver has now, without waiting.
  std::string Drain() {
    std::string got;
    char buffer[65536];
    ssize_t n;
    while ((n = ::recv(receiver_, buffer, sizeof(buffer), MSG_DONTWAIT)) > 0) {
      got.append(buffer, static_cast<size_t>(n));
    }
    return got;
  }

  int sender_ = -1;
  int receiver_ = -1;
  int file_ = -1;
  std::string content_;
};

TEST_F(SendFileTest, SendsTheRangeAskedForAcrossWouldBlocks) {
  const uint64_t from = 12345;
  const uint64_t length = 200 * 1024;  // more than the socket buffers hold
  uint64_t sent = 0;
  int would_blocks = 0;
  std::string got;
  while (sent < length) {
    absl::StatusOr<size_t> n =
        SendFileOnce(sender_, file_, from + sent, static_cast<size_t>(length - sent));
    ASSERT_TRUE(n.ok()) << n.status();
    if (*n == 0) {
      ++would_blocks;
      got += Drain();  // makes room, as a reading peer would
      continue;
    }
    EXPECT_LE(*n, length - sent);
    sent += *n;
  }
  ::shutdown(sender_, SHUT_WR);
  char buffer[65536];
  ssize_t r;
  while ((r = ::recv(receiver_, buffer, sizeof(buffer), 0)) > 0) {
    got.append(buffer, static_cast<size_t>(r));
  }
  EXPECT_GT(would_blocks, 0) << "the socket never filled: the test does not cover would-block";
  EXPECT_EQ(got, content_.substr(from, length));
}

TEST_F(SendFileTest, AFullSocketTakesNothingAndLaterTakesMore) {
  absl::StatusOr<size_t> n;
  uint64_t sent = 0;
  do {
    n = SendFileOnce(sender_, file_, sent % content_.size(), 4096);
    ASSERT_TRUE(n.ok()) << n.status();
    sent += *n;
  } while (*n > 0);
  EXPECT_GT(sent, 0u);
  EXPECT_EQ(Drain().size(), sent);
  n = SendFileOnce(sender_, file_, 0, 4096);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_GT(*n, 0u);
}

TEST_F(SendFileTest, AnOffsetAtTheEndIsDataLoss) {
  absl::StatusOr<size_t> n = SendFileOnce(sender_, file_, content_.size(), 100);
  EXPECT_EQ(n.status().code(), absl::StatusCode::kDataLoss) << n.status();
}

TEST_F(SendFileTest, AGonePeerIsUnavailable) {
  ::close(receiver_);
  receiver_ = -1;
  absl::StatusOr<size_t> n = SendFileOnce(sender_, file_, 0, 100);
  EXPECT_EQ(n.status().code(), absl::StatusCode::kUnavailable) << n.status();
}

TEST_F(SendFileTest, ADescriptorSendfileCannotReadIsFailedPreconditionAndSendsNothing) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  ASSERT_EQ(::write(pipe_fds[1], "abc", 3), 3);
  absl::StatusOr<size_t> n = SendFileOnce(sender_, pipe_fds[0], 0, 3);
  EXPECT_EQ(n.status().code(), absl::StatusCode::kFailedPrecondition) << n.status();
  EXPECT_EQ(Drain(), "");
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
}

}  // namespace
}  // namespace streamgrid::http
