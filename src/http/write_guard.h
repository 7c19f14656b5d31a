#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "http/message.h"

namespace streamgrid::http {

// Who may write (any request whose method is not GET, HEAD or OPTIONS).
struct WriteGuardOptions {
  // Exact origins ("https://videos.example.com") besides the server's own whose
  // pages may write; as ParseAllowedOrigins returns them.
  std::vector<std::string> allowed_origins;
  // When not empty, writes need "Authorization: Bearer <api_token>".
  std::string api_token;
};

// Where a request says it comes from, judged by its Origin header.
enum class OriginKind {
  kNone,         // no Origin header: not a browser's cross-origin request (curl, scripts)
  kSameOrigin,   // the origin the request was sent to (its Host)
  kAllowListed,  // one of WriteGuardOptions::allowed_origins
  kForeign,      // anything else, "null" and malformed or repeated values included
};

// True for the methods that only read (GET, HEAD, OPTIONS). Every other
// method, including ones no route has yet, is a write.
bool IsReadMethod(Verb method);

// Parses a comma-separated list of origins ("scheme://host[:port]", no path,
// no "*"); returns them lower-cased, default ports dropped. INVALID_ARGUMENT
// names the first bad entry.
absl::StatusOr<std::vector<std::string>> ParseAllowedOrigins(std::string_view list);

// Canonical form of an http(s) origin: lower-case, default port dropped;
// nullopt unless `origin` is "http://" or "https://" then a host and an
// optional port, nothing else.
std::optional<std::string> CanonicalOrigin(std::string_view origin);

// Decides whether a write may run, and which CORS headers answers get.
// Thread-safe (immutable after construction).
class WriteGuard {
 public:
  explicit WriteGuard(WriteGuardOptions options);

  // Classifies the request's Origin against its Host (and X-Forwarded-Proto,
  // when a proxy in front says which scheme the browser used).
  OriginKind ClassifyOrigin(const Fields& headers) const;

  // OK when a write with these headers may run; PERMISSION_DENIED when it
  // comes from a foreign origin (or, without Origin, when Sec-Fetch-Site says
  // another site sent it); UNAUTHENTICATED when a token is required and the
  // request lacks it or has the wrong one.
  absl::Status CheckWrite(const Fields& headers) const;

  // The answer to an OPTIONS request: a read preflight (or a plain OPTIONS) is
  // granted to everyone; a write preflight only to the server's own and
  // allow-listed origins (their origin echoed, with Vary: Origin), else 403
  // without CORS headers.
  Response Preflight(const Fields& headers) const;

  // Adds the CORS headers for an answer to `method` with request `headers`:
  // reads get "Access-Control-Allow-Origin: *"; writes get the origin echoed
  // when it is allow-listed and nothing otherwise, always with Vary: Origin.
  void AddCorsHeaders(Verb method, const Fields& headers, Fields& response) const;

  bool requires_token() const { return !options_.api_token.empty(); }

 private:
  WriteGuardOptions options_;
};

// The CORS headers of a read answer ("*"), also used for answers to requests
// too malformed to classify.
void AddReadCorsHeaders(Fields& response);

// Headers every response carries (X-Content-Type-Options: nosniff) and, for
// HTML (judged by the response's Content-Type), the Content-Security-Policy
// allowing only the server's own scripts, Referrer-Policy and framing denial.
void AddSecurityHeaders(Fields& response);

}  // namespace streamgrid::http
