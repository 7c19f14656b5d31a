// Regression tests for what fuzz/admin_cli_fuzz.cc found in ParseCommandLine;
// the command line's other tests are in admin_cli_test.cc.
#include "admin_cli/command_line.h"

#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace streamgrid::admin_cli {
namespace {

using ::testing::HasSubstr;

// The exit code of a command line that must be refused, and CLI11's message.
void ExpectUsageError(std::vector<std::string> args, std::string_view message) {
  args.insert(args.begin(), "streamgrid-admin");
  std::ostringstream out, err;
  std::variant<CliOptions, int> parsed = ParseCommandLine(args, out, err);
  ASSERT_TRUE(std::holds_alternative<int>(parsed)) << ::testing::PrintToString(args);
  EXPECT_EQ(std::get<int>(parsed), kExitUsage) << ::testing::PrintToString(args);
  EXPECT_THAT(err.str(), HasSubstr(message)) << ::testing::PrintToString(args);
}

// "add s:1 ''" went to the server with an empty address, which it refused
// as INVALID_ARGUMENT (exit 1) rather than the tool saying so (exit 2).
TEST(CommandLineTest, RejectsEmptyOperands) {
  ExpectUsageError({"add", "s:1", ""}, "must not be empty");
  ExpectUsageError({"add", "", "n:2"}, "must not be empty");
  ExpectUsageError({"remove", "s:1", ""}, "must not be empty");
  ExpectUsageError({"list", ""}, "must not be empty");
}

// CLI11's range checks let NaN through (every comparison with it is false):
// "--timeout nan" ran with a 1 ms timeout and "--weight nan" reached the
// server.
TEST(CommandLineTest, RejectsNonFiniteNumbers) {
  ExpectUsageError({"list", "s:1", "--timeout", "nan"}, "finite");
  ExpectUsageError({"list", "s:1", "--timeout", "-nan"}, "finite");
  ExpectUsageError({"add", "s:1", "n:2", "--weight", "nan"}, "finite");
  ExpectUsageError({"add", "s:1", "n:2", "--weight", "inf"}, "--weight");
}

}  // namespace
}  // namespace streamgrid::admin_cli
