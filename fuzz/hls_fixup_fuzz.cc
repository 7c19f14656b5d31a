// libFuzzer target: the HLS media playlist fix-up.
//
// The input is the playlist. A playlist without the #EXTM3U header must be
// refused with INVALID_ARGUMENT; any other must come out with the header
// first, exactly one #EXT-X-PLAYLIST-TYPE:VOD (right after the header, or
// after #EXT-X-VERSION when that follows it), no program date-times, exactly
// one #EXT-X-ENDLIST, every other line of the input in order (trailing CRs stripped), and
// fixing the output again must change nothing.

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "fuzz_check.h"
#include "transcode/hls_fixup.h"

namespace streamgrid::fuzz {
namespace {

constexpr std::string_view kType = "#EXT-X-PLAYLIST-TYPE:VOD";
constexpr std::string_view kEnd = "#EXT-X-ENDLIST";

std::string Escaped(std::string_view s) {
  return absl::CEscape(absl::string_view(s.data(), s.size()));
}

absl::Status Fixup(std::string_view input, std::string* output) {
  std::istringstream in{std::string(input)};
  std::ostringstream out;
  absl::Status status = FixupHlsMediaPlaylist(in, out);
  *output = out.str();
  return status;
}

// The lines of `text` as std::getline reads them, without trailing CRs.
std::vector<std::string> Lines(std::string_view text) {
  std::vector<std::string> lines;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string line(text.substr(0, eol));
    while (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
  }
  return lines;
}

}  // namespace
}  // namespace streamgrid::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace streamgrid::fuzz;
  std::string_view input(reinterpret_cast<const char*>(bytes), size);
  std::string output;
  absl::Status status = Fixup(input, &output);
  const std::vector<std::string> in_lines = Lines(input);
  if (in_lines.empty() || in_lines[0] != "#EXTM3U") {
    FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument, status.ToString());
    return 0;
  }
  FUZZ_CHECK(status.ok(), status.ToString());
  FUZZ_CHECK(output.ends_with('\n'), Escaped(output));
  FUZZ_CHECK(output.find("\r\n") == std::string::npos, Escaped(output));
  const std::vector<std::string> out_lines = Lines(output);
  FUZZ_CHECK(out_lines.size() >= 3 && out_lines[0] == "#EXTM3U", Escaped(output));

  // Where the type goes.
  size_t type_at = out_lines.size() > 2 && out_lines[1].starts_with("#EXT-X-VERSION") ? 2 : 1;
  FUZZ_CHECK(out_lines[type_at] == kType, Escaped(output));

  // What the output must be apart from the lines the fix-up adds: the input
  // without date-times, types and repeated ENDLISTs.
  std::vector<std::string> kept;
  bool end_seen = false;
  for (const std::string& line : in_lines) {
    if (line.starts_with("#EXT-X-PROGRAM-DATE-TIME") || line.starts_with("#EXT-X-PLAYLIST-TYPE")) {
      continue;
    }
    if (line == kEnd) {
      if (end_seen) continue;
      end_seen = true;
    }
    kept.push_back(line);
  }
  std::vector<std::string> rest = out_lines;
  rest.erase(rest.begin() + type_at);
  if (!end_seen) {
    FUZZ_CHECK(rest.back() == kEnd, Escaped(output));
    rest.pop_back();
  }
  FUZZ_CHECK(rest == kept,
             absl::StrCat("input \"", Escaped(input), "\" output \"", Escaped(output), "\""));
  int types = 0, ends = 0;
  for (const std::string& line : out_lines) {
    FUZZ_CHECK(!line.starts_with("#EXT-X-PROGRAM-DATE-TIME"), Escaped(output));
    if (line.starts_with("#EXT-X-PLAYLIST-TYPE")) ++types;
    if (line == kEnd) ++ends;
  }
  FUZZ_CHECK(types == 1 && ends == 1, Escaped(output));

  std::string again;
  FUZZ_CHECK(Fixup(output, &again).ok());
  FUZZ_CHECK(again == output,
             absl::StrCat("first \"", Escaped(output), "\" second \"", Escaped(again), "\""));
  return 0;
}
