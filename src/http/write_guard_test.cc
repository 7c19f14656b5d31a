#include "http/write_guard.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <utility>

namespace streamgrid::http {
namespace {

using ::testing::HasSubstr;

Fields Headers(std::initializer_list<std::pair<std::string_view, std::string_view>> list) {
  Fields fields;
  for (const auto& [name, value] : list) fields.insert(name, value);
  return fields;
}

std::string Get(const Fields& fields, std::string_view name) {
  auto it = fields.find(name);
  return it == fields.end() ? "" : std::string(it->value());
}

WriteGuard Guard(std::string token = "") {
  auto origins = ParseAllowedOrigins("https://player.example.com, http://localhost:3000");
  EXPECT_TRUE(origins.ok());
  return WriteGuard({.allowed_origins = *origins, .api_token = std::move(token)});
}

TEST(IsReadMethodTest, OnlyGetHeadOptionsRead) {
  EXPECT_TRUE(IsReadMethod(Verb::get));
  EXPECT_TRUE(IsReadMethod(Verb::head));
  EXPECT_TRUE(IsReadMethod(Verb::options));
  for (Verb v : {Verb::post, Verb::put, Verb::patch, Verb::delete_, Verb::propfind, Verb::mkcol,
                 Verb::purge, Verb::unknown}) {
    EXPECT_FALSE(IsReadMethod(v)) << boost::beast::http::to_string(v);
  }
}

TEST(ParseAllowedOriginsTest, CanonicalisesAndRejectsNonOrigins) {
  auto parsed = ParseAllowedOrigins(" HTTPS://Player.Example.com:443 ,http://a.test:8080,");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed,
            (std::vector<std::string>{"https://player.example.com", "http://a.test:8080"}));
  EXPECT_TRUE(ParseAllowedOrigins("")->empty());
  for (const char* bad : {"*", "null", "example.com", "https://example.com/", "https://e.com/x",
                          "ftp://e.com", "https://", "https://e.com:0", "https://e.com:99999",
                          "https://e.com:", "https://u@e.com", "https://e .com"}) {
    auto result = ParseAllowedOrigins(bad);
    EXPECT_FALSE(result.ok()) << bad;
    EXPECT_THAT(result.status().message(), HasSubstr("is not an origin")) << bad;
  }
  EXPECT_EQ(CanonicalOrigin("http://[::1]:80"), "http://[::1]");
  EXPECT_EQ(CanonicalOrigin("http://[::1]:8080"), "http://[::1]:8080");
}

TEST(WriteGuardTest, ClassifiesOrigins) {
  WriteGuard guard = Guard();
  EXPECT_EQ(guard.ClassifyOrigin(Headers({{"Host", "127.0.0.1:8080"}})), OriginKind::kNone);
  EXPECT_EQ(guard.ClassifyOrigin(
                Headers({{"Host", "127.0.0.1:8080"}, {"Origin", "http://127.0.0.1:8080"}})),
            OriginKind::kSameOrigin);
  // Default ports, case and a TLS proxy in front.
  EXPECT_EQ(guard.ClassifyOrigin(
                Headers({{"Host", "Videos.Example"}, {"Origin", "https://videos.example"}})),
            OriginKind::kSameOrigin);
  EXPECT_EQ(guard.ClassifyOrigin(
                Headers({{"Host", "videos.example:80"}, {"Origin", "http://videos.example"}})),
            OriginKind::kSameOrigin);
  EXPECT_EQ(
      guard.ClassifyOrigin(Headers({{"Host", "[::1]:8080"}, {"Origin", "http://[::1]:8080"}})),
      OriginKind::kSameOrigin);
  // The proxy says which scheme the browser used.
  EXPECT_EQ(guard.ClassifyOrigin(Headers({{"Host", "videos.example"},
                                          {"Origin", "https://videos.example"},
                                          {"X-Forwarded-Proto", "https"}})),
            OriginKind::kSameOrigin);
  EXPECT_EQ(guard.ClassifyOrigin(Headers({{"Host", "videos.example:8443"},
                                          {"Origin", "http://videos.example:8443"},
                                          {"X-Forwarded-Proto", "https"}})),
            OriginKind::kForeign);
  // Another port, host or suffix is another origin.
  for (const char* origin : {"http://127.0.0.1:8081", "http://127.0.0.1", "https://127.0.0.1:8080x",
                             "http://localhost:8080", "http://127.0.0.1.evil.example:8080", "null",
                             "", "http://127.0.0.1:8080/", "file://", "http://evil.example"}) {
    EXPECT_EQ(guard.ClassifyOrigin(Headers({{"Host", "127.0.0.1:8080"}, {"Origin", origin}})),
              OriginKind::kForeign)
        << origin;
  }
  EXPECT_EQ(
      guard.ClassifyOrigin(Headers({{"Host", "x"}, {"Origin", "https://player.example.com"}})),
      OriginKind::kAllowListed);
  EXPECT_EQ(
      guard.ClassifyOrigin(Headers({{"Host", "x"}, {"Origin", "https://player.example.com:443"}})),
      OriginKind::kAllowListed);
  EXPECT_EQ(guard.ClassifyOrigin(Headers({{"Host", "x"}, {"Origin", "http://player.example.com"}})),
            OriginKind::kForeign);
  EXPECT_EQ(guard.ClassifyOrigin(Headers({{"Host", "x"}, {"Origin", "http://localhost:3000"}})),
            OriginKind::kAllowListed);
  // Two Origin headers, or no usable Host, prove nothing.
  EXPECT_EQ(guard.ClassifyOrigin(
                Headers({{"Host", "a:1"}, {"Origin", "http://a:1"}, {"Origin", "http://a:1"}})),
            OriginKind::kForeign);
  EXPECT_EQ(guard.ClassifyOrigin(Headers({{"Origin", "http://a:1"}})), OriginKind::kForeign);
  EXPECT_EQ(
      guard.ClassifyOrigin(Headers({{"Host", "a:1"}, {"Host", "a:1"}, {"Origin", "http://a:1"}})),
      OriginKind::kForeign);
}

TEST(WriteGuardTest, RefusesForeignWrites) {
  WriteGuard guard = Guard();
  EXPECT_TRUE(guard.CheckWrite(Headers({{"Host", "h:1"}})).ok());
  EXPECT_TRUE(guard.CheckWrite(Headers({{"Host", "h:1"}, {"Origin", "http://h:1"}})).ok());
  EXPECT_TRUE(
      guard.CheckWrite(Headers({{"Host", "h:1"}, {"Origin", "http://localhost:3000"}})).ok());
  absl::Status foreign =
      guard.CheckWrite(Headers({{"Host", "h:1"}, {"Origin", "https://evil.example"}}));
  EXPECT_TRUE(absl::IsPermissionDenied(foreign)) << foreign;
  EXPECT_THAT(foreign.message(), HasSubstr("https://evil.example"));
  EXPECT_TRUE(
      absl::IsPermissionDenied(guard.CheckWrite(Headers({{"Host", "h:1"}, {"Origin", "null"}}))));
  // Without Origin, the browser's fetch metadata still counts.
  EXPECT_TRUE(absl::IsPermissionDenied(
      guard.CheckWrite(Headers({{"Host", "h:1"}, {"Sec-Fetch-Site", "cross-site"}}))));
  EXPECT_TRUE(absl::IsPermissionDenied(
      guard.CheckWrite(Headers({{"Host", "h:1"}, {"Sec-Fetch-Site", "same-site"}}))));
  EXPECT_TRUE(guard.CheckWrite(Headers({{"Host", "h:1"}, {"Sec-Fetch-Site", "same-origin"}})).ok());
  EXPECT_TRUE(guard.CheckWrite(Headers({{"Host", "h:1"}, {"Sec-Fetch-Site", "none"}})).ok());
}

TEST(WriteGuardTest, TokenModeNeedsTheBearerToken) {
  WriteGuard guard = Guard("s3cret-token");
  EXPECT_TRUE(guard.requires_token());
  EXPECT_TRUE(absl::IsUnauthenticated(guard.CheckWrite(Headers({{"Host", "h:1"}}))));
  for (const char* value : {"Bearer wrong", "Bearer s3cret-toke", "Bearer s3cret-token2",
                            "Basic s3cret-token", "s3cret-token", "Bearer", "Bearer "}) {
    EXPECT_TRUE(absl::IsUnauthenticated(
        guard.CheckWrite(Headers({{"Host", "h:1"}, {"Authorization", value}}))))
        << value;
  }
  EXPECT_TRUE(
      guard.CheckWrite(Headers({{"Host", "h:1"}, {"Authorization", "Bearer s3cret-token"}})).ok());
  EXPECT_TRUE(
      guard.CheckWrite(Headers({{"Host", "h:1"}, {"Authorization", "bearer  s3cret-token "}}))
          .ok());
  // The origin check comes first: a token does not make a foreign page's write acceptable.
  EXPECT_TRUE(absl::IsPermissionDenied(
      guard.CheckWrite(Headers({{"Host", "h:1"},
                                {"Origin", "https://evil.example"},
                                {"Authorization", "Bearer s3cret-token"}}))));
  EXPECT_FALSE(Guard().requires_token());
}

TEST(WriteGuardTest, PreflightsGrantReadsToAllAndWritesToTrustedOrigins) {
  WriteGuard guard = Guard();
  Response read = guard.Preflight(Headers({{"Host", "h:1"},
                                           {"Origin", "https://evil.example"},
                                           {"Access-Control-Request-Method", "GET"}}));
  EXPECT_EQ(read.status, Status::no_content);
  EXPECT_EQ(Get(read.headers, "Access-Control-Allow-Origin"), "*");
  EXPECT_THAT(Get(read.headers, "Access-Control-Allow-Methods"), HasSubstr("GET"));
  EXPECT_THAT(Get(read.headers, "Access-Control-Allow-Methods"),
              ::testing::Not(HasSubstr("DELETE")));
  EXPECT_THAT(Get(read.headers, "Access-Control-Allow-Headers"), HasSubstr("Range"));

  for (const char* method : {"DELETE", "POST", "PUT", "PATCH"}) {
    Response foreign = guard.Preflight(Headers({{"Host", "h:1"},
                                                {"Origin", "https://evil.example"},
                                                {"Access-Control-Request-Method", method}}));
    EXPECT_EQ(foreign.status, Status::forbidden) << method;
    EXPECT_EQ(Get(foreign.headers, "Access-Control-Allow-Origin"), "") << method;
    EXPECT_EQ(Get(foreign.headers, "Access-Control-Allow-Methods"), "") << method;
  }
  Response null_origin = guard.Preflight(
      Headers({{"Host", "h:1"}, {"Origin", "null"}, {"Access-Control-Request-Method", "DELETE"}}));
  EXPECT_EQ(null_origin.status, Status::forbidden);

  Response allowed =
      guard.Preflight(Headers({{"Host", "h:1"},
                               {"Origin", "https://player.example.com"},
                               {"Access-Control-Request-Method", "DELETE"},
                               {"Access-Control-Request-Headers", "authorization"}}));
  EXPECT_EQ(allowed.status, Status::no_content);
  EXPECT_EQ(Get(allowed.headers, "Access-Control-Allow-Origin"), "https://player.example.com");
  EXPECT_THAT(Get(allowed.headers, "Access-Control-Allow-Methods"), HasSubstr("DELETE"));
  EXPECT_THAT(Get(allowed.headers, "Access-Control-Allow-Headers"), HasSubstr("Authorization"));
  EXPECT_THAT(Get(allowed.headers, "Vary"), HasSubstr("Origin"));
}

TEST(WriteGuardTest, CorsHeadersOfAnswers) {
  WriteGuard guard = Guard();
  Fields read;
  guard.AddCorsHeaders(Verb::get, Headers({{"Host", "h:1"}, {"Origin", "https://evil.example"}}),
                       read);
  EXPECT_EQ(Get(read, "Access-Control-Allow-Origin"), "*");

  Fields foreign;
  guard.AddCorsHeaders(Verb::delete_,
                       Headers({{"Host", "h:1"}, {"Origin", "https://evil.example"}}), foreign);
  EXPECT_EQ(Get(foreign, "Access-Control-Allow-Origin"), "");
  EXPECT_EQ(Get(foreign, "Vary"), "Origin");

  Fields listed;
  listed.set(Field::vary, "Accept-Encoding");
  guard.AddCorsHeaders(Verb::post, Headers({{"Host", "h:1"}, {"Origin", "http://localhost:3000"}}),
                       listed);
  EXPECT_EQ(Get(listed, "Access-Control-Allow-Origin"), "http://localhost:3000");
  EXPECT_EQ(Get(listed, "Vary"), "Accept-Encoding, Origin");
}

TEST(WriteGuardTest, OnlyTusAnswersExposeTheTusFields) {
  WriteGuard guard = Guard();
  // A segment: scripts may read its ETag, Date and ranges, and the list
  // names no field such an answer never has.
  Fields segment;
  guard.AddCorsHeaders(Verb::get, Headers({{"Host", "h:1"}}), segment);
  const std::string plain = Get(segment, "Access-Control-Expose-Headers");
  EXPECT_THAT(plain, HasSubstr("ETag"));
  EXPECT_THAT(plain, HasSubstr("Content-Range"));
  EXPECT_THAT(plain, ::testing::Not(HasSubstr("Upload-Offset")));
  // A tus answer, read (HEAD) or written (PATCH from a listed origin),
  // exposes the protocol's fields, which tus clients in a page need.
  for (const Verb verb : {Verb::head, Verb::patch}) {
    Fields tus;
    tus.set("Tus-Resumable", "1.0.0");
    tus.set("Upload-Offset", "3");
    guard.AddCorsHeaders(verb, Headers({{"Host", "h:1"}, {"Origin", "http://localhost:3000"}}),
                         tus);
    const std::string exposed = Get(tus, "Access-Control-Expose-Headers");
    EXPECT_THAT(exposed, HasSubstr("Upload-Offset"));
    EXPECT_THAT(exposed, HasSubstr("Tus-Resumable"));
    EXPECT_THAT(exposed, HasSubstr("ETag"));
  }
}

TEST(SecurityHeadersTest, NosniffEverywhereCspOnHtml) {
  Fields json;
  json.set(Field::content_type, "application/json");
  AddSecurityHeaders(json);
  EXPECT_EQ(Get(json, "X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(Get(json, "Content-Security-Policy"), "");

  Fields html;
  html.set(Field::content_type, "text/html; charset=utf-8");
  AddSecurityHeaders(html);
  EXPECT_EQ(Get(html, "X-Content-Type-Options"), "nosniff");
  std::string csp = Get(html, "Content-Security-Policy");
  EXPECT_THAT(csp, HasSubstr("script-src 'self'"));
  EXPECT_THAT(csp, HasSubstr("object-src 'none'"));
  EXPECT_THAT(csp, HasSubstr("frame-ancestors 'none'"));
  EXPECT_THAT(csp, ::testing::Not(HasSubstr("unsafe-inline")));
  EXPECT_NE(Get(html, "Referrer-Policy"), "");
}

}  // namespace
}  // namespace streamgrid::http
