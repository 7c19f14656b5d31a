#include "http/router.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace streamgrid::http {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

Handler Named(std::string name) {
  return
      [name](Request&) -> asio::awaitable<Response> { co_return Response::Text(Status::ok, name); };
}

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.Add(Verb::get, "/", Named("home"));
    router_.Add(Verb::get, "/api/videos", Named("list"));
    router_.Add(Verb::get, "/api/videos/{}", Named("get"));
    router_.Add(Verb::delete_, "/api/videos/{}", Named("delete"));
    router_.Add(Verb::get, "/content/{}/{}", Named("content"));
    router_.Add(Verb::get, "/static/{*}", Named("static"));
  }
  Router router_;
};

TEST_F(RouterTest, MatchesLiteralsAndCapturesRawSegments) {
  auto match = router_.Find(Verb::get, "/api/videos/abc%2Fdef");
  ASSERT_NE(match.route, nullptr);
  EXPECT_THAT(match.params, ElementsAre("abc%2Fdef"));
  EXPECT_NE(router_.Find(Verb::get, "/").route, nullptr);
  EXPECT_THAT(router_.Find(Verb::get, "/api/videos").params, IsEmpty());
}

TEST_F(RouterTest, PlaceholdersNeedNonEmptySegmentsAndExactDepth) {
  EXPECT_EQ(router_.Find(Verb::get, "/api/videos/").route, nullptr);
  EXPECT_EQ(router_.Find(Verb::get, "/content/a").route, nullptr);
  EXPECT_EQ(router_.Find(Verb::get, "/content/a/b/c").route, nullptr);
  EXPECT_EQ(router_.Find(Verb::get, "/content//b").route, nullptr);
  EXPECT_THAT(router_.Find(Verb::get, "/content/a/b").params, ElementsAre("a", "b"));
}

TEST_F(RouterTest, TrailingWildcardTakesTheRest) {
  EXPECT_THAT(router_.Find(Verb::get, "/static/vendor/dash.js").params,
              ElementsAre("vendor/dash.js"));
  EXPECT_EQ(router_.Find(Verb::get, "/static").route, nullptr);
}

TEST_F(RouterTest, HeadFallsBackToGet) {
  EXPECT_NE(router_.Find(Verb::head, "/api/videos").route, nullptr);
}

TEST_F(RouterTest, WrongMethodReportsWhatIsAllowed) {
  auto match = router_.Find(Verb::put, "/api/videos/x");
  EXPECT_EQ(match.route, nullptr);
  EXPECT_EQ(match.allow, "GET, HEAD, DELETE, OPTIONS");
  EXPECT_TRUE(router_.Find(Verb::put, "/nowhere").allow.empty());
}

}  // namespace
}  // namespace streamgrid::http
