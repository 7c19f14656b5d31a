#include "metadata/record_change_hub.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace streamgrid {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

TEST(RecordChangeHubTest, NotifyCallsOnlyThatRecordsSubscribers) {
  RecordChangeHub hub;
  std::vector<std::string> calls;
  auto a1 = hub.Subscribe("a", [&] { calls.push_back("a1"); });
  auto a2 = hub.Subscribe("a", [&] { calls.push_back("a2"); });
  auto b = hub.Subscribe("b", [&] { calls.push_back("b"); });
  hub.Notify("a");
  EXPECT_THAT(calls, UnorderedElementsAre("a1", "a2"));
  calls.clear();
  hub.Notify("c");
  EXPECT_THAT(calls, ElementsAre());
  hub.Notify("b");
  EXPECT_THAT(calls, ElementsAre("b"));
}

TEST(RecordChangeHubTest, NotifyAllCallsEverySubscriber) {
  RecordChangeHub hub;
  std::vector<std::string> calls;
  auto a = hub.Subscribe("a", [&] { calls.push_back("a"); });
  auto b = hub.Subscribe("b", [&] { calls.push_back("b"); });
  hub.NotifyAll();
  EXPECT_THAT(calls, UnorderedElementsAre("a", "b"));
}

TEST(RecordChangeHubTest, DestroyedSubscriptionIsNeverCalledAgain) {
  RecordChangeHub hub;
  int gone = 0, kept = 0;
  auto first = hub.Subscribe("a", [&] { ++gone; });
  auto second = hub.Subscribe("a", [&] { ++kept; });
  EXPECT_EQ(hub.size(), 2u);
  first.reset();
  EXPECT_EQ(hub.size(), 1u);
  hub.Notify("a");
  hub.NotifyAll();
  EXPECT_EQ(gone, 0);
  EXPECT_EQ(kept, 2);
  second.reset();
  EXPECT_EQ(hub.size(), 0u);
}

}  // namespace
}  // namespace streamgrid
