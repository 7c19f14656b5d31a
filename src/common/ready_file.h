#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "absl/status/status.h"

namespace streamgrid {

// Writes `fields` as one JSON object of strings (e.g. {"http": URL}) to `path`
// atomically (a temporary file renamed over it), so a test or script polling
// for the file never reads half of it. The processes' --ready-file.
absl::Status WriteReadyFile(const std::filesystem::path& path,
                            const std::map<std::string, std::string>& fields);

}  // namespace streamgrid
