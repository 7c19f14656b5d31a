#include "migration/migration_coordinator.h"

#include <thread>

#include "absl/strings/str_cat.h"

namespace streamgrid {

absl::Status LocalMigrationCoordinator::AwaitWritesDrained(uint64_t revision,
                                                           std::chrono::milliseconds timeout,
                                                           const std::function<bool()>& stopping) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    // The only states this server can have had in force are its own view's,
    // so "older than `revision`" is "older than the view" once it reached it.
    if (cluster_.state()->revision >= revision &&
        cluster_.WaitForEarlierWrites(std::chrono::milliseconds(200))) {
      return absl::OkStatus();
    }
    if (stopping && stopping()) return absl::CancelledError("stopping");
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("writes begun before cluster state ", revision, " are still running"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace streamgrid
