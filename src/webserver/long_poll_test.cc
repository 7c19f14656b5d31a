#include "webserver/long_poll.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "gtest/gtest.h"

namespace streamgrid::webserver {
namespace {

using std::chrono::seconds;

TEST(PreferredWaitTest, ReadsTheWaitPreference) {
  EXPECT_EQ(PreferredWait("wait=10", seconds(30)), seconds(10));
  EXPECT_EQ(PreferredWait("respond-async, wait=5", seconds(30)), seconds(5));
  EXPECT_EQ(PreferredWait(" Wait = 7", seconds(30)), seconds(7));
  EXPECT_EQ(PreferredWait("wait=\"9\"", seconds(30)), seconds(9));
  EXPECT_EQ(PreferredWait("WAIT=7", seconds(30)), seconds(7));
  EXPECT_EQ(PreferredWait("wait=8;foo=bar", seconds(30)), seconds(8));
  EXPECT_EQ(PreferredWait("wait=0", seconds(30)), seconds(0));
}

TEST(PreferredWaitTest, ClampsToTheMaximum) {
  EXPECT_EQ(PreferredWait("wait=31", seconds(30)), seconds(30));
  EXPECT_EQ(PreferredWait("wait=99999999999999999999999", seconds(30)), seconds(30));
}

TEST(PreferredWaitTest, IgnoresWhatItCannotRead) {
  for (const char* prefer : {"", "respond-async", "wait=", "wait=-1", "wait=1.5", "wait=ten",
                             "waiting=5", "wait=5s", "wait=-99999999999999999999"}) {
    EXPECT_EQ(PreferredWait(prefer, seconds(30)), seconds(0)) << prefer;
  }
}

TEST(BodyEtagTest, EqualBodiesEqualTagsAndAChangeChangesIt) {
  EXPECT_EQ(BodyEtag(R"({"progress":10})"), BodyEtag(R"({"progress":10})"));
  EXPECT_NE(BodyEtag(R"({"progress":10})"), BodyEtag(R"({"progress":11})"));
  const std::string tag = BodyEtag("x");
  ASSERT_EQ(tag.size(), 18u);
  EXPECT_EQ(tag.front(), '"');
  EXPECT_EQ(tag.back(), '"');
}

TEST(WakeOnChangeTest, MarksChangedAndCancelsTheWaitOnTheLoop) {
  boost::asio::io_context loop;
  auto wake = std::make_shared<ChangeWake>(loop.get_executor());
  boost::asio::steady_timer timer(loop, seconds(3600));
  bool cancelled = false;
  timer.async_wait([&](boost::system::error_code ec) {
    cancelled = ec == boost::asio::error::operation_aborted;
  });
  wake->timer = &timer;
  WakeOnChange(wake)();  // as a subscription calls it, from any thread
  EXPECT_FALSE(wake->changed) << "only the loop touches the wake";
  loop.run();
  EXPECT_TRUE(wake->changed);
  EXPECT_TRUE(cancelled);
}

TEST(WakeOnChangeTest, AWakeWithNoWaitOnlyMarksChanged) {
  boost::asio::io_context loop;
  auto wake = std::make_shared<ChangeWake>(loop.get_executor());
  WakeOnChange(wake)();
  loop.run();
  EXPECT_TRUE(wake->changed);
}

}  // namespace
}  // namespace streamgrid::webserver
