#include "common/ready_file.h"

#include <fstream>
#include <system_error>

#include "nlohmann/json.hpp"

namespace streamgrid {

absl::Status WriteReadyFile(const std::filesystem::path& path,
                            const std::map<std::string, std::string>& fields) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << nlohmann::json(fields).dump() << "\n";
    if (!out.flush()) return absl::InternalError("cannot write " + tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::InternalError("cannot rename to " + path.string() + ": " + ec.message());
  return absl::OkStatus();
}

}  // namespace streamgrid
