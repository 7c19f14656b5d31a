#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "etcd/etcd_client.h"
#include "etcd/watcher.h"
#include "metadata/video_metadata_service.h"

namespace streamgrid {

// VideoMetadataService on etcd, for web servers that share one store.
//
// Keys, under a prefix (default "/streamgrid/"):
//   <prefix>videos/<id>                          the record, as JSON
//   <prefix>videos-by-status/<status>/<id>       empty; one per record, written in
//                                                the same transaction as the record
// Every write is a transaction guarded by a compare on the record key, so the
// status index never disagrees with the records. List pages newest first by a
// descending key read (ids sort by creation time) limited to the page; the
// page token is the last id returned. etcd sorts a range only after reading
// all of it, so each page costs the server a read of every key below the token:
// fine for tens of thousands of videos; beyond that, keys under reversed ids
// (read ascending) would make a page cost only its own size.
//
// Errors: ALREADY_EXISTS / NOT_FOUND / INVALID_ARGUMENT as the interface says;
// UNAVAILABLE ("metadata store (etcd) unavailable: ...") when etcd cannot be
// reached or has no leader, or a call ran past its deadline (the HTTP edge
// answers 503); INTERNAL for a stored value that does not decode.
//
// Ambiguous writes (a transaction that failed after it may have reached etcd)
// are resolved by reading the record again; see each method. Records must be
// valid UTF-8 to round-trip exactly: invalid sequences are stored as U+FFFD.
class EtcdVideoMetadataService : public VideoMetadataService {
 public:
  // Attempts of one Update's read-modify-write before it gives up with
  // ABORTED under sustained contention on the same record.
  static constexpr int kMaxUpdateAttempts = 100;

  // Uses `client` (which must outlive the service) and keeps every key under
  // `key_prefix`. Does not contact etcd.
  explicit EtcdVideoMetadataService(etcd::EtcdClient& client,
                                    std::string key_prefix = "/streamgrid/");
  // Stops the watch behind Subscribe(), if one was started.
  ~EtcdVideoMetadataService() override;

  EtcdVideoMetadataService(const EtcdVideoMetadataService&) = delete;
  EtcdVideoMetadataService& operator=(const EtcdVideoMetadataService&) = delete;

  // Also INVALID_ARGUMENT when `record.id` is not a valid video ID. Creating a
  // record byte-for-byte identical to the stored one succeeds, so a caller may
  // retry a Create that returned UNAVAILABLE with the same record. When a
  // transaction's outcome is unknown, the record is read back: this record →
  // OK; another one → ALREADY_EXISTS; none → the transaction is sent again (a
  // few times, the compare keeping it exactly-once), then UNAVAILABLE "was not
  // applied (safe to retry)". The record is written tied to a lease of
  // kProvisionalTtl and detached from it only after the write is known to
  // have applied; so when Create fails, a copy delayed inside etcd that
  // applies later still vanishes within that TTL (unless a retry of the same
  // Create claims it first).
  absl::Status Create(const VideoRecord& record) override;

  // How long a record whose creation was not confirmed survives.
  static constexpr std::chrono::seconds kProvisionalTtl{15};

  absl::StatusOr<VideoRecord> Get(std::string_view id) override;

  // Reads the page's keys, then its records at the same etcd revision, so a
  // page is one consistent snapshot.
  absl::StatusOr<VideoPage> List(const ListOptions& options) override;

  // Optimistic: read, mutate, write if the record is unchanged since the read;
  // on a conflict, again with the newer record (up to kMaxUpdateAttempts, then
  // ABORTED). An ambiguous write is settled by reading back whether it landed
  // before anything is retried, so `mutate`'s change is applied at most once;
  // when that cannot be told (the record changed twice meanwhile, or etcd went
  // away), UNAVAILABLE says the update may or may not have been applied.
  absl::StatusOr<VideoRecord> Update(std::string_view id,
                                     const std::function<void(VideoRecord&)>& mutate) override;

  // An ambiguous failure is settled by reading the record again: gone → OK,
  // still there → the delete is sent again (it is idempotent).
  absl::Status Delete(std::string_view id) override;

  // Follows every web server's changes through one etcd watch on the record
  // keys, started by the first call (which reads the store's revision first,
  // and fails with UNAVAILABLE when it cannot) and kept until the service is
  // destroyed. The watch outlives member failures (etcd::Watcher); when it
  // had to skip compacted history, every subscriber is called.
  absl::StatusOr<std::unique_ptr<RecordChangeHub::Subscription>> Subscribe(
      std::string_view id, std::function<void()> changed) override;

  // The key that holds record `id`, and its status index key (for tests and
  // tools).
  std::string RecordKey(std::string_view id) const;
  std::string IndexKey(VideoStatus status, std::string_view id) const;

 private:
  // One try at List's page: the ids below the token (newest first) from the
  // record keys or the status's index keys, then their records at the same
  // revision. OUT_OF_RANGE when that revision was compacted meanwhile.
  absl::StatusOr<VideoPage> ListOnce(const ListOptions& options, int page_size);
  // Create's first step: the record and its index key tied to `lease`;
  // returns the record key's mod_revision.
  absl::StatusOr<int64_t> CreateProvisional(const VideoRecord& record, int64_t lease);
  // Create's second step: detaches the record (found at `mod_revision`) from
  // its lease.
  absl::Status Confirm(const VideoRecord& record, int64_t mod_revision);

  // Starts watch_ unless it runs.
  absl::Status EnsureWatching();

  etcd::EtcdClient& client_;
  const std::string prefix_;
  RecordChangeHub changes_;
  std::mutex watch_mu_;
  std::unique_ptr<etcd::Watcher> watch_;  // guarded by watch_mu_; stopped before changes_ goes
};

}  // namespace streamgrid
