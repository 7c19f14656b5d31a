// libFuzzer target: streamgrid-admin's command-line parser.
//
// The input is the argument list, one argument per line (after the program
// name). ParseCommandLine must not throw or crash; an exit code comes with a
// message (help on `out`, a usage error on `err`); parsed options hold
// what the rest of the tool relies on: a server address, the command's
// operand, a finite --weight >= 0 and a --timeout in the range --help
// states (0.001 s to 1e7 s).

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "admin_cli/command_line.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace streamgrid::admin_cli;
  std::string_view input(reinterpret_cast<const char*>(bytes), size);
  if (input.size() > 4096) return 0;
  std::vector<std::string> args = {"streamgrid-admin"};
  if (!input.empty()) {
    for (absl::string_view arg :
         absl::StrSplit(absl::string_view(input.data(), input.size()), '\n')) {
      args.emplace_back(arg);
    }
  }
  std::ostringstream out, err;
  std::variant<CliOptions, int> parsed = ParseCommandLine(args, out, err);
  if (const int* code = std::get_if<int>(&parsed)) {
    FUZZ_CHECK(*code == kExitOk || *code == kExitUsage, absl::StrCat(*code));
    if (*code == kExitOk) FUZZ_CHECK(!out.str().empty(), "exit 0 without help");
    if (*code == kExitUsage) FUZZ_CHECK(!err.str().empty(), "usage error without a message");
    return 0;
  }
  const CliOptions& options = std::get<CliOptions>(parsed);
  FUZZ_CHECK(!options.server.empty(), "no server");
  FUZZ_CHECK(std::isfinite(options.weight) && options.weight >= 0,
             absl::StrCat("weight ", options.weight));
  FUZZ_CHECK(options.timeout >= std::chrono::milliseconds(1) &&
                 options.timeout <= std::chrono::seconds(10'000'000),
             absl::StrCat("timeout ", options.timeout.count(), " ms"));
  switch (options.command) {
    case Command::kAdd:
      FUZZ_CHECK(!options.node_address.empty(), "add without a node");
      break;
    case Command::kRemove:
      FUZZ_CHECK(!options.node.empty(), "remove without a node");
      break;
    default:
      break;
  }
  return 0;
}
