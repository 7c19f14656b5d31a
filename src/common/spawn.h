#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace streamgrid {

struct SpawnOptions {
  // The child's first descriptors: fds[i] becomes descriptor i (so fds[0] is
  // its stdin). At least stdin, stdout and stderr must be given. Every other
  // descriptor of ours is closed in the child, whatever its close-on-exec flag.
  std::vector<int> fds;
  // Look argv[0] up on PATH when it has no slash; otherwise it is run as given.
  bool search_path = false;
  // The child's environment ("NAME=value" each); nullopt: ours.
  std::optional<std::vector<std::string>> env;
  // Put the child in a process group of its own (its pid), so that one signal
  // reaches whatever it starts.
  bool new_process_group = false;
  // Run the child at this nice value (set before exec, so every thread it
  // starts inherits it); nullopt: ours.
  std::optional<int> nice;
};

// Starts `argv` as a child process and returns its pid once the program runs:
// a failed exec is reported here (NOT_FOUND when it does not exist,
// PERMISSION_DENIED when it may not be run, INTERNAL otherwise), not as an
// exit code. The child's signal dispositions and mask are the defaults, and
// it is killed (SIGKILL) when the thread that called this ends, which
// includes our whole process being killed: no helper outlives the server that
// wanted it. The caller reaps it. Thread-safe.
absl::StatusOr<pid_t> SpawnChild(const std::vector<std::string>& argv, const SpawnOptions& options);

}  // namespace streamgrid
