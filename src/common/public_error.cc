#include "common/public_error.h"

#include "absl/strings/cord.h"

namespace streamgrid {
namespace {

constexpr absl::string_view kPublicMessageUrl = "type.streamgrid.dev/public-message";

}  // namespace

absl::Status WithPublicMessage(absl::Status status, absl::string_view summary) {
  // absl ignores payloads on OK statuses; nothing to do there.
  status.SetPayload(kPublicMessageUrl, absl::Cord(summary));
  return status;
}

std::optional<std::string> PublicMessage(const absl::Status& status) {
  auto payload = status.GetPayload(kPublicMessageUrl);
  if (!payload) return std::nullopt;
  return std::string(*payload);
}

}  // namespace streamgrid
