#pragma once

// Invariant checks for the fuzz targets: a failed check prints what broke and
// aborts, which libFuzzer reports as a crash and saves the input for.

#include <cstdio>
#include <cstdlib>
#include <string>

namespace streamgrid::fuzz {

[[noreturn]] inline void InvariantFailed(const char* condition, const std::string& detail,
                                         const char* file, int line) {
  std::fprintf(stderr, "fuzz invariant failed at %s:%d: %s\n", file, line, condition);
  if (!detail.empty()) std::fprintf(stderr, "  %s\n", detail.c_str());
  std::abort();
}

}  // namespace streamgrid::fuzz

// FUZZ_CHECK(condition) or FUZZ_CHECK(condition, detail): detail is a
// std::string describing the values involved, evaluated only on failure.
#define FUZZ_CHECK(condition, ...)                                                        \
  do {                                                                                    \
    if (!(condition)) {                                                                   \
      ::streamgrid::fuzz::InvariantFailed(#condition, std::string(__VA_ARGS__), __FILE__, \
                                          __LINE__);                                      \
    }                                                                                     \
  } while (false)
