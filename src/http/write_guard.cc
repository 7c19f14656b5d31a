#include "http/write_guard.h"

#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "auth/token.h"
#include "common/strings.h"

namespace streamgrid::http {
namespace {

constexpr std::string_view kReadMethods = "GET, HEAD, OPTIONS";
constexpr std::string_view kReadRequestHeaders =
    "Range, Origin, Accept, Accept-Encoding, Referer, Cache-Control, Content-Type, "
    "If-None-Match, If-Range, Prefer, Authorization, Tus-Resumable";
constexpr std::string_view kExposedHeaders =
    "Content-Length, Content-Range, Content-Type, Date, ETag, Location";
// On a tus answer (every one carries Tus-Resumable), the protocol's fields
// too. Only there: every segment served would otherwise carry some 140 bytes
// naming fields it does not have, which each client then parses.
constexpr std::string_view kExposedTusHeaders =
    "Content-Length, Content-Range, Content-Type, Date, ETag, Location, Upload-Offset, "
    "Upload-Length, Upload-Expires, Upload-Metadata, Tus-Resumable, Tus-Version, Tus-Extension, "
    "Tus-Max-Size, Stream-Media-Id";

std::string_view ExposedHeadersFor(const Fields& response) {
  return response.find("Tus-Resumable") != response.end() ? kExposedTusHeaders : kExposedHeaders;
}

// Only StreamGrid's own scripts, styles and workers run; players need blob:
// for Media Source Extensions; no plugins, no <base>, no framing (clickjacking
// of the delete button), forms post only here.
constexpr std::string_view kPageCsp =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; worker-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

// "host[:port]" (the host possibly a bracketed IPv6 address), lower-case.
struct Authority {
  std::string host;
  std::optional<int> port;
};

bool StartsWithNoCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && EqualsIgnoreCase(text.substr(0, prefix.size()), prefix);
}

bool IsHostChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

std::optional<Authority> ParseAuthority(std::string_view text) {
  Authority out;
  std::string_view port_text;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close == 1) return std::nullopt;
    for (char c : text.substr(1, close - 1)) {
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') {
        return std::nullopt;
      }
    }
    out.host = absl::AsciiStrToLower(ToAbsl(text.substr(0, close + 1)));
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return std::nullopt;
      port_text = rest.substr(1);
      if (port_text.empty()) return std::nullopt;
    }
  } else {
    size_t colon = text.find(':');
    std::string_view host = text.substr(0, colon);
    if (host.empty()) return std::nullopt;
    for (char c : host) {
      if (!IsHostChar(c)) return std::nullopt;
    }
    out.host = absl::AsciiStrToLower(ToAbsl(host));
    if (colon != std::string_view::npos) {
      port_text = text.substr(colon + 1);
      if (port_text.empty()) return std::nullopt;
    }
  }
  if (!port_text.empty()) {
    int port = 0;
    if (port_text.size() > 5) return std::nullopt;
    for (char c : port_text) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    }
    if (!absl::SimpleAtoi(ToAbsl(port_text), &port) || port < 1 || port > 65535)
      return std::nullopt;
    out.port = port;
  }
  return out;
}

// An http(s) origin, its port made explicit.
struct ParsedOrigin {
  std::string scheme;
  Authority authority;
  int port = 0;
};

std::optional<ParsedOrigin> ParseOrigin(std::string_view origin) {
  ParsedOrigin out;
  std::string_view rest;
  if (StartsWithNoCase(origin, "http://")) {
    out.scheme = "http";
    rest = origin.substr(7);
  } else if (StartsWithNoCase(origin, "https://")) {
    out.scheme = "https";
    rest = origin.substr(8);
  } else {
    return std::nullopt;
  }
  std::optional<Authority> authority = ParseAuthority(rest);
  if (!authority) return std::nullopt;
  out.authority = *std::move(authority);
  out.port = out.authority.port.value_or(out.scheme == "https" ? 443 : 80);
  return out;
}

// The single value of `name`, or nullopt when absent or repeated (a repeated
// Origin or Host is not something a browser sends, so it proves nothing).
std::optional<std::string_view> SingleValue(const Fields& headers, std::string_view name) {
  auto range = headers.equal_range(name);
  if (range.first == range.second || std::next(range.first) != range.second) return std::nullopt;
  return std::string_view(range.first->value());
}

// Method and header names are RFC 9110 tokens; only those are echoed back.
bool IsTokenList(std::string_view text, bool allow_commas) {
  if (text.empty() || text.size() > 1024) return false;
  for (char c : text) {
    bool ok = absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
              std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos ||
              (allow_commas && (c == ',' || c == ' '));
    if (!ok) return false;
  }
  return true;
}

std::string Shorten(std::string_view text) {
  return text.size() <= 200 ? std::string(text) : absl::StrCat(ToAbsl(text.substr(0, 200)), "...");
}

void AddVaryOrigin(Fields& response) {
  auto it = response.find(Field::vary);
  if (it == response.end()) {
    response.set(Field::vary, "Origin");
  } else if (absl::AsciiStrToLower(ToAbsl(it->value())).find("origin") == std::string::npos) {
    response.set(Field::vary, absl::StrCat(ToAbsl(it->value()), ", Origin"));
  }
}

}  // namespace

bool IsReadMethod(Verb method) {
  return method == Verb::get || method == Verb::head || method == Verb::options;
}

std::optional<std::string> CanonicalOrigin(std::string_view origin) {
  std::optional<ParsedOrigin> parsed = ParseOrigin(origin);
  if (!parsed) return std::nullopt;
  std::string out = absl::StrCat(parsed->scheme, "://", parsed->authority.host);
  if (parsed->port != (parsed->scheme == "https" ? 443 : 80))
    absl::StrAppend(&out, ":", parsed->port);
  return out;
}

absl::StatusOr<std::vector<std::string>> ParseAllowedOrigins(std::string_view list) {
  std::vector<std::string> out;
  for (absl::string_view raw : absl::StrSplit(ToAbsl(list), ',', absl::SkipWhitespace())) {
    std::string_view entry = StripWhitespace(std::string_view(raw.data(), raw.size()));
    std::optional<std::string> canonical = CanonicalOrigin(entry);
    if (!canonical) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", Shorten(entry),
          "' is not an origin: write scheme://host[:port] with http or https, no path, no "
          "trailing slash, no wildcard"));
    }
    out.push_back(*std::move(canonical));
  }
  return out;
}

WriteGuard::WriteGuard(WriteGuardOptions options) : options_(std::move(options)) {}

OriginKind WriteGuard::ClassifyOrigin(const Fields& headers) const {
  if (headers.find(Field::origin) == headers.end()) return OriginKind::kNone;
  std::optional<std::string_view> origin = SingleValue(headers, "Origin");
  if (!origin) return OriginKind::kForeign;
  // "null" (sandboxed frames, file: pages, some redirects) fails to parse here.
  std::optional<ParsedOrigin> parsed = ParseOrigin(*origin);
  if (!parsed) return OriginKind::kForeign;

  std::optional<std::string_view> host = SingleValue(headers, "Host");
  std::optional<Authority> authority = host ? ParseAuthority(*host) : std::nullopt;
  if (authority && authority->host == parsed->authority.host &&
      authority->port.value_or(parsed->scheme == "https" ? 443 : 80) == parsed->port) {
    // The server speaks plain HTTP but may sit behind a TLS proxy, so either
    // scheme can be its own; a proxy that says which one the browser used
    // (X-Forwarded-Proto) settles it.
    std::optional<std::string_view> proto = SingleValue(headers, "X-Forwarded-Proto");
    std::string_view first = proto ? StripWhitespace(proto->substr(0, proto->find(','))) : "";
    if (first.empty() || EqualsIgnoreCase(first, parsed->scheme)) {
      return OriginKind::kSameOrigin;
    }
  }
  std::optional<std::string> canonical = CanonicalOrigin(*origin);
  for (const std::string& allowed : options_.allowed_origins) {
    if (canonical && *canonical == allowed) return OriginKind::kAllowListed;
  }
  return OriginKind::kForeign;
}

absl::Status WriteGuard::CheckWrite(const Fields& headers) const {
  switch (ClassifyOrigin(headers)) {
    case OriginKind::kForeign: {
      auto origin = headers.find(Field::origin);
      return absl::PermissionDeniedError(absl::StrCat(
          "cross-origin write refused: origin '", Shorten(std::string_view(origin->value())),
          "' is neither this server's own nor allowed by --allowed-origins"));
    }
    case OriginKind::kNone: {
      // Browsers send Origin with every write; should one not, its fetch
      // metadata still tells a page on another site from this one.
      auto site = headers.find("Sec-Fetch-Site");
      if (site != headers.end() && (EqualsIgnoreCase(site->value(), "cross-site") ||
                                    EqualsIgnoreCase(site->value(), "same-site"))) {
        return absl::PermissionDeniedError(
            "cross-origin write refused: the browser says another site sent it "
            "(Sec-Fetch-Site)");
      }
      break;
    }
    case OriginKind::kSameOrigin:
    case OriginKind::kAllowListed:
      break;
  }
  if (!requires_token()) return absl::OkStatus();
  auto authorization = headers.find(Field::authorization);
  if (authorization == headers.end()) {
    return absl::UnauthenticatedError(
        "this server needs an API token for changes: send Authorization: Bearer <token>");
  }
  absl::string_view value = ToAbsl(StripWhitespace(authorization->value()));
  if (!absl::ConsumePrefix(&value, "Bearer ") && !absl::ConsumePrefix(&value, "bearer ")) {
    return absl::UnauthenticatedError("the Authorization header must be Bearer <token>");
  }
  if (!auth::TokensEqual(StripWhitespace(std::string_view(value.data(), value.size())),
                         options_.api_token)) {
    return absl::UnauthenticatedError("the API token is wrong");
  }
  return absl::OkStatus();
}

Response WriteGuard::Preflight(const Fields& headers) const {
  Response r;
  r.status = Status::no_content;
  AddVaryOrigin(r.headers);
  auto requested = headers.find(Field::access_control_request_method);
  std::string_view method = requested == headers.end() ? "" : std::string_view(requested->value());
  if (method.empty() || method == "GET" || method == "HEAD") {
    r.headers.set(Field::access_control_allow_origin, "*");
    r.headers.set(Field::access_control_allow_methods, kReadMethods);
    r.headers.set(Field::access_control_allow_headers, kReadRequestHeaders);
    r.headers.set(Field::access_control_max_age, "86400");
    return r;
  }
  OriginKind kind = ClassifyOrigin(headers);
  if ((kind != OriginKind::kSameOrigin && kind != OriginKind::kAllowListed) ||
      !IsTokenList(method, /*allow_commas=*/false)) {
    auto origin = headers.find(Field::origin);
    Response refused =
        Response::Error(Status::forbidden,
                        absl::StrCat("cross-origin ", Shorten(method), " from ",
                                     origin == headers.end() ? std::string("no origin")
                                                             : "'" + Shorten(origin->value()) + "'",
                                     " is not allowed (see --allowed-origins)"));
    AddVaryOrigin(refused.headers);
    return refused;
  }
  // The origin is trusted: grant the method and headers it asks for.
  std::string allow_headers(kReadRequestHeaders);
  auto wanted = headers.find(Field::access_control_request_headers);
  if (wanted != headers.end() && IsTokenList(wanted->value(), /*allow_commas=*/true)) {
    absl::StrAppend(&allow_headers, ", ", ToAbsl(wanted->value()));
  }
  r.headers.set(Field::access_control_allow_origin, headers.find(Field::origin)->value());
  r.headers.set(Field::access_control_allow_methods,
                absl::StrCat(ToAbsl(method), ", ", ToAbsl(kReadMethods)));
  r.headers.set(Field::access_control_allow_headers, allow_headers);
  r.headers.set(Field::access_control_max_age, "600");
  return r;
}

void WriteGuard::AddCorsHeaders(Verb method, const Fields& headers, Fields& response) const {
  if (IsReadMethod(method)) {
    // Preflight() already chose an OPTIONS answer's headers.
    if (method != Verb::options) AddReadCorsHeaders(response);
    return;
  }
  AddVaryOrigin(response);
  if (ClassifyOrigin(headers) == OriginKind::kAllowListed) {
    response.set(Field::access_control_allow_origin, headers.find(Field::origin)->value());
    response.set(Field::access_control_expose_headers, ExposedHeadersFor(response));
  }
}

void AddReadCorsHeaders(Fields& response) {
  response.set(Field::access_control_allow_origin, "*");
  response.set(Field::access_control_expose_headers, ExposedHeadersFor(response));
}

void AddSecurityHeaders(Fields& response) {
  response.set("X-Content-Type-Options", "nosniff");
  auto type = response.find(Field::content_type);
  if (type != response.end() && StartsWithNoCase(type->value(), "text/html")) {
    if (response.find("Content-Security-Policy") == response.end()) {
      response.set("Content-Security-Policy", kPageCsp);
    }
    // Video ids are in page URLs: other sites need not learn them.
    response.set("Referrer-Policy", "same-origin");
    response.set(Field::x_frame_options, "DENY");
  }
}

}  // namespace streamgrid::http
