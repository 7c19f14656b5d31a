#include "http/access_log.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace streamgrid::http {

void AccessLog::OnRequest(const RequestRecord& record) {
  const double ms = std::chrono::duration<double, std::milli>(record.elapsed).count();
  const boost::beast::string_view method = boost::beast::http::to_string(record.method);
  // Beast's parser refuses a target with spaces or control characters, so
  // the target as sent cannot break or forge a line.
  spdlog::info("access {} \"{} {}\" {} {} {:.1f}ms rid={}{}", record.peer,
               std::string_view(method.data(), method.size()), record.target, record.status,
               record.body_bytes, ms, record.request_id, record.completed ? "" : " incomplete");
}

}  // namespace streamgrid::http
