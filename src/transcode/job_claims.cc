#include "transcode/job_claims.h"

#include <utility>

namespace streamgrid {

class InProcessJobClaims::Claim : public JobClaim {
 public:
  Claim(InProcessJobClaims& owner, std::string video_id)
      : owner_(owner), video_id_(std::move(video_id)) {}
  ~Claim() override { owner_.Release(video_id_); }
  bool lost() const override { return false; }

 private:
  InProcessJobClaims& owner_;
  const std::string video_id_;
};

absl::StatusOr<std::unique_ptr<JobClaim>> InProcessJobClaims::TryClaim(
    std::string_view video_id, std::function<void()> /*on_lost: never lost*/) {
  std::lock_guard lock(mu_);
  if (!held_.emplace(video_id).second) return nullptr;
  return std::make_unique<Claim>(*this, std::string(video_id));
}

void InProcessJobClaims::Release(const std::string& video_id) {
  std::lock_guard lock(mu_);
  held_.erase(video_id);
}

}  // namespace streamgrid
