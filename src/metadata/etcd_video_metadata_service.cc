#include "metadata/etcd_video_metadata_service.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/names.h"
#include "common/public_error.h"
#include "common/strings.h"
#include "etcd/lease.h"
#include "grpcpp/client_context.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace streamgrid {
namespace {

// UNAVAILABLE with the detail for the log, and for clients only that the
// store is unavailable (the detail names etcd members and keys).
absl::Status StoreUnavailable(absl::string_view detail) {
  return WithPublicMessage(absl::UnavailableError(detail),
                           "metadata store (etcd) unavailable; try again later");
}

namespace pb = etcdserverpb;
using etcd::EtcdClient;

constexpr int kMaxPageSize = 1000;
// Gets per read-only transaction; etcd refuses more than 128 operations in one
// (its --max-txn-ops default).
constexpr size_t kMaxGetsPerTxn = 100;
// Tries of one List page whose snapshot revision is compacted away between
// reading its keys and its records.
constexpr int kListAttempts = 3;
// Sends of one Create or Delete whose outcome stayed unknown.
constexpr int kMaxCreateAttempts = 3;
constexpr int kMaxDeleteAttempts = 3;
constexpr VideoStatus kAllStatuses[] = {VideoStatus::kProcessing, VideoStatus::kReady,
                                        VideoStatus::kFailed};

// etcd answers some calls that ran out of time with its server-side context
// error, UNKNOWN "context deadline exceeded", rather than DEADLINE_EXCEEDED.
bool IsServerTimeout(const absl::Status& status) {
  return absl::IsUnknown(status) &&
         (absl::StrContains(status.message(), "context deadline exceeded") ||
          absl::StrContains(status.message(), "context canceled"));
}

// Errors after which etcd may well answer again: no member reachable, no
// leader, a deadline.
bool IsTransient(const absl::Status& status) {
  return EtcdClient::IsRetriable(status) || IsServerTimeout(status);
}

// Whether a failed write may nonetheless have been applied. Only etcd's
// refusals of the request itself, and calls that never left, are certain.
bool MaybeApplied(const absl::Status& status) {
  if (EtcdClient::NeverSent(status)) return false;
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kUnimplemented:
      return false;
    default:
      return true;
  }
}

// etcd's errors with the store named, the transient ones as UNAVAILABLE.
absl::Status StoreError(const absl::Status& status, std::string_view what) {
  if (IsTransient(status)) {
    return StoreUnavailable(
        absl::StrCat("metadata store (etcd) unavailable: ", ToAbsl(what), ": ", status.message()));
  }
  return absl::Status(
      status.code(), absl::StrCat("metadata store (etcd): ", ToAbsl(what), ": ", status.message()));
}

absl::Status OutcomeUnknown(std::string_view what, std::string_view id, const absl::Status& cause) {
  return StoreUnavailable(absl::StrCat("metadata store (etcd) unavailable: ", ToAbsl(what),
                                       " of video ", ToAbsl(id),
                                       " may or may not have been applied: ", cause.message()));
}

std::string Encode(const VideoRecord& record) {
  nlohmann::json renditions = nlohmann::json::array();
  for (const Rendition& r : record.renditions) {
    renditions.push_back(
        {{"name", r.name}, {"width", r.width}, {"height", r.height}, {"bitrate", r.bitrate}});
  }
  // JSON has no NaN or infinity; such a duration is as unknown as 0.
  const double duration = std::isfinite(record.duration_seconds) ? record.duration_seconds : 0;
  nlohmann::json json = {
      {"id", record.id},
      {"title", record.title},
      {"status", std::string(VideoStatusName(record.status))},
      {"progress", record.progress},
      {"duration_seconds", duration},
      {"renditions", std::move(renditions)},
      {"error", record.error},
      {"created_at_ms", record.created_at_ms},
      {"updated_at_ms", record.updated_at_ms},
  };
  // Only when set, so records written before the field existed, and most
  // records, encode as they always did.
  if (record.playable) json["playable"] = true;
  if (record.storyboard) json["storyboard"] = true;
  // Replace rather than throw on invalid UTF-8: a mangled title beats a lost
  // record. Object keys dump sorted, so equal records encode to equal bytes.
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::StatusOr<VideoRecord> Decode(std::string_view id, std::string_view value) {
  nlohmann::json json = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) {
    return absl::InternalError(absl::StrCat("corrupt record of video ", ToAbsl(id)));
  }
  VideoRecord record;
  try {
    record.id = json.at("id").get<std::string>();
    record.title = json.at("title").get<std::string>();
    std::optional<VideoStatus> status = ParseVideoStatus(json.at("status").get<std::string>());
    if (!status) {
      return absl::InternalError(absl::StrCat("video ", ToAbsl(id), " has an unknown status"));
    }
    record.status = *status;
    record.progress = json.at("progress").get<int>();
    record.duration_seconds = json.at("duration_seconds").get<double>();
    for (const nlohmann::json& item : json.at("renditions")) {
      Rendition& r = record.renditions.emplace_back();
      r.name = item.at("name").get<std::string>();
      r.width = item.at("width").get<int>();
      r.height = item.at("height").get<int>();
      r.bitrate = item.at("bitrate").get<int64_t>();
    }
    record.error = json.at("error").get<std::string>();
    record.created_at_ms = json.at("created_at_ms").get<int64_t>();
    record.updated_at_ms = json.at("updated_at_ms").get<int64_t>();
    record.playable = json.value("playable", false);
    record.storyboard = json.value("storyboard", false);
  } catch (const nlohmann::json::exception& e) {
    return absl::InternalError(
        absl::StrCat("corrupt record of video ", ToAbsl(id), ": ", e.what()));
  }
  if (record.id != id) {
    return absl::InternalError(
        absl::StrCat("record under video ", ToAbsl(id), " names video ", record.id));
  }
  return record;
}

// Runs one read RPC the way EtcdClient runs its reads (a deadline per call,
// retried on the next member after UNAVAILABLE or a deadline, with back-off
// after each round over the members), for the read shapes EtcdClient does not
// offer. `call(stub, context, response)` makes the call.
template <typename Response, typename Call>
absl::StatusOr<Response> ReadRpc(EtcdClient& client, std::string_view what, Call call) {
  const etcd::EtcdOptions& options = client.options();
  const size_t members = options.endpoints.size();
  const int attempts = std::max(1, options.read_attempts);
  std::chrono::milliseconds backoff = options.initial_backoff;
  absl::Status last;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    size_t index = 0;
    pb::KV::Stub stub(client.PreferredChannel(&index));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + options.call_timeout);
    Response response;
    grpc::Status status = call(stub, context, response);
    if (status.ok()) return response;
    last = absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        absl::StrCat("etcd ", ToAbsl(what), ": ", status.error_message()));
    if (!IsTransient(last)) return last;
    client.Failover(index);
    if ((attempt + 1) % members == 0 && attempt + 1 < attempts) {
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, options.max_backoff);
    }
  }
  return last;
}

struct KeysPage {
  std::vector<std::string> keys;
  int64_t revision = 0;
};

// Up to `limit` keys of [begin, end), greatest first. etcd sorts a sorted range
// after reading all of it, so the server reads the whole range (values too)
// while only `limit` keys travel back.
absl::StatusOr<KeysPage> DescendingKeys(EtcdClient& client, const std::string& begin,
                                        const std::string& end, int64_t limit) {
  pb::RangeRequest request;
  request.set_key(begin);
  request.set_range_end(end);
  request.set_limit(limit);
  request.set_sort_order(pb::RangeRequest::DESCEND);
  request.set_sort_target(pb::RangeRequest::KEY);
  request.set_keys_only(true);
  absl::StatusOr<pb::RangeResponse> response = ReadRpc<pb::RangeResponse>(
      client, "range",
      [&](pb::KV::Stub& stub, grpc::ClientContext& context, pb::RangeResponse& out) {
        return stub.Range(&context, request, &out);
      });
  if (!response.ok()) return response.status();
  KeysPage page{.revision = response->header().revision()};
  for (const mvccpb::KeyValue& kv : response->kvs()) page.keys.push_back(kv.key());
  return page;
}

// The values of `keys` at `revision` (nullopt where absent), in read-only
// transactions of at most kMaxGetsPerTxn gets. A batch whose answer exceeds
// the channel's message limit is split until it fits.
absl::StatusOr<std::vector<std::optional<std::string>>> ValuesAt(
    EtcdClient& client, const std::vector<std::string>& keys, int64_t revision) {
  std::vector<std::optional<std::string>> values;
  values.reserve(keys.size());
  size_t batch = kMaxGetsPerTxn;
  for (size_t pos = 0; pos < keys.size();) {
    const size_t n = std::min(batch, keys.size() - pos);
    pb::TxnRequest request;
    for (size_t i = pos; i < pos + n; ++i) {
      pb::RangeRequest* get = request.add_success()->mutable_request_range();
      get->set_key(keys[i]);
      get->set_revision(revision);
    }
    absl::StatusOr<pb::TxnResponse> response = ReadRpc<pb::TxnResponse>(
        client, "txn", [&](pb::KV::Stub& stub, grpc::ClientContext& context, pb::TxnResponse& out) {
          return stub.Txn(&context, request, &out);
        });
    if (!response.ok()) {
      if (absl::IsResourceExhausted(response.status()) && n > 1) {
        batch = n / 2;
        continue;
      }
      return response.status();
    }
    if (static_cast<size_t>(response->responses_size()) != n) {
      return absl::InternalError("etcd answered a transaction of gets with a different count");
    }
    for (const pb::ResponseOp& op : response->responses()) {
      if (op.response_range().kvs_size() > 0) {
        values.push_back(op.response_range().kvs(0).value());
      } else {
        values.push_back(std::nullopt);
      }
    }
    pos += n;
  }
  return values;
}

// A short random pause after losing an update race, growing with `attempt`, so
// that writers contending for one record spread out.
void ConflictBackoff(int attempt) {
  thread_local std::mt19937 rng(std::random_device{}());
  const int max_ms = std::min(1 << std::min(attempt, 5), 20);
  std::this_thread::sleep_for(
      std::chrono::milliseconds(std::uniform_int_distribution<int>(0, max_ms)(rng)));
}

}  // namespace

EtcdVideoMetadataService::EtcdVideoMetadataService(etcd::EtcdClient& client, std::string key_prefix)
    : client_(client), prefix_(std::move(key_prefix)) {}

EtcdVideoMetadataService::~EtcdVideoMetadataService() {
  std::lock_guard lock(watch_mu_);
  if (watch_) watch_->Stop();
}

std::string EtcdVideoMetadataService::RecordKey(std::string_view id) const {
  return absl::StrCat(prefix_, "videos/", ToAbsl(id));
}

std::string EtcdVideoMetadataService::IndexKey(VideoStatus status, std::string_view id) const {
  return absl::StrCat(prefix_, "videos-by-status/", ToAbsl(VideoStatusName(status)), "/",
                      ToAbsl(id));
}

absl::Status EtcdVideoMetadataService::Create(const VideoRecord& record) {
  if (!IsValidVideoId(record.id)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid video id \"", record.id, "\""));
  }
  // The record first exists provisionally, tied to a lease of its own, and is
  // made permanent (detached from the lease) once its creation is
  // acknowledged. A creation whose answer was lost, which the caller reports
  // as failed and whose content it removes, may still apply later (a proposal
  // delayed inside etcd while it has no quorum): tied to a lease nobody keeps
  // alive, such a record then vanishes by itself instead of lingering as a
  // video without content.
  absl::StatusOr<std::unique_ptr<etcd::Lease>> lease = etcd::Lease::Grant(client_, kProvisionalTtl);
  if (!lease.ok()) return StoreError(lease.status(), "create");
  absl::StatusOr<int64_t> created = CreateProvisional(record, (*lease)->id());
  absl::Status confirmed =
      created.ok() ? Confirm(record, *created) : absl::Status(created.status());
  if (confirmed.ok() || absl::IsAlreadyExists(confirmed)) return confirmed;
  // Failed: end the lease now if etcd lets us (the provisional keys go with
  // it); otherwise it expires once nobody refreshes it.
  (*lease)->Revoke().IgnoreError();
  return confirmed;
}

absl::StatusOr<int64_t> EtcdVideoMetadataService::CreateProvisional(const VideoRecord& record,
                                                                    int64_t lease) {
  const std::string key = RecordKey(record.id);
  const std::string value = Encode(record);
  etcd::Txn txn;
  txn.IfAbsent(key)
      .ThenPut(key, value, lease)
      .ThenPut(IndexKey(record.status, record.id), "", lease);
  txn.ElseGet(key);
  const auto already_exists = [&] {
    return absl::AlreadyExistsError(absl::StrCat("video ", record.id, " already exists"));
  };

  // Sending the transaction again is safe: whichever copy applies first makes
  // the others' compare fail, and the stored bytes then show it was ours.
  absl::Status last_ambiguity;
  for (int attempt = 0; attempt < kMaxCreateAttempts; ++attempt) {
    absl::StatusOr<etcd::TxnResult> result = client_.Commit(txn);
    if (result.ok()) {
      if (result->succeeded) return result->revision;
      const std::optional<etcd::KeyValue>& stored = result->gets.at(0);
      // The same bytes: an earlier attempt (this call's or the caller's) whose
      // answer was lost.
      if (stored && stored->value == value) return stored->mod_revision;
      return already_exists();
    }
    if (!MaybeApplied(result.status())) {
      if (last_ambiguity.ok()) return StoreError(result.status(), "create");
      break;  // certainly not sent, and the earlier attempts were seen not applied
    }
    // The transaction may or may not have been applied: look.
    last_ambiguity = result.status();
    absl::StatusOr<std::optional<etcd::KeyValue>> stored = client_.Get(key);
    if (!stored.ok()) return OutcomeUnknown("create", record.id, last_ambiguity);
    if (stored->has_value()) {
      if ((*stored)->value == value) return (*stored)->mod_revision;
      return already_exists();
    }
  }
  return StoreUnavailable(
      absl::StrCat("metadata store (etcd) unavailable: create of video ", record.id,
                   " was not applied (safe to retry): ", last_ambiguity.message()));
}

absl::Status EtcdVideoMetadataService::Confirm(const VideoRecord& record, int64_t mod_revision) {
  const std::string key = RecordKey(record.id);
  const std::string value = Encode(record);
  // The record's value may have moved on (an Update, which also detaches it
  // from the lease); what matters is that it no longer hangs on the lease.
  for (int attempt = 0; attempt < kMaxCreateAttempts; ++attempt) {
    etcd::Txn txn;
    txn.IfUnchangedSince(key, mod_revision)
        .ThenPut(key, value)
        .ThenPut(IndexKey(record.status, record.id), "");
    txn.ElseGet(key);
    absl::StatusOr<etcd::TxnResult> result = client_.Commit(txn);
    std::optional<etcd::KeyValue> stored;
    if (result.ok()) {
      if (result->succeeded) return absl::OkStatus();
      stored = result->gets.at(0);
    } else {
      if (!MaybeApplied(result.status())) return StoreError(result.status(), "create");
      absl::StatusOr<std::optional<etcd::KeyValue>> read = client_.Get(key);
      if (!read.ok()) return OutcomeUnknown("create", record.id, result.status());
      stored = *std::move(read);
    }
    if (!stored) {
      return StoreUnavailable(absl::StrCat(
          "metadata store (etcd) unavailable: create of video ", record.id,
          " was not completed in time (the provisional record expired); safe to retry"));
    }
    if (stored->lease == 0) return absl::OkStatus();
    mod_revision = stored->mod_revision;
  }
  return StoreUnavailable(absl::StrCat("metadata store (etcd) unavailable: create of video ",
                                       record.id, " could not be completed"));
}

absl::StatusOr<VideoRecord> EtcdVideoMetadataService::Get(std::string_view id) {
  // An invalid id can name no record, and must not be spliced into a key.
  if (!IsValidVideoId(id)) return absl::NotFoundError(absl::StrCat("no video ", ToAbsl(id)));
  absl::StatusOr<std::optional<etcd::KeyValue>> kv = client_.Get(RecordKey(id));
  if (!kv.ok()) return StoreError(kv.status(), "get");
  if (!kv->has_value()) return absl::NotFoundError(absl::StrCat("no video ", ToAbsl(id)));
  return Decode(id, (*kv)->value);
}

absl::StatusOr<VideoPage> EtcdVideoMetadataService::List(const ListOptions& options) {
  // The token is the last id already returned; a valid-id check is exactly
  // what rejects anything we could not have issued.
  if (!options.page_token.empty() && !IsValidVideoId(options.page_token)) {
    return absl::InvalidArgumentError("malformed page token");
  }
  const int page_size = std::clamp(options.page_size, 1, kMaxPageSize);
  absl::StatusOr<VideoPage> page;
  for (int attempt = 0; attempt < kListAttempts; ++attempt) {
    page = ListOnce(options, page_size);
    if (!absl::IsOutOfRange(page.status())) break;
  }
  if (!page.ok()) return StoreError(page.status(), "list");
  return page;
}

absl::StatusOr<VideoPage> EtcdVideoMetadataService::ListOnce(const ListOptions& options,
                                                             int page_size) {
  const std::string scan_prefix = options.status
                                      ? absl::StrCat(prefix_, "videos-by-status/",
                                                     ToAbsl(VideoStatusName(*options.status)), "/")
                                      : absl::StrCat(prefix_, "videos/");
  // Ids below the token: the token itself is the range's exclusive end.
  const std::string end = options.page_token.empty()
                              ? etcd::PrefixEnd(scan_prefix)
                              : absl::StrCat(scan_prefix, options.page_token);
  // One extra key tells whether another page follows.
  absl::StatusOr<KeysPage> keys = DescendingKeys(client_, scan_prefix, end, page_size + 1);
  if (!keys.ok()) return keys.status();

  VideoPage page;
  std::vector<std::string> ids;
  for (const std::string& key : keys->keys) {
    std::string id = key.substr(scan_prefix.size());
    if (!IsValidVideoId(id)) {
      return absl::InternalError(absl::StrCat("foreign key in the video records: ", key));
    }
    ids.push_back(std::move(id));
  }
  if (static_cast<int>(ids.size()) > page_size) {
    ids.resize(page_size);
    page.next_page_token = ids.back();
  }

  std::vector<std::string> record_keys;
  for (const std::string& id : ids) record_keys.push_back(RecordKey(id));
  absl::StatusOr<std::vector<std::optional<std::string>>> values =
      ValuesAt(client_, record_keys, keys->revision);
  if (!values.ok()) return values.status();
  for (size_t i = 0; i < ids.size(); ++i) {
    // Records and their index keys change in one transaction, and both reads
    // are at one revision, so a mismatch means someone edited etcd by hand:
    // skip the stray index key rather than fail every listing.
    if (!(*values)[i]) {
      spdlog::warn("status index names missing video {}", ids[i]);
      continue;
    }
    absl::StatusOr<VideoRecord> record = Decode(ids[i], *(*values)[i]);
    if (!record.ok()) return record.status();
    if (options.status && record->status != *options.status) {
      spdlog::warn("status index lists video {} as {}, its record says {}", ids[i],
                   VideoStatusName(*options.status), VideoStatusName(record->status));
      continue;
    }
    page.videos.push_back(*std::move(record));
  }
  return page;
}

absl::StatusOr<VideoRecord> EtcdVideoMetadataService::Update(
    std::string_view id, const std::function<void(VideoRecord&)>& mutate) {
  if (!IsValidVideoId(id)) return absl::NotFoundError(absl::StrCat("no video ", ToAbsl(id)));
  const std::string key = RecordKey(id);
  absl::StatusOr<std::optional<etcd::KeyValue>> read = client_.Get(key);
  if (!read.ok()) return StoreError(read.status(), "update");
  std::optional<etcd::KeyValue> current = *std::move(read);

  // Writes whose outcome is unknown. All compared against the same state of
  // the record (`base`), so at most one of them can ever apply.
  struct Pending {
    std::string value;
    VideoRecord record;
  };
  std::vector<Pending> pending;
  etcd::KeyValue base;
  absl::Status last_ambiguity;

  for (int attempt = 0; attempt < kMaxUpdateAttempts; ++attempt) {
    if (!pending.empty()) {
      // Deleted meanwhile: whether or not ours applied first, there is no
      // record now.
      if (!current) return absl::NotFoundError(absl::StrCat("no video ", ToAbsl(id)));
      for (const Pending& p : pending) {
        if (current->value == p.value) return p.record;
      }
      const bool same_life = current->create_revision == base.create_revision;
      if (same_life && current->mod_revision == base.mod_revision) {
        // None applied yet. The next write compares against the same base, so
        // it and they exclude each other.
      } else if (same_life && current->version == base.version + 1) {
        // Exactly one write since the base, and not one of ours: they can
        // never apply now.
        pending.clear();
      } else {
        return OutcomeUnknown("update", id, last_ambiguity);
      }
    }
    if (!current) return absl::NotFoundError(absl::StrCat("no video ", ToAbsl(id)));

    absl::StatusOr<VideoRecord> before = Decode(id, current->value);
    if (!before.ok()) return before.status();
    VideoRecord next = *before;
    mutate(next);
    next.id = before->id;
    next.title = before->title;
    next.created_at_ms = before->created_at_ms;
    next.updated_at_ms = NowMillis();
    std::string value = Encode(next);

    etcd::Txn txn;
    txn.IfUnchangedSince(key, current->mod_revision).ThenPut(key, value);
    if (next.status != before->status) {
      txn.ThenDelete(IndexKey(before->status, id)).ThenPut(IndexKey(next.status, id), "");
    }
    txn.ElseGet(key);
    absl::StatusOr<etcd::TxnResult> result = client_.Commit(txn);
    if (result.ok()) {
      if (result->succeeded) return next;
      // Lost a race: go again from the record the transaction saw.
      current = result->gets.at(0);
      ConflictBackoff(attempt);
      continue;
    }
    if (!MaybeApplied(result.status())) {
      // This write was certainly not applied; earlier ones may have been.
      if (!pending.empty()) return OutcomeUnknown("update", id, last_ambiguity);
      return StoreError(result.status(), "update");
    }
    if (pending.empty()) base = *current;
    pending.push_back({std::move(value), std::move(next)});
    last_ambiguity = result.status();
    absl::StatusOr<std::optional<etcd::KeyValue>> reread = client_.Get(key);
    if (!reread.ok()) return OutcomeUnknown("update", id, last_ambiguity);
    current = *std::move(reread);
  }
  if (!pending.empty()) return OutcomeUnknown("update", id, last_ambiguity);
  return absl::AbortedError(absl::StrCat("update of video ", ToAbsl(id), " lost ",
                                         kMaxUpdateAttempts, " races in a row"));
}

absl::Status EtcdVideoMetadataService::Delete(std::string_view id) {
  if (!IsValidVideoId(id)) return absl::NotFoundError(absl::StrCat("no video ", ToAbsl(id)));
  const std::string key = RecordKey(id);
  etcd::Txn txn;
  txn.IfVersion(key, pb::Compare::GREATER, 0).ThenDelete(key);
  // Every status's index key: deleting an absent key is a no-op, and this way
  // the record need not be read first.
  for (VideoStatus status : kAllStatuses) txn.ThenDelete(IndexKey(status, id));

  absl::Status last_ambiguity;
  for (int attempt = 0; attempt < kMaxDeleteAttempts; ++attempt) {
    absl::StatusOr<etcd::TxnResult> result = client_.Commit(txn);
    if (result.ok()) {
      if (result->succeeded) return absl::OkStatus();
      // Absent; after an unknown outcome, possibly because that one applied.
      if (!last_ambiguity.ok()) return absl::OkStatus();
      return absl::NotFoundError(absl::StrCat("no video ", ToAbsl(id)));
    }
    const bool ambiguous = MaybeApplied(result.status());
    if (!ambiguous && last_ambiguity.ok()) return StoreError(result.status(), "delete");
    if (ambiguous) last_ambiguity = result.status();
    absl::StatusOr<std::optional<etcd::KeyValue>> stored = client_.Get(key);
    if (!stored.ok()) return OutcomeUnknown("delete", id, last_ambiguity);
    if (!stored->has_value()) return absl::OkStatus();
    // Still there: not applied (yet). Sending it again is harmless, as a
    // delete of an absent record changes nothing.
  }
  return OutcomeUnknown("delete", id, last_ambiguity);
}

absl::StatusOr<std::unique_ptr<RecordChangeHub::Subscription>> EtcdVideoMetadataService::Subscribe(
    std::string_view id, std::function<void()> changed) {
  // Subscribed before the watch's first revision is read, so any change
  // after this returns is both later than that revision and seen here.
  std::unique_ptr<RecordChangeHub::Subscription> subscription =
      changes_.Subscribe(std::string(id), std::move(changed));
  if (absl::Status s = EnsureWatching(); !s.ok()) return s;
  return subscription;
}

absl::Status EtcdVideoMetadataService::EnsureWatching() {
  std::lock_guard lock(watch_mu_);
  if (watch_) return absl::OkStatus();
  const std::string records = absl::StrCat(prefix_, "videos/");
  // A watch from "now" starts whenever its stream is established: changes
  // made before that, after a subscriber's read, would be missed. So it
  // starts after a revision read here instead.
  absl::StatusOr<etcd::RangePage> page =
      client_.Range(records, etcd::PrefixEnd(records), /*limit=*/1);
  if (!page.ok()) return StoreError(page.status(), "starting to follow changes");
  watch_ = etcd::Watcher::Start(
      client_, etcd::WatchOptions{.prefix = records, .start_revision = page->revision + 1},
      [this, skip = records.size()](const etcd::WatchBatch& batch) {
        if (batch.reset) changes_.NotifyAll();
        for (const etcd::WatchEvent& event : batch.events) {
          changes_.Notify(std::string_view(event.kv.key).substr(skip));
        }
      });
  return absl::OkStatus();
}

}  // namespace streamgrid
