#include "transcode/etcd_job_claims.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace streamgrid {

class EtcdJobClaims::Claim : public JobClaim {
 public:
  Claim(EtcdJobClaims& owner, std::string video_id, int64_t create_revision)
      : owner_(owner), video_id_(std::move(video_id)), create_revision_(create_revision) {}
  ~Claim() override { owner_.Release(video_id_, create_revision_); }
  bool lost() const override { return owner_.IsLost(video_id_); }

 private:
  EtcdJobClaims& owner_;
  const std::string video_id_;
  const int64_t create_revision_;  // of the claim key: tells our key from a later one
};

absl::StatusOr<std::unique_ptr<EtcdJobClaims>> EtcdJobClaims::Create(etcd::EtcdClient& client,
                                                                     EtcdJobClaimsOptions options) {
  if (options.server_id.empty()) return absl::InvalidArgumentError("job claims need a server id");
  if (options.lease_ttl < std::chrono::seconds(2)) {
    return absl::InvalidArgumentError("job claim lease TTL below 2 s");
  }
  std::unique_ptr<EtcdJobClaims> claims(new EtcdJobClaims(client, std::move(options)));
  claims->GrantLease();  // on failure the thread below keeps trying
  claims->regrant_thread_ = std::thread([raw = claims.get()] { raw->RegrantLoop(); });
  return claims;
}

EtcdJobClaims::EtcdJobClaims(etcd::EtcdClient& client, EtcdJobClaimsOptions options)
    : client_(client), options_(std::move(options)) {}

EtcdJobClaims::~EtcdJobClaims() { Stop(); }

std::string EtcdJobClaims::ClaimKey(std::string_view video_id) const {
  return absl::StrCat(options_.key_prefix, "claims/", std::string(video_id));
}

int64_t EtcdJobClaims::lease_id() const {
  std::lock_guard lock(mu_);
  return LeaseUsableLocked() ? lease_->id() : 0;
}

bool EtcdJobClaims::LeaseUsableLocked() const {
  return lease_ != nullptr && lease_generation_ > lost_generation_;
}

bool EtcdJobClaims::GrantLease() {
  uint64_t generation;
  {
    std::lock_guard lock(mu_);
    generation = next_generation_++;
  }
  absl::StatusOr<std::unique_ptr<etcd::Lease>> granted = etcd::Lease::Grant(
      client_, options_.lease_ttl, [this, generation] { OnLeaseLost(generation); });
  if (!granted.ok()) {
    spdlog::warn("job claims: cannot get an etcd lease: {}", granted.status().ToString());
    return false;
  }
  std::unique_ptr<etcd::Lease> lease = *std::move(granted);
  {
    std::lock_guard lock(mu_);
    if (!stopping_ && !abandoned_) {
      spdlog::info("job claims: holding etcd lease {:x} (TTL {} s) as '{}'", lease->id(),
                   options_.lease_ttl.count(), options_.server_id);
      lease_ = std::move(lease);
      lease_generation_ = generation;
      return true;
    }
  }
  // Stopped meanwhile: nothing may be claimed under this lease.
  if (absl::Status s = lease->Revoke(); !s.ok()) {
    spdlog::warn("job claims: cannot revoke lease {:x}: {}", lease->id(), s.ToString());
  }
  return false;
}

void EtcdJobClaims::OnLeaseLost(uint64_t generation) {
  std::lock_guard lock(mu_);
  lost_generation_ = std::max(lost_generation_, generation);
  if (generation == lease_generation_) {
    spdlog::warn("job claims: etcd lease lost; cancelling the jobs it covered");
    LoseAllLocked();
  }
  wake_.notify_all();
}

void EtcdJobClaims::LoseAllLocked() {
  for (auto& [id, held] : held_) {
    // generation 0: still being claimed; TryClaim sees the loss itself.
    if (held.generation == 0 || held.lost) continue;
    held.lost = true;
    if (held.on_lost) held.on_lost();
  }
}

void EtcdJobClaims::RegrantLoop() {
  std::chrono::milliseconds backoff = options_.initial_backoff;
  while (true) {
    std::unique_ptr<etcd::Lease> old;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || abandoned_ || !LeaseUsableLocked(); });
      if (stopping_ || abandoned_) return;
      old = std::move(lease_);
    }
    // Outside mu_: its keeper thread, which may be reporting the loss, is joined.
    old.reset();
    if (GrantLease()) {
      backoff = options_.initial_backoff;
      continue;
    }
    std::unique_lock lock(mu_);
    if (wake_.wait_for(lock, backoff, [&] { return stopping_ || abandoned_; })) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

void EtcdJobClaims::Stop() {
  std::unique_ptr<etcd::Lease> lease;
  bool revoke;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    revoke = !abandoned_;
    lease = std::move(lease_);
    LoseAllLocked();
  }
  wake_.notify_all();
  if (regrant_thread_.joinable()) regrant_thread_.join();
  if (lease && revoke) {
    if (absl::Status s = lease->Revoke(); !s.ok()) {
      spdlog::warn("job claims: cannot revoke lease {:x}: {}", lease->id(), s.ToString());
    }
  }
}

void EtcdJobClaims::AbandonForTesting() {
  std::unique_ptr<etcd::Lease> lease;
  {
    std::lock_guard lock(mu_);
    abandoned_ = true;
    lease = std::move(lease_);
    LoseAllLocked();
  }
  wake_.notify_all();
  lease.reset();  // stops refreshing without revoking: the keys expire with it
}

absl::StatusOr<std::unique_ptr<JobClaim>> EtcdJobClaims::TryClaim(std::string_view video_id,
                                                                  std::function<void()> on_lost) {
  int64_t lease_id;
  uint64_t generation;
  {
    std::lock_guard lock(mu_);
    if (stopping_ || abandoned_) return absl::UnavailableError("job claims stopped");
    if (held_.contains(video_id)) return nullptr;
    if (!LeaseUsableLocked()) {
      return absl::UnavailableError("no etcd lease for job claims (a new one is being granted)");
    }
    lease_id = lease_->id();
    generation = lease_generation_;
    held_.emplace(std::string(video_id), Held{});  // reserved: generation 0
  }
  auto unreserve = [&] {
    std::lock_guard lock(mu_);
    held_.erase(held_.find(video_id));
  };

  const std::string key = ClaimKey(video_id);
  etcd::Txn txn;
  txn.IfAbsent(key).ThenPut(key, options_.server_id, lease_id).ElseGet(key);
  absl::StatusOr<etcd::TxnResult> result = client_.Commit(txn);
  std::optional<etcd::KeyValue> existing;
  int64_t create_revision = 0;
  if (result.ok() && result->succeeded) {
    create_revision = result->revision;
  } else {
    if (result.ok()) {
      if (!result->gets.empty()) existing = result->gets[0];
    } else {
      // The transaction may or may not have applied: the key tells.
      absl::StatusOr<std::optional<etcd::KeyValue>> read = client_.Get(key);
      if (!read.ok()) {
        unreserve();
        return result.status();
      }
      existing = *read;
    }
    if (!existing) {
      // Not applied, and the holder released it since: let a later call retry.
      unreserve();
      if (!result.ok()) return result.status();
      return absl::UnavailableError("job claim released while being claimed");
    }
    if (existing->lease != lease_id) {
      unreserve();
      return nullptr;
    }
    // Our lease, and not held here: written by this call, or left by an earlier
    // one whose outcome was unknown.
    create_revision = existing->create_revision;
  }

  std::lock_guard lock(mu_);
  Held& held = held_.find(video_id)->second;
  if (stopping_ || abandoned_ || generation <= lost_generation_) {
    // The key dies with the lost lease (or is revoked by Stop()).
    held_.erase(held_.find(video_id));
    return absl::UnavailableError("etcd lease lost while claiming");
  }
  held.generation = generation;
  held.on_lost = std::move(on_lost);
  return std::make_unique<Claim>(*this, std::string(video_id), create_revision);
}

bool EtcdJobClaims::IsLost(const std::string& video_id) const {
  std::lock_guard lock(mu_);
  auto it = held_.find(video_id);
  return it == held_.end() || it->second.lost || it->second.generation <= lost_generation_;
}

void EtcdJobClaims::Release(const std::string& video_id, int64_t create_revision) {
  bool delete_key;
  {
    std::lock_guard lock(mu_);
    Held& held = held_.find(video_id)->second;
    // The entry stays until the key is gone, so that this process does not
    // take the key it is deleting for a claim of its own.
    held.on_lost = nullptr;
    delete_key = !held.lost && !abandoned_ && held.generation > lost_generation_;
  }
  if (delete_key) {
    const std::string key = ClaimKey(video_id);
    etcd::Txn txn;
    txn.IfCreateRevision(key, etcdserverpb::Compare::EQUAL, create_revision).ThenDelete(key);
    // The compare makes resending harmless; a claim left behind only waits
    // for this process to claim the video again, or for its lease to end.
    constexpr int kAttempts = 3;
    for (int attempt = 1; attempt <= kAttempts; ++attempt) {
      absl::StatusOr<etcd::TxnResult> result = client_.Commit(txn);
      if (result.ok()) break;
      if (!etcd::EtcdClient::IsRetriable(result.status()) || attempt == kAttempts) {
        spdlog::warn("job claims: cannot release {}: {}", key, result.status().ToString());
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200) * attempt);
    }
  }
  std::lock_guard lock(mu_);
  held_.erase(held_.find(video_id));
}

}  // namespace streamgrid
