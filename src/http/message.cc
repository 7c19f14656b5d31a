#include "http/message.h"

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "http/url.h"

namespace streamgrid::http {

std::string_view Request::Header(Field name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string_view() : std::string_view(it->value());
}

std::optional<std::string> Request::QueryParam(std::string_view name) const {
  return QueryValue(query, name);
}

bool Request::WantsJson() const {
  std::string accept = absl::AsciiStrToLower(std::string(Header(Field::accept)));
  return accept.find("application/json") != std::string::npos;
}

Response Response::Text(Status status, std::string body, std::string_view content_type) {
  Response r;
  r.status = status;
  r.headers.set(Field::content_type, content_type);
  r.body = std::move(body);
  return r;
}

Response Response::Html(Status status, std::string body) {
  return Text(status, std::move(body), "text/html; charset=utf-8");
}

Response Response::Json(Status status, std::string json) {
  return Text(status, std::move(json), "application/json");
}

Response Response::Error(Status status, absl::string_view message) {
  nlohmann::json j = {{"error", std::string(message)}};
  // dump() with error_handler replace: a message quoting client input may hold invalid UTF-8.
  return Json(status, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

Response Response::Redirect(Status status, std::string_view location) {
  Response r = Text(status, "");
  r.headers.set(Field::location, location);
  return r;
}

Status HttpStatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return Status::ok;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return Status::bad_request;
    case absl::StatusCode::kNotFound:
      return Status::not_found;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return Status::conflict;
    case absl::StatusCode::kFailedPrecondition:
      return Status::precondition_failed;
    case absl::StatusCode::kPermissionDenied:
      return Status::forbidden;
    case absl::StatusCode::kUnauthenticated:
      return Status::unauthorized;
    case absl::StatusCode::kResourceExhausted:
      return Status::payload_too_large;
    case absl::StatusCode::kUnimplemented:
      return Status::not_implemented;
    case absl::StatusCode::kUnavailable:
      return Status::service_unavailable;
    case absl::StatusCode::kDeadlineExceeded:
      return Status::gateway_timeout;
    case absl::StatusCode::kDataLoss:
      return Status::unprocessable_entity;
    default:
      return Status::internal_server_error;
  }
}

Response ErrorFromStatus(const absl::Status& status) {
  return Response::Error(HttpStatusFor(status), status.message());
}

}  // namespace streamgrid::http
