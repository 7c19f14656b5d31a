#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace streamgrid {

// An error's message is its full detail, for the log: it may name node
// addresses, file paths and internal ids. A component that knows a summary fit
// for a client attaches it here; the HTTP edge shows that (or a generic text)
// for server-side errors and logs the detail.

// `status` with `summary` attached as its client-safe message (OK stays OK).
absl::Status WithPublicMessage(absl::Status status, absl::string_view summary);

// The client-safe summary attached to `status`, if any.
std::optional<std::string> PublicMessage(const absl::Status& status);

}  // namespace streamgrid
