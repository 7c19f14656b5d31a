#include "webserver/long_poll.h"

#include <boost/asio/post.hpp>
#include <charconv>
#include <cstdint>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/strings.h"

namespace streamgrid::webserver {

std::chrono::seconds PreferredWait(std::string_view prefer, std::chrono::seconds max) {
  for (absl::string_view preference : absl::StrSplit(ToAbsl(prefer), ',')) {
    // A preference's own parameters (after ';') do not matter here.
    const absl::string_view item = preference.substr(0, preference.find(';'));
    const size_t equals = item.find('=');
    if (equals == absl::string_view::npos) continue;
    if (!absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(item.substr(0, equals)), "wait")) {
      continue;
    }
    // token or quoted-string, with optional whitespace around '='.
    absl::string_view token = absl::StripAsciiWhitespace(item.substr(equals + 1));
    if (token.size() >= 2 && token.front() == '"' && token.back() == '"') {
      token = token.substr(1, token.size() - 2);
    }
    int64_t seconds = 0;
    auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), seconds);
    if (ec == std::errc::result_out_of_range && !token.empty() && token[0] != '-') return max;
    if (ec != std::errc() || end != token.data() + token.size() || seconds < 0) continue;
    return seconds >= max.count() ? max : std::chrono::seconds(seconds);
  }
  return std::chrono::seconds(0);
}

std::string BodyEtag(std::string_view body) {
  // FNV-1a over the bytes: a tag only has to tell one version of a record
  // from the next, and must come out the same in every process (absl::Hash
  // is seeded per process).
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : body) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return absl::StrFormat("\"%016x\"", hash);
}

std::function<void()> WakeOnChange(std::shared_ptr<ChangeWake> wake) {
  return [wake = std::move(wake)] {
    boost::asio::post(wake->executor, [wake] {
      wake->changed = true;
      if (wake->timer != nullptr) wake->timer->cancel();
    });
  };
}

}  // namespace streamgrid::webserver
