#include "http/multipart_parser.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/strings.h"

namespace streamgrid::http {
namespace {

constexpr size_t kMaxBoundaryLength = 70;  // RFC 2046 §5.1.1.

bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsOws(char c) { return c == ' ' || c == '\t'; }

std::string ToLower(std::string_view s) {
  std::string lower(s);
  absl::AsciiStrToLower(&lower);
  return lower;
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

bool IsControl(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return (u < 0x20 && c != '\t') || u == 0x7f;
}

// A header value of the form `type *( OWS ";" OWS [ name "=" value ] )`, as
// used by Content-Type and Content-Disposition. The type and parameter names
// are lower-cased; values are unquoted.
struct HeaderValue {
  std::string type;
  std::vector<std::pair<std::string, std::string>> params;

  // The first value of parameter `name` (lower case), if any.
  const std::string* Find(std::string_view name) const {
    for (const auto& [key, value] : params) {
      if (key == name) return &value;
    }
    return nullptr;
  }
};

std::optional<HeaderValue> ParseHeaderValue(std::string_view s) {
  HeaderValue result;
  size_t semi = s.find(';');
  std::string_view type = TrimOws(s.substr(0, semi));
  if (type.empty()) return std::nullopt;
  for (char c : type) {
    if (!IsTokenChar(c) && c != '/') return std::nullopt;
  }
  result.type = ToLower(type);
  s = semi == std::string_view::npos ? std::string_view() : s.substr(semi);

  size_t i = 0;
  auto skip_ows = [&] {
    while (i < s.size() && IsOws(s[i])) ++i;
  };
  while (true) {
    skip_ows();
    if (i == s.size()) break;
    if (s[i] != ';') return std::nullopt;
    ++i;
    skip_ows();
    if (i == s.size() || s[i] == ';') continue;  // Empty parameter.
    size_t name_start = i;
    while (i < s.size() && IsTokenChar(s[i])) ++i;
    if (i == name_start) return std::nullopt;
    std::string name = ToLower(s.substr(name_start, i - name_start));
    skip_ows();
    if (i == s.size() || s[i] != '=') return std::nullopt;
    ++i;
    skip_ows();
    std::string value;
    if (i < s.size() && s[i] == '"') {
      ++i;
      bool closed = false;
      while (i < s.size()) {
        char c = s[i++];
        if (c == '"') {
          closed = true;
          break;
        }
        // Browsers send Windows paths with bare backslashes, so a backslash only
        // escapes a quote or another backslash and is otherwise kept.
        if (c == '\\' && i < s.size() && (s[i] == '"' || s[i] == '\\')) c = s[i++];
        if (IsControl(c)) return std::nullopt;
        value.push_back(c);
      }
      if (!closed) return std::nullopt;
    } else {
      // Lenient: any visible characters, since clients differ on what they
      // quote (e.g. "files[]").
      size_t start = i;
      while (i < s.size() && s[i] != ';' && s[i] != '"' && !IsOws(s[i]) && !IsControl(s[i])) ++i;
      if (i == start) return std::nullopt;
      value.assign(s.substr(start, i - start));
    }
    result.params.emplace_back(std::move(name), std::move(value));
  }
  return result;
}

bool IsBoundaryChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("'()+_,-./:=? ").find(c) != std::string_view::npos;
}

bool IsValidBoundary(std::string_view boundary) {
  if (boundary.empty() || boundary.size() > kMaxBoundaryLength || boundary.back() == ' ') {
    return false;
  }
  return std::all_of(boundary.begin(), boundary.end(), IsBoundaryChar);
}

}  // namespace

MultipartParser::MultipartParser(std::string boundary, Callbacks callbacks)
    : MultipartParser(std::move(boundary), std::move(callbacks), Limits()) {}

MultipartParser::MultipartParser(std::string boundary, Callbacks callbacks, Limits limits)
    : delimiter_(absl::StrCat("\r\n--", boundary)),
      callbacks_(std::move(callbacks)),
      limits_(limits),
      // The first delimiter may open the body without a preceding CRLF; a
      // virtual CRLF lets one search handle both cases.
      buffer_("\r\n") {
  if (boundary.empty() || boundary.size() > kMaxBoundaryLength) {
    status_ = absl::InvalidArgumentError("multipart boundary must be 1 to 70 characters");
  }
}

absl::Status MultipartParser::Fail(absl::Status status) {
  status_ = std::move(status);
  buffer_.clear();
  return status_;
}

absl::Status MultipartParser::Feed(std::string_view chunk) {
  if (!status_.ok()) return status_;
  // A token left over from the previous call is completed a delimiter's length
  // at a time, so the buffer never grows by a whole chunk.
  while (!buffer_.empty() && !chunk.empty()) {
    size_t take = std::min(chunk.size(), delimiter_.size());
    buffer_.append(chunk.data(), take);
    chunk.remove_prefix(take);
    absl::StatusOr<size_t> used = Process(buffer_);
    if (!used.ok()) return Fail(used.status());
    buffer_.erase(0, *used);
  }
  if (chunk.empty()) return absl::OkStatus();
  // Fast path: parse straight from the caller's chunk.
  absl::StatusOr<size_t> used = Process(chunk);
  if (!used.ok()) return Fail(used.status());
  buffer_.assign(chunk.substr(*used));
  return absl::OkStatus();
}

absl::Status MultipartParser::Finish() {
  if (!status_.ok()) return status_;
  if (done()) return absl::OkStatus();
  return Fail(absl::InvalidArgumentError("multipart body ended before the closing boundary"));
}

absl::StatusOr<size_t> MultipartParser::Process(std::string_view data) {
  size_t used = 0;
  while (used < data.size()) {
    absl::StatusOr<size_t> n = Step(data.substr(used));
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    used += *n;
  }
  return used;
}

absl::StatusOr<size_t> MultipartParser::Step(std::string_view data) {
  switch (state_) {
    case State::kPreamble:
    case State::kBody:
      return StepSearch(data);
    case State::kAfterDelimiter:
      if (data[0] == '-') {
        if (data.size() < 2) return 0;
        if (data[1] != '-') {
          return absl::InvalidArgumentError("unexpected bytes after a multipart boundary");
        }
        if (absl::Status s = EndPart(); !s.ok()) return s;
        state_ = State::kEpilogue;
        return 2;
      }
      state_ = State::kPadding;
      return StepPadding(data);
    case State::kPadding:
      return StepPadding(data);
    case State::kHeaders:
      return StepHeaders(data);
    case State::kEpilogue:
      return data.size();
  }
  return absl::InternalError("bad multipart parser state");
}

absl::StatusOr<size_t> MultipartParser::StepSearch(std::string_view data) {
  size_t found = data.find(delimiter_);
  // Without a full delimiter, hold back the longest tail that could still
  // become one; everything before it is certainly data.
  size_t end = found;
  if (found == std::string_view::npos) {
    size_t tail_start = data.size() >= delimiter_.size() ? data.size() - delimiter_.size() + 1 : 0;
    end = data.find('\r', tail_start);
    while (end != std::string_view::npos &&
           !std::string_view(delimiter_).starts_with(data.substr(end))) {
      end = data.find('\r', end + 1);
    }
    if (end == std::string_view::npos) end = data.size();
  }
  if (state_ == State::kBody && end > 0 && callbacks_.on_part_data) {
    if (absl::Status s = callbacks_.on_part_data(data.substr(0, end)); !s.ok()) return s;
  }
  if (found == std::string_view::npos) return end;
  state_ = State::kAfterDelimiter;
  return found + delimiter_.size();
}

absl::StatusOr<size_t> MultipartParser::StepPadding(std::string_view data) {
  size_t i = 0;
  while (i < data.size() && IsOws(data[i])) ++i;
  if (i == data.size()) return i;
  if (data[i] != '\r' || (i + 1 < data.size() && data[i + 1] != '\n')) {
    return absl::InvalidArgumentError("unexpected bytes after a multipart boundary");
  }
  if (i + 1 == data.size()) return i;  // Need the LF.
  if (absl::Status s = EndPart(); !s.ok()) return s;
  if (++parts_ > limits_.max_parts) {
    return absl::InvalidArgumentError(
        absl::StrCat("multipart body has more than ", limits_.max_parts, " parts"));
  }
  state_ = State::kHeaders;
  header_bytes_ = 0;
  disposition_.reset();
  content_type_.reset();
  return i + 2;
}

absl::StatusOr<size_t> MultipartParser::StepHeaders(std::string_view data) {
  size_t eol = data.find("\r\n");
  size_t line_bytes = eol == std::string_view::npos ? data.size() : eol + 2;
  if (header_bytes_ + line_bytes > limits_.max_header_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("multipart part headers exceed ", limits_.max_header_bytes, " bytes"));
  }
  if (eol == std::string_view::npos) return 0;
  header_bytes_ += line_bytes;
  absl::Status s = eol == 0 ? BeginPart() : HeaderLine(data.substr(0, eol));
  if (!s.ok()) return s;
  return line_bytes;
}

absl::Status MultipartParser::HeaderLine(std::string_view line) {
  if (IsOws(line.front())) {
    return absl::InvalidArgumentError("folded multipart header lines are not supported");
  }
  for (char c : line) {
    if (c == '\r' || c == '\n' || c == '\0') {
      return absl::InvalidArgumentError("invalid character in a multipart part header");
    }
  }
  size_t colon = line.find(':');
  std::string_view name = line.substr(0, colon);
  if (colon == std::string_view::npos || name.empty() ||
      !std::all_of(name.begin(), name.end(), IsTokenChar)) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed multipart part header line \"",
                     absl::CEscape(absl::string_view(line.data(), line.size())), "\""));
  }
  std::string_view value = TrimOws(line.substr(colon + 1));
  // Other headers (e.g. Content-Transfer-Encoding, deprecated by RFC 7578) are
  // ignored.
  std::optional<std::string>* slot = nullptr;
  if (EqualsIgnoreCase(name, "Content-Disposition")) {
    slot = &disposition_;
  } else if (EqualsIgnoreCase(name, "Content-Type")) {
    slot = &content_type_;
  }
  if (slot == nullptr) return absl::OkStatus();
  if (slot->has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("repeated ", std::string(name), " header in a multipart part"));
  }
  slot->emplace(value);
  return absl::OkStatus();
}

absl::Status MultipartParser::BeginPart() {
  if (!disposition_) {
    return absl::InvalidArgumentError("multipart part has no Content-Disposition header");
  }
  std::optional<HeaderValue> disposition = ParseHeaderValue(*disposition_);
  if (!disposition) {
    return absl::InvalidArgumentError(absl::StrCat("malformed multipart Content-Disposition \"",
                                                   absl::CEscape(*disposition_), "\""));
  }
  if (disposition->type != "form-data") {
    return absl::InvalidArgumentError(absl::StrCat("multipart part disposition is \"",
                                                   disposition->type, "\", not \"form-data\""));
  }
  const std::string* name = disposition->Find("name");
  if (name == nullptr) {
    return absl::InvalidArgumentError("multipart part's Content-Disposition has no name");
  }
  MultipartPartHeaders headers;
  headers.name = *name;
  // filename* (RFC 5987) is not used by browsers for form-data and is ignored.
  if (const std::string* filename = disposition->Find("filename")) headers.filename = *filename;
  headers.content_type = content_type_.value_or("text/plain");
  state_ = State::kBody;
  in_part_ = true;
  if (callbacks_.on_part_begin) return callbacks_.on_part_begin(headers);
  return absl::OkStatus();
}

absl::Status MultipartParser::EndPart() {
  if (!in_part_) return absl::OkStatus();
  in_part_ = false;
  if (callbacks_.on_part_end) return callbacks_.on_part_end();
  return absl::OkStatus();
}

absl::StatusOr<std::string> MultipartBoundary(std::string_view content_type) {
  std::optional<HeaderValue> value = ParseHeaderValue(content_type);
  if (!value || value->type != "multipart/form-data") {
    return absl::InvalidArgumentError("Content-Type is not multipart/form-data");
  }
  const std::string* boundary = nullptr;
  for (const auto& [name, param] : value->params) {
    if (name != "boundary") continue;
    if (boundary != nullptr) {
      return absl::InvalidArgumentError("multipart Content-Type has several boundaries");
    }
    boundary = &param;
  }
  if (boundary == nullptr) {
    return absl::InvalidArgumentError("multipart Content-Type has no boundary");
  }
  if (!IsValidBoundary(*boundary)) {
    return absl::InvalidArgumentError(
        "multipart boundary must be 1 to 70 letters, digits or '()+_,-./:=? characters");
  }
  return *boundary;
}

}  // namespace streamgrid::http
