#include "http/message.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/public_error.h"
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

asio::awaitable<absl::StatusOr<size_t>> BodySource::SendTo(int /*socket*/, uint64_t /*max*/) {
  co_return absl::UnimplementedError("this body can only be read");
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

namespace {

constexpr absl::string_view kBodyTooLargeUrl = "type.streamgrid.dev/body-too-large";
constexpr absl::string_view kClientTimeoutUrl = "type.streamgrid.dev/client-timeout";

// What a client is told about a server-side error it cannot act on beyond
// retrying; the detail is in the log.
absl::string_view GenericMessage(Status status) {
  switch (status) {
    case Status::service_unavailable:
      return "a service this server depends on is unavailable; try again later";
    case Status::gateway_timeout:
      return "a service this server depends on did not answer in time; try again later";
    case Status::insufficient_storage:
      return "the server is out of storage space";
    case Status::not_implemented:
      return "not implemented";
    default:
      return "internal error";
  }
}

// Short ids that tell one logged error from another: a per-process random
// start (so restarts do not repeat ids) plus a counter.
std::string NextErrorId() {
  static std::atomic<uint64_t> next{static_cast<uint64_t>(
      std::chrono::steady_clock::now().time_since_epoch().count() * 2654435761u)};
  return absl::StrFormat("%08x", static_cast<uint32_t>(next.fetch_add(1)));
}

}  // namespace

absl::Status BodyTooLargeError(absl::string_view message) {
  absl::Status status = absl::ResourceExhaustedError(message);
  status.SetPayload(kBodyTooLargeUrl, absl::Cord("1"));
  return status;
}

bool IsBodyTooLarge(const absl::Status& status) {
  return absl::IsResourceExhausted(status) && status.GetPayload(kBodyTooLargeUrl).has_value();
}

absl::Status ClientTimeoutError(absl::string_view message) {
  absl::Status status = absl::DeadlineExceededError(message);
  status.SetPayload(kClientTimeoutUrl, absl::Cord("1"));
  return status;
}

bool IsClientTimeout(const absl::Status& status) {
  return absl::IsDeadlineExceeded(status) && status.GetPayload(kClientTimeoutUrl).has_value();
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
      return IsBodyTooLarge(status) ? Status::payload_too_large : Status::insufficient_storage;
    case absl::StatusCode::kUnimplemented:
      return Status::not_implemented;
    case absl::StatusCode::kUnavailable:
      return Status::service_unavailable;
    case absl::StatusCode::kDeadlineExceeded:
      return IsClientTimeout(status) ? Status::request_timeout : Status::gateway_timeout;
    case absl::StatusCode::kDataLoss:
      return Status::unprocessable_entity;
    default:
      return Status::internal_server_error;
  }
}

Response ErrorFromStatus(const absl::Status& status) {
  const Status http_status = HttpStatusFor(status);
  if (static_cast<unsigned>(http_status) < 500)
    return Response::Error(http_status, status.message());
  const std::string id = NextErrorId();
  spdlog::warn("error {} answered {}: {}", id, static_cast<unsigned>(http_status),
               status.ToString());
  std::optional<std::string> summary = PublicMessage(status);
  return Response::Error(http_status, absl::StrCat(summary ? *summary : GenericMessage(http_status),
                                                   " (error id ", id, ")"));
}

}  // namespace streamgrid::http
