#include "transcode/cancel_token.h"

#include <atomic>
#include <thread>

#include "gtest/gtest.h"

namespace streamgrid {
namespace {

TEST(CancelTokenTest, CancelRunsRegisteredCallbacksOnce) {
  CancelToken token;
  int calls = 0;
  CancelToken::Registration registration = token.OnCancel([&] { ++calls; });
  EXPECT_FALSE(token.cancelled());
  token.Cancel();
  token.Cancel();
  EXPECT_TRUE(token.cancelled());
  EXPECT_EQ(calls, 1);
}

TEST(CancelTokenTest, RegisteringAfterCancelRunsAtOnce) {
  CancelToken token;
  token.Cancel();
  int calls = 0;
  CancelToken::Registration registration = token.OnCancel([&] { ++calls; });
  EXPECT_EQ(calls, 1);
}

TEST(CancelTokenTest, DestroyedRegistrationDoesNotRun) {
  CancelToken token;
  int calls = 0;
  {
    CancelToken::Registration registration = token.OnCancel([&] { ++calls; });
  }
  CancelToken::Registration kept = token.OnCancel([&] { calls += 10; });
  token.Cancel();
  EXPECT_EQ(calls, 10);
}

TEST(CancelTokenTest, MovedRegistrationStaysRegistered) {
  CancelToken token;
  int calls = 0;
  CancelToken::Registration outer;
  {
    CancelToken::Registration inner = token.OnCancel([&] { ++calls; });
    outer = std::move(inner);
  }
  token.Cancel();
  EXPECT_EQ(calls, 1);
}

TEST(CancelTokenTest, CancelFromAnotherThread) {
  CancelToken token;
  std::atomic<bool> called{false};
  CancelToken::Registration registration = token.OnCancel([&] { called = true; });
  std::thread canceller([&] { token.Cancel(); });
  canceller.join();
  EXPECT_TRUE(called);
  EXPECT_TRUE(token.cancelled());
}

}  // namespace
}  // namespace streamgrid
