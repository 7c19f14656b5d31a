#pragma once

#include "http/server.h"

namespace streamgrid::http {

// Logs one line per answered request through spdlog at info level, e.g.
//   access 127.0.0.1 "GET /api/videos" 200 1234 3.1ms rid=5f3a09c2-1b
// (a response cut short by the client ends in " incomplete"). The target is
// logged as sent, still percent-encoded.
class AccessLog : public RequestObserver {
 public:
  void OnRequest(const RequestRecord& record) override;
};

}  // namespace streamgrid::http
