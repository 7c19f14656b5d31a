#include "auth/token.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace streamgrid::auth {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

class TokenFileTest : public ::testing::Test {
 protected:
  TokenFileTest() {
    dir_ = fs::temp_directory_path() /
           ("sg-token-test-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  ~TokenFileTest() override { fs::remove_all(dir_); }

  std::string Write(const std::string& contents) {
    const fs::path path = dir_ / "token";
    std::ofstream(path, std::ios::binary) << contents;
    fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
    return path.string();
  }

  fs::path dir_;
};

TEST_F(TokenFileTest, StripsOneTrailingNewline) {
  EXPECT_EQ(*ReadTokenFile(Write("s3cret\n")), "s3cret");
  EXPECT_EQ(*ReadTokenFile(Write("s3cret\r\n")), "s3cret");
  EXPECT_EQ(*ReadTokenFile(Write("s3cret")), "s3cret");
  // Only one: a second newline is a mistake, reported rather than trimmed.
  EXPECT_FALSE(ReadTokenFile(Write("s3cret\n\n")).ok());
}

TEST_F(TokenFileTest, KeepsInnerSpacesAndBase64) {
  EXPECT_EQ(*ReadTokenFile(Write("a b+/=\n")), "a b+/=");
}

TEST_F(TokenFileTest, EmptyFileIsAnErrorNamingThePath) {
  const std::string path = Write("");
  absl::StatusOr<std::string> token = ReadTokenFile(path);
  ASSERT_FALSE(token.ok());
  EXPECT_THAT(token.status().message(), HasSubstr(path));
  EXPECT_THAT(token.status().message(), HasSubstr("empty"));
  EXPECT_FALSE(ReadTokenFile(Write("\n")).ok());
}

TEST_F(TokenFileTest, MissingFileIsAnErrorWithTheReason) {
  absl::StatusOr<std::string> token = ReadTokenFile((dir_ / "absent").string());
  ASSERT_FALSE(token.ok());
  EXPECT_THAT(token.status().message(), HasSubstr("No such file"));
}

TEST_F(TokenFileTest, UnreadableFileIsAnError) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads files whatever their mode";
  const std::string path = Write("s3cret");
  ASSERT_EQ(chmod(path.c_str(), 0), 0);
  absl::StatusOr<std::string> token = ReadTokenFile(path);
  ASSERT_FALSE(token.ok());
  EXPECT_THAT(token.status().message(), HasSubstr("Permission denied"));
}

TEST_F(TokenFileTest, ControlCharactersAreRefusedWithoutEchoingTheToken) {
  absl::StatusOr<std::string> token = ReadTokenFile(Write("top\x01secret"));
  ASSERT_FALSE(token.ok());
  EXPECT_THAT(token.status().message(), Not(HasSubstr("secret")));
  EXPECT_FALSE(ReadTokenFile(Write(std::string("a\0b", 3))).ok());
}

TEST_F(TokenFileTest, FileReadableByEveryoneIsRefused) {
  const std::string path = Write("s3cret\n");
  fs::permissions(path, fs::perms::others_read, fs::perm_options::add);
  absl::StatusOr<std::string> token = ReadTokenFile(path);
  ASSERT_FALSE(token.ok());
  EXPECT_THAT(token.status().message(), HasSubstr("chmod 600"));
  // Readable by the group is the owner's choice.
  fs::permissions(path, fs::perms::others_read, fs::perm_options::remove);
  fs::permissions(path, fs::perms::group_read, fs::perm_options::add);
  EXPECT_TRUE(ReadTokenFile(path).ok());
}

TEST_F(TokenFileTest, DirectoryIsRefused) {
  absl::StatusOr<std::string> token = ReadTokenFile(dir_.string());
  ASSERT_FALSE(token.ok());
  EXPECT_THAT(token.status().message(), HasSubstr("not a regular file"));
}

TEST_F(TokenFileTest, HugeFileIsRefused) {
  EXPECT_FALSE(ReadTokenFile(Write(std::string(10000, 'a'))).ok());
}

TEST(TokensEqualTest, ComparesWholeTokens) {
  EXPECT_TRUE(TokensEqual("s3cret", "s3cret"));
  EXPECT_FALSE(TokensEqual("s3cret", "s3creT"));
  EXPECT_FALSE(TokensEqual("s3cret", "s3cre"));
  EXPECT_FALSE(TokensEqual("s3cret", "s3crets"));
  EXPECT_FALSE(TokensEqual("s3cret", ""));
  EXPECT_TRUE(TokensEqual("", ""));
}

TEST(BearerValueTest, PrefixesTheScheme) { EXPECT_EQ(BearerValue("abc"), "Bearer abc"); }

}  // namespace
}  // namespace streamgrid::auth
