#include "http/multipart_parser.h"

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace streamgrid::http {
namespace {

struct Part {
  std::string name;
  std::optional<std::string> filename;
  std::string content_type;
  std::string data;
  bool ended = false;

  friend bool operator==(const Part&, const Part&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Part& p) {
    return os << "{name=" << p.name << " filename=" << p.filename.value_or("<none>")
              << " type=" << p.content_type << " data=" << p.data.size() << "B ended=" << p.ended
              << "}";
  }
};

struct Outcome {
  absl::StatusCode code = absl::StatusCode::kOk;  // First non-OK Feed/Finish.
  std::vector<Part> parts;
  bool done = false;

  friend bool operator==(const Outcome&, const Outcome&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Outcome& o) {
    os << "code=" << absl::StatusCodeToString(o.code) << " done=" << o.done << " parts=[";
    for (const Part& p : o.parts) os << p;
    return os << "]";
  }
};

// Records events as parts, checking that they arrive in a valid order.
MultipartParser::Callbacks Recorder(std::vector<Part>& parts) {
  MultipartParser::Callbacks callbacks;
  callbacks.on_part_begin = [&parts](const MultipartPartHeaders& headers) {
    EXPECT_TRUE(parts.empty() || parts.back().ended);
    parts.push_back({headers.name, headers.filename, headers.content_type, "", false});
    return absl::OkStatus();
  };
  callbacks.on_part_data = [&parts](std::string_view data) {
    EXPECT_FALSE(data.empty());
    EXPECT_TRUE(!parts.empty() && !parts.back().ended);
    if (!parts.empty()) parts.back().data.append(data);
    return absl::OkStatus();
  };
  callbacks.on_part_end = [&parts]() {
    EXPECT_TRUE(!parts.empty() && !parts.back().ended);
    if (!parts.empty()) parts.back().ended = true;
    return absl::OkStatus();
  };
  return callbacks;
}

// Feeds `body` cut at the given (ascending) offsets, then calls Finish().
Outcome ParseSplit(std::string_view boundary, std::string_view body,
                   const std::vector<size_t>& cuts, MultipartParser::Limits limits = {}) {
  Outcome outcome;
  MultipartParser parser(std::string(boundary), Recorder(outcome.parts), limits);
  size_t pos = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(body.size());
  for (size_t end : ends) {
    absl::Status status = parser.Feed(body.substr(pos, end - pos));
    pos = end;
    if (!status.ok()) {
      outcome.code = status.code();
      outcome.done = parser.done();
      return outcome;
    }
  }
  outcome.code = parser.Finish().code();
  outcome.done = parser.done();
  return outcome;
}

Outcome Parse(std::string_view boundary, std::string_view body,
              MultipartParser::Limits limits = {}) {
  return ParseSplit(boundary, body, {}, limits);
}

std::string FieldPart(std::string_view boundary, std::string_view name, std::string_view value) {
  std::string part = "--";
  part.append(boundary);
  part.append("\r\nContent-Disposition: form-data; name=\"");
  part.append(name);
  part.append("\"\r\n\r\n");
  part.append(value);
  part.append("\r\n");
  return part;
}

constexpr std::string_view kFormBody =
    "This is the preamble; --b is not a delimiter here.\r\n"
    "--b  \t\r\n"
    "content-disposition: Form-Data; name=\"title\"\r\n"
    "\r\n"
    "My \"video\"\r\n"
    "--b\r\n"
    "Content-Disposition: form-data; name=file; filename=\"a \\\"q\\\" C:\\dir.mp4\"; "
    "filename*=UTF-8''a%20b.mp4\r\n"
    "Content-Type: video/mp4\r\n"
    "X-Ignored: yes\r\n"
    "\r\n"
    "\r\n--x\r\n--\r\n-b\r\n--\r\r\n\r\n"
    "--b\r\n"
    "Content-Disposition: form-data; name=\"empty\"; filename=\"\"\r\n"
    "\r\n"
    "\r\n"
    "--b-- \r\n"
    "epilogue\r\n--b\r\ngarbage";

std::vector<Part> ExpectedFormParts() {
  return {
      {"title", std::nullopt, "text/plain", "My \"video\"", true},
      {"file", "a \"q\" C:\\dir.mp4", "video/mp4", "\r\n--x\r\n--\r\n-b\r\n--\r\r\n", true},
      {"empty", "", "text/plain", "", true},
  };
}

TEST(MultipartParserTest, SinglePart) {
  std::string body = FieldPart("xyz", "title", "Hello") + "--xyz--\r\n";
  Outcome outcome = Parse("xyz", body);
  EXPECT_EQ(outcome.code, absl::StatusCode::kOk);
  EXPECT_TRUE(outcome.done);
  ASSERT_EQ(outcome.parts.size(), 1u);
  EXPECT_EQ(outcome.parts[0], (Part{"title", std::nullopt, "text/plain", "Hello", true}));
}

TEST(MultipartParserTest, SeveralPartsWithPreambleEpilogueAndPadding) {
  Outcome outcome = Parse("b", kFormBody);
  EXPECT_EQ(outcome.code, absl::StatusCode::kOk);
  EXPECT_TRUE(outcome.done);
  EXPECT_EQ(outcome.parts, ExpectedFormParts());
}

TEST(MultipartParserTest, ClosingBoundaryWithoutTrailingCrlfOrParts) {
  Outcome outcome = Parse("b", FieldPart("b", "a", "1") + "--b--");
  EXPECT_EQ(outcome.code, absl::StatusCode::kOk);
  EXPECT_EQ(outcome.parts.size(), 1u);

  Outcome empty = Parse("b", "--b--\r\n");
  EXPECT_EQ(empty.code, absl::StatusCode::kOk);
  EXPECT_TRUE(empty.done);
  EXPECT_TRUE(empty.parts.empty());
}

TEST(MultipartParserTest, IdenticalResultsForEverySplit) {
  const Outcome whole = Parse("b", kFormBody);
  for (size_t i = 0; i <= kFormBody.size(); ++i) {
    ASSERT_EQ(ParseSplit("b", kFormBody, {i}), whole) << "split at " << i;
  }
  std::vector<size_t> every_byte;
  for (size_t i = 1; i < kFormBody.size(); ++i) every_byte.push_back(i);
  EXPECT_EQ(ParseSplit("b", kFormBody, every_byte), whole);
}

TEST(MultipartParserTest, IdenticalResultsForEveryPairOfSplits) {
  const std::string body = FieldPart("bound", "f", "x\r\n--boun\r\n-") + "--bound--";
  const Outcome whole = Parse("bound", body);
  ASSERT_EQ(whole.code, absl::StatusCode::kOk);
  for (size_t i = 0; i <= body.size(); ++i) {
    for (size_t j = i; j <= body.size(); ++j) {
      ASSERT_EQ(ParseSplit("bound", body, {i, j}), whole) << "splits at " << i << ", " << j;
    }
  }
}

TEST(MultipartParserTest, BinaryPayloadWithPartialBoundaryPrefixes) {
  const std::string boundary = "XyZ123";
  const std::string delimiter = "\r\n--" + boundary;
  std::string payload;
  for (int i = 0; i < 256; ++i) payload.push_back(static_cast<char>(i));
  // Every proper prefix of the delimiter, followed by a byte that breaks it.
  for (size_t n = 1; n < delimiter.size(); ++n) {
    payload += delimiter.substr(0, n);
    payload.push_back(n % 2 ? '\0' : '\xff');
    payload += delimiter.substr(0, n);
    payload += "\r\n";
  }
  payload += "x--XyZ123";                                // The boundary itself, but not after CRLF.
  payload += delimiter.substr(0, delimiter.size() - 1);  // Ends right before the real one.
  std::string body = absl::StrCat("--", boundary,
                                  "\r\nContent-Disposition: form-data; name=\"blob\"; "
                                  "filename=\"b.bin\"\r\nContent-Type: application/octet-stream"
                                  "\r\n\r\n",
                                  payload, delimiter, "--\r\n");
  const Outcome whole = Parse(boundary, body);
  ASSERT_EQ(whole.code, absl::StatusCode::kOk);
  ASSERT_EQ(whole.parts.size(), 1u);
  EXPECT_EQ(whole.parts[0].data, payload);
  for (size_t i = 0; i <= body.size(); ++i) {
    ASSERT_EQ(ParseSplit(boundary, body, {i}), whole) << "split at " << i;
  }
  std::vector<size_t> every_byte;
  for (size_t i = 1; i < body.size(); ++i) every_byte.push_back(i);
  EXPECT_EQ(ParseSplit(boundary, body, every_byte), whole);
}

TEST(MultipartParserTest, BoundaryOnlyRecognizedAtLineStartInPreamble) {
  Outcome outcome = Parse("b", "junk--b\r\n" + FieldPart("b", "a", "1") + "--b--");
  EXPECT_EQ(outcome.code, absl::StatusCode::kOk);
  ASSERT_EQ(outcome.parts.size(), 1u);
  EXPECT_EQ(outcome.parts[0].data, "1");
}

TEST(MultipartParserTest, UnquotedAndCaseInsensitiveParameters) {
  Outcome outcome = Parse("b",
                          "--b\r\nCONTENT-DISPOSITION:form-data;NAME=files[];FileName=x.txt\r\n"
                          "content-type:  text/plain; charset=utf-8  \r\n\r\nabc\r\n--b--");
  EXPECT_EQ(outcome.code, absl::StatusCode::kOk);
  ASSERT_EQ(outcome.parts.size(), 1u);
  EXPECT_EQ(outcome.parts[0], (Part{"files[]", "x.txt", "text/plain; charset=utf-8", "abc", true}));
}

struct MalformedCase {
  std::string label;
  std::string body;
  MultipartParser::Limits limits;
};

TEST(MultipartParserTest, MalformedBodiesAreInvalidArgumentForEverySplit) {
  const std::string cd = "Content-Disposition: form-data; name=\"a\"\r\n";
  std::string long_header = "--b\r\n" + cd + "X-Long: " + std::string(200, 'v') + "\r\n\r\nx";
  std::vector<MalformedCase> cases = {
      {"no closing boundary", FieldPart("b", "a", "1"), {}},
      {"truncated delimiter", FieldPart("b", "a", "1") + "--b", {}},
      {"only a preamble", "hello world\r\n--c--\r\n", {}},
      {"empty body", "", {}},
      {"header too long", long_header, {.max_header_bytes = 200}},
      {"headers never end", "--b\r\n" + cd + std::string(300, 'h'), {.max_header_bytes = 256}},
      {"missing Content-Disposition", "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--", {}},
      {"no headers at all", "--b\r\n\r\nx\r\n--b--", {}},
      {"garbage after boundary", "--bXYZ\r\n" + cd + "\r\nx\r\n--b--", {}},
      {"garbage after padding", "--b  x\r\n" + cd + "\r\nx\r\n--b--", {}},
      {"bare CR after boundary", "--b\rContent-Disposition: form-data; name=a\r\n\r\n--b--", {}},
      {"single dash after boundary", FieldPart("b", "a", "1") + "--b-x", {}},
      {"boundary inside data", FieldPart("b", "a", "1\r\n--bb") + "--b--", {}},
      {"too many parts",
       FieldPart("b", "a", "1") + FieldPart("b", "b", "2") + FieldPart("b", "c", "3") + "--b--",
       {.max_parts = 2}},
      {"folded header",
       "--b\r\nContent-Disposition: form-data;\r\n name=\"a\"\r\n\r\nx\r\n--b--",
       {}},
      {"header without colon", "--b\r\n" + cd + "Bogus\r\n\r\nx\r\n--b--", {}},
      {"space before colon", "--b\r\nContent-Disposition : form-data; name=a\r\n\r\n--b--", {}},
      {"bare LF in header", "--b\r\n" + cd + "X-A: 1\nX-B: 2\r\n\r\nx\r\n--b--", {}},
      {"no name", "--b\r\nContent-Disposition: form-data; filename=\"f\"\r\n\r\nx\r\n--b--", {}},
      {"not form-data", "--b\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--b--", {}},
      {"unterminated quote",
       "--b\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--b--",
       {}},
      {"repeated disposition", "--b\r\n" + cd + cd + "\r\nx\r\n--b--", {}},
  };
  for (const MalformedCase& c : cases) {
    Outcome whole = Parse("b", c.body, c.limits);
    EXPECT_EQ(whole.code, absl::StatusCode::kInvalidArgument) << c.label << ": " << whole;
    for (size_t i = 0; i <= c.body.size(); ++i) {
      ASSERT_EQ(ParseSplit("b", c.body, {i}, c.limits), whole) << c.label << " split at " << i;
    }
  }
}

TEST(MultipartParserTest, HeaderLimitCountsWholeHeaderBlock) {
  // Header block: "Content-Disposition: form-data; name=a\r\n" (40) + "\r\n" (2).
  std::string body = "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--b--";
  EXPECT_EQ(Parse("b", body, {.max_header_bytes = 42}).code, absl::StatusCode::kOk);
  EXPECT_EQ(Parse("b", body, {.max_header_bytes = 41}).code, absl::StatusCode::kInvalidArgument);
}

TEST(MultipartParserTest, PartLimitAllowsExactlyMaxParts) {
  std::string body = FieldPart("b", "a", "1") + FieldPart("b", "b", "2") + "--b--";
  EXPECT_EQ(Parse("b", body, {.max_parts = 2}).code, absl::StatusCode::kOk);
  EXPECT_EQ(Parse("b", body, {.max_parts = 1}).code, absl::StatusCode::kInvalidArgument);
}

TEST(MultipartParserTest, FinishMessageAndNoEndForTruncatedPart) {
  std::vector<Part> parts;
  MultipartParser parser("b", Recorder(parts));
  ASSERT_TRUE(parser.Feed(FieldPart("b", "a", "partial data") + "--b").ok());
  EXPECT_FALSE(parser.done());
  absl::Status status = parser.Finish();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "multipart body ended before the closing boundary");
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0].data, "partial data");
  EXPECT_FALSE(parts[0].ended);
  EXPECT_EQ(parser.Feed("\r\n--b--").code(), absl::StatusCode::kInvalidArgument);
}

TEST(MultipartParserTest, InvalidBoundaryFailsEveryCall) {
  MultipartParser empty("", {});
  EXPECT_EQ(empty.Feed("--\r\n").code(), absl::StatusCode::kInvalidArgument);
  MultipartParser too_long(std::string(71, 'a'), {});
  EXPECT_EQ(too_long.Feed("x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(too_long.Finish().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MultipartParserTest, CallbackErrorsAreReturnedAsIsAndStopTheParser) {
  const std::string body = FieldPart("b", "a", "1") + FieldPart("b", "b", "2") + "--b--";
  for (int failing = 0; failing < 3; ++failing) {
    int calls = 0;
    MultipartParser::Callbacks callbacks;
    auto maybe_fail = [&](int which) {
      ++calls;
      return which == failing ? absl::PermissionDeniedError(absl::StrCat("no ", which))
                              : absl::OkStatus();
    };
    callbacks.on_part_begin = [&](const MultipartPartHeaders&) { return maybe_fail(0); };
    callbacks.on_part_data = [&](std::string_view) { return maybe_fail(1); };
    callbacks.on_part_end = [&]() { return maybe_fail(2); };
    MultipartParser parser("b", std::move(callbacks));
    absl::Status status = parser.Feed(body);
    EXPECT_EQ(status, absl::PermissionDeniedError(absl::StrCat("no ", failing)));
    EXPECT_EQ(calls, failing + 1);  // Nothing runs after the failing callback.
    EXPECT_EQ(parser.Feed("more"), status);
    EXPECT_EQ(parser.Finish(), status);
    EXPECT_EQ(calls, failing + 1);
  }
}

TEST(MultipartParserTest, NullCallbacksAreSkipped) {
  MultipartParser parser("b", {});
  EXPECT_TRUE(parser.Feed(kFormBody).ok());
  EXPECT_TRUE(parser.Finish().ok());
  EXPECT_TRUE(parser.done());
}

// 64 MiB streamed through in odd-sized chunks: data arrives as it is fed and
// the parser never holds more than a delimiter's worth of it.
TEST(MultipartParserTest, LargeBodyIsStreamedWithBoundedBuffering) {
  const std::string boundary = "----StreamGridBoundary7MA4YWxkTrZu0gW";
  const size_t delimiter_size = boundary.size() + 4;
  const uint64_t kBodyBytes = uint64_t{64} << 20;

  // A block of pseudo-random bytes sprinkled with delimiter near-misses.
  std::string block(1 << 20, '\0');
  uint64_t x = 0x9e3779b97f4a7c15;
  for (char& c : block) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  const std::string near_miss = "\r\n--" + boundary.substr(0, boundary.size() - 1) + "!";
  for (size_t at = 1000; at + near_miss.size() < block.size(); at += 77777) {
    block.replace(at, near_miss.size(), near_miss);
  }

  uint64_t received = 0;
  uint64_t received_hash = 14695981039346656037u;  // FNV-1a.
  int begins = 0, ends = 0;
  MultipartParser::Callbacks callbacks;
  callbacks.on_part_begin = [&](const MultipartPartHeaders& h) {
    ++begins;
    EXPECT_EQ(h.filename, "big.mp4");
    return absl::OkStatus();
  };
  callbacks.on_part_data = [&](std::string_view data) {
    received += data.size();
    for (unsigned char c : data) received_hash = (received_hash ^ c) * 1099511628211u;
    return absl::OkStatus();
  };
  callbacks.on_part_end = [&]() {
    ++ends;
    return absl::OkStatus();
  };
  MultipartParser parser(boundary, std::move(callbacks));
  ASSERT_TRUE(parser
                  .Feed("--" + boundary +
                        "\r\nContent-Disposition: form-data; name=\"video\"; "
                        "filename=\"big.mp4\"\r\nContent-Type: video/mp4\r\n\r\n")
                  .ok());

  uint64_t sent = 0;
  uint64_t sent_hash = 14695981039346656037u;
  size_t max_buffered = 0;
  const size_t chunk_sizes[] = {65536, 65521, 1, 7, 200000, 40};
  for (size_t n = 0; sent < kBodyBytes; ++n) {
    size_t offset = sent % block.size();
    size_t size =
        std::min<uint64_t>({chunk_sizes[n % 6], block.size() - offset, kBodyBytes - sent});
    std::string_view chunk(block.data() + offset, size);
    for (unsigned char c : chunk) sent_hash = (sent_hash ^ c) * 1099511628211u;
    ASSERT_TRUE(parser.Feed(chunk).ok());
    sent += size;
    max_buffered = std::max(max_buffered, parser.buffered_bytes());
    ASSERT_GE(received + delimiter_size, sent);
  }
  EXPECT_LT(max_buffered, delimiter_size);
  ASSERT_TRUE(parser.Feed("\r\n--" + boundary + "--\r\n").ok());
  ASSERT_TRUE(parser.Finish().ok());
  EXPECT_EQ(begins, 1);
  EXPECT_EQ(ends, 1);
  EXPECT_EQ(received, kBodyBytes);
  EXPECT_EQ(received_hash, sent_hash);
}

TEST(MultipartBoundaryTest, ExtractsBoundary) {
  EXPECT_EQ(*MultipartBoundary("multipart/form-data; boundary=abc123"), "abc123");
  EXPECT_EQ(*MultipartBoundary("Multipart/Form-Data;BOUNDARY=\"a b:c\""), "a b:c");
  EXPECT_EQ(*MultipartBoundary("multipart/form-data; charset=utf-8; boundary=----WebKitFormX"),
            "----WebKitFormX");
  EXPECT_EQ(*MultipartBoundary("  multipart/form-data ;  boundary = x  "), "x");
  EXPECT_EQ(*MultipartBoundary("multipart/form-data; boundary=" + std::string(70, 'z')),
            std::string(70, 'z'));
}

TEST(MultipartBoundaryTest, RejectsBadValues) {
  const std::string bad[] = {
      "",
      "multipart/mixed; boundary=abc",
      "application/x-www-form-urlencoded",
      "multipart/form-data",
      "multipart/form-data; charset=utf-8",
      "multipart/form-data; boundary=",
      "multipart/form-data; boundary=\"\"",
      "multipart/form-data; boundary=" + std::string(71, 'z'),
      "multipart/form-data; boundary=\"ends with space \"",
      "multipart/form-data; boundary=a{b}",
      "multipart/form-data; boundary=a; boundary=b",
      "multipart/form-data; boundary=\"abc",
      "multipart/form-data boundary=abc",
  };
  for (const std::string& value : bad) {
    EXPECT_EQ(MultipartBoundary(value).status().code(), absl::StatusCode::kInvalidArgument)
        << value;
  }
}

}  // namespace
}  // namespace streamgrid::http
