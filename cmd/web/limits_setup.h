#pragma once

#include "common/fd_limits.h"

namespace streamgrid::web {

// Raises the open-file limit to the hard limit (logging both) and returns the
// connection limit to use: `requested` when given and it fits beside the
// reserve `budget` needs, clamped with a warning when it does not, and sized
// from the limit when not given (0). See docs/design.md ("Limits under abuse").
int SizeConnectionLimit(int requested, const DescriptorBudget& budget);

}  // namespace streamgrid::web
