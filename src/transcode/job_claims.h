#pragma once

// Who may run a video's transcode job right now. Several web servers may queue
// the same video (each finds it "processing"); only the holder of its claim
// runs it, so no job runs twice at the same time.

#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace streamgrid {

// The right to run one video's job. Destroying it releases the claim (best
// effort: a release that cannot reach the claim store leaves the claim to
// expire with its holder). Thread-safe.
class JobClaim {
 public:
  virtual ~JobClaim() = default;

  // True once the claim may belong to someone else (its holder's lease ended);
  // the job must then stop without touching the video's record or content.
  virtual bool lost() const = 0;
};

// A set of claims shared by every process that runs jobs. Thread-safe.
class JobClaims {
 public:
  virtual ~JobClaims() = default;

  // Claims `video_id` for this process. Returns nullptr when the video is
  // already claimed (by another process, or by this one through a claim not
  // yet released). An error means the outcome is unknown (say, the store is
  // unreachable): the caller treats the video as not claimed and tries again
  // later. `on_lost` runs at most once, on any thread, if the claim is lost
  // while held; it must be quick and must not use this JobClaims. It never
  // runs once the claim has been destroyed.
  virtual absl::StatusOr<std::unique_ptr<JobClaim>> TryClaim(std::string_view video_id,
                                                             std::function<void()> on_lost) = 0;
};

// Claims within one process, for a server that is the only one running jobs:
// a video is claimable unless a claim on it is held here. Claims are never
// lost and TryClaim never fails.
class InProcessJobClaims : public JobClaims {
 public:
  InProcessJobClaims() = default;
  InProcessJobClaims(const InProcessJobClaims&) = delete;
  InProcessJobClaims& operator=(const InProcessJobClaims&) = delete;

  // Every claim must be destroyed before this set is.
  absl::StatusOr<std::unique_ptr<JobClaim>> TryClaim(std::string_view video_id,
                                                     std::function<void()> on_lost) override;

 private:
  class Claim;

  void Release(const std::string& video_id);

  std::mutex mu_;
  std::set<std::string, std::less<>> held_;  // guarded by mu_
};

}  // namespace streamgrid
