#include "storage/quarantine.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/names.h"
#include "spdlog/spdlog.h"
#include "storage/file_util.h"

namespace streamgrid::storage {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kLogName = "log";
// Each log line is short (ids, a checksum, numbers): far below this in all.
constexpr size_t kMaxLogBytes = Quarantine::kMaxEntries * 512 + 64;

std::optional<QuarantinedCopy> ParseEntry(absl::string_view line) {
  std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
  if (f.size() != 7) return std::nullopt;
  QuarantinedCopy copy;
  int damage = 0;
  if (!absl::SimpleAtoi(f[0], &copy.seq) || !absl::SimpleAtoi(f[3], &damage) ||
      !absl::SimpleAtoi(f[5], &copy.found_unix_ms) || damage < 1 || damage > 4 ||
      !IsValidVideoId({f[1].data(), f[1].size()}) ||
      !IsValidContentName({f[2].data(), f[2].size()})) {
    return std::nullopt;
  }
  copy.video_id = std::string(f[1]);
  copy.name = std::string(f[2]);
  copy.damage = static_cast<Damage>(damage);
  copy.expected_sha256 = f[4] == "-" ? "" : std::string(f[4]);
  copy.found_by = std::string(f[6]);
  return copy;
}

}  // namespace

const char* DamageName(Damage damage) {
  switch (damage) {
    case Damage::kCorrupt:
      return "corrupt";
    case Damage::kWrongSize:
      return "wrong size";
    case Damage::kMissing:
      return "missing";
    case Damage::kUnverifiable:
      return "unverifiable";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<Quarantine>> Quarantine::Open(Env& env, fs::path dir) {
  if (absl::Status s = env.CreateDir(dir); !s.ok()) return s;
  std::unique_ptr<Quarantine> quarantine(new Quarantine(env, std::move(dir)));
  if (absl::Status s = quarantine->Load(); !s.ok()) return s;
  return quarantine;
}

absl::Status Quarantine::Load() {
  auto names = env_.ListDir(dir_);
  if (!names.ok()) return names.status();
  std::vector<std::pair<uint64_t, std::string>> files;
  for (const std::string& name : *names) {
    if (name.starts_with(kTempPrefix)) {
      (void)env_.Unlink(dir_ / name);
      continue;
    }
    uint64_t seq = 0;
    const size_t dash = name.find('-');
    if (dash != std::string::npos && absl::SimpleAtoi(name.substr(0, dash), &seq)) {
      files.emplace_back(seq, name);
    }
  }
  std::sort(files.begin(), files.end());
  for (auto& [seq, name] : files) files_.push_back(std::move(name));

  absl::StatusOr<std::string> text = env_.ReadSmallFile(dir_ / kLogName, kMaxLogBytes);
  if (absl::IsNotFound(text.status())) return absl::OkStatus();
  if (!text.ok()) return text.status();
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "last ")) {
      uint64_t last = 0;
      if (absl::SimpleAtoi(line.substr(5), &last)) last_seq_ = std::max(last_seq_, last);
      continue;
    }
    std::optional<QuarantinedCopy> copy = ParseEntry(line);
    if (!copy) {
      spdlog::warn("quarantine log {}: skipping malformed line", (dir_ / kLogName).string());
      continue;
    }
    last_seq_ = std::max(last_seq_, copy->seq);
    entries_.push_back(*std::move(copy));
  }
  std::sort(entries_.begin(), entries_.end(),
            [](const QuarantinedCopy& a, const QuarantinedCopy& b) { return a.seq < b.seq; });
  return absl::OkStatus();
}

std::string Quarantine::FormatLog() const {
  std::string text = absl::StrCat("last ", last_seq_, "\n");
  for (const QuarantinedCopy& c : entries_) {
    absl::StrAppend(&text, c.seq, " ", c.video_id, " ", c.name, " ", static_cast<int>(c.damage),
                    " ", c.expected_sha256.empty() ? "-" : c.expected_sha256, " ", c.found_unix_ms,
                    " ", c.found_by.empty() ? "-" : c.found_by, "\n");
  }
  return text;
}

absl::StatusOr<QuarantinedCopy> Quarantine::Add(QuarantinedCopy copy,
                                                const std::optional<fs::path>& data) {
  std::lock_guard lock(mu_);
  copy.seq = last_seq_ + 1;
  if (copy.found_unix_ms == 0) {
    copy.found_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  }
  if (data) {
    const std::string kept = absl::StrCat(copy.seq, "-", copy.video_id, "-", copy.name);
    if (absl::Status s = env_.Rename(*data, dir_ / kept); !s.ok()) return s;
    files_.push_back(kept);
    // Bounded: the oldest evidence goes first.
    while (files_.size() > kMaxFiles) {
      if (absl::Status s = env_.Unlink(dir_ / files_.front()); !s.ok() && !absl::IsNotFound(s)) {
        spdlog::warn("cannot trim the quarantine: {}", s.ToString());
        break;
      }
      files_.pop_front();
    }
  }
  last_seq_ = copy.seq;
  ++added_;
  entries_.push_back(copy);
  while (entries_.size() > kMaxEntries) entries_.pop_front();
  // The data's directory entry moved: both directories' entries made durable.
  absl::Status synced = env_.SyncDir(dir_);
  if (synced.ok() && data) synced = env_.SyncDir(data->parent_path());
  absl::Status logged = env_.WriteFileAtomically(dir_ / kLogName, FormatLog());
  if (!synced.ok()) return synced;
  if (!logged.ok()) return logged;
  return copy;
}

Quarantine::Page Quarantine::List(uint64_t after_seq, size_t page_size) const {
  if (page_size == 0 || page_size > kMaxPageSize) page_size = kMaxPageSize;
  std::lock_guard lock(mu_);
  Page page;
  if (!entries_.empty()) page.oldest_kept_seq = entries_.front().seq;
  auto it = std::upper_bound(entries_.begin(), entries_.end(), after_seq,
                             [](uint64_t seq, const QuarantinedCopy& c) { return seq < c.seq; });
  for (; it != entries_.end(); ++it) {
    if (page.copies.size() == page_size) {
      page.more = true;
      break;
    }
    page.copies.push_back(*it);
  }
  return page;
}

uint64_t Quarantine::added_since_open() const {
  std::lock_guard lock(mu_);
  return added_;
}

uint64_t Quarantine::last_seq() const {
  std::lock_guard lock(mu_);
  return last_seq_;
}

}  // namespace streamgrid::storage
