#include "etcd/registration.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

namespace streamgrid::etcd {

absl::StatusOr<std::unique_ptr<Registration>> Registration::Create(
    EtcdClient& client, RegistrationOptions options, std::chrono::milliseconds first_timeout) {
  if (options.key.empty()) return absl::InvalidArgumentError("a registration needs a key");
  if (options.ttl < std::chrono::seconds(2)) {
    return absl::InvalidArgumentError("registration lease TTL below 2 s");
  }
  std::unique_ptr<Registration> registration(new Registration(client, std::move(options)));
  const auto deadline = std::chrono::steady_clock::now() + first_timeout;
  std::chrono::milliseconds backoff = registration->options_.initial_backoff;
  while (true) {
    absl::Status written = registration->Write();
    if (written.ok()) break;
    if (std::chrono::steady_clock::now() + backoff >= deadline) {
      registration->Stop();  // revokes a lease granted by a half-done attempt
      return absl::Status(written.code(),
                          absl::StrCat("cannot register ", registration->options_.key,
                                       " in etcd: ", written.message()));
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, registration->options_.max_backoff);
  }
  registration->thread_ = std::thread([raw = registration.get()] { raw->Run(); });
  return registration;
}

Registration::Registration(EtcdClient& client, RegistrationOptions options)
    : client_(client), options_(std::move(options)), value_(options_.value) {}

Registration::~Registration() { Stop(); }

void Registration::Set(std::string value) {
  {
    std::lock_guard lock(mu_);
    if (value == value_) return;
    value_ = std::move(value);
    dirty_ = true;
  }
  wake_.notify_all();
}

bool Registration::registered() const {
  std::lock_guard lock(mu_);
  return registered_;
}

int64_t Registration::lease_id() const {
  std::lock_guard lock(mu_);
  return registered_ && lease_ ? lease_->id() : 0;
}

std::string Registration::written_value() const {
  std::lock_guard lock(mu_);
  return written_;
}

void Registration::OnLeaseLost(uint64_t generation) {
  {
    std::lock_guard lock(mu_);
    if (generation != generation_) return;
    lost_ = true;
    registered_ = false;
  }
  wake_.notify_all();
}

absl::Status Registration::Write() {
  std::unique_ptr<Lease> old;
  bool need_lease;
  uint64_t generation;
  {
    std::lock_guard lock(mu_);
    if (stopping_ || abandoned_) return absl::CancelledError("stopping");
    need_lease = lease_ == nullptr || lost_;
    if (need_lease) {
      old = std::move(lease_);
      generation = ++generation_;
    }
  }
  // Outside mu_: destroying a lease joins its keeper, which may be waiting for
  // mu_ to report the loss.
  old.reset();
  if (need_lease) {
    absl::StatusOr<std::unique_ptr<Lease>> granted =
        Lease::Grant(client_, options_.ttl, [this, generation] { OnLeaseLost(generation); });
    if (!granted.ok()) return granted.status();
    std::unique_ptr<Lease> unused;
    {
      std::lock_guard lock(mu_);
      if (stopping_ || abandoned_ || generation != generation_) {
        unused = *std::move(granted);
      } else {
        lease_ = *std::move(granted);
        lost_ = false;
        dirty_ = true;
      }
    }
    if (unused) {
      unused->Revoke().IgnoreError();  // nothing was registered under it
      return absl::CancelledError("stopping");
    }
  }
  std::string value;
  int64_t lease_id;
  {
    std::lock_guard lock(mu_);
    if (stopping_ || abandoned_ || lost_ || lease_ == nullptr) {
      return absl::UnavailableError("the lease was lost meanwhile");
    }
    value = value_;
    lease_id = lease_->id();
    generation = generation_;
    dirty_ = false;
  }
  absl::StatusOr<int64_t> put = client_.Put(options_.key, value, lease_id);
  std::lock_guard lock(mu_);
  if (!put.ok()) {
    dirty_ = true;  // write it again (an ambiguous failure may have applied it)
    return put.status();
  }
  if (generation == generation_ && !lost_) {
    written_ = std::move(value);
    registered_ = true;
  }
  return absl::OkStatus();
}

void Registration::Run() {
  std::chrono::milliseconds backoff = options_.initial_backoff;
  bool reported_registered = true;  // Create() succeeded
  while (true) {
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || abandoned_ || dirty_ || lost_; });
      if (stopping_ || abandoned_) return;
      if (lost_ && reported_registered) {
        reported_registered = false;
        lock.unlock();
        spdlog::warn("etcd registration {} lost its lease; registering again", options_.key);
        if (options_.on_change) options_.on_change(false);
      }
    }
    absl::Status written = Write();
    if (written.ok()) {
      backoff = options_.initial_backoff;
      if (!reported_registered && registered()) {
        reported_registered = true;
        spdlog::info("etcd registration {} written again under a new lease", options_.key);
        if (options_.on_change) options_.on_change(true);
      }
      continue;
    }
    if (absl::IsCancelled(written)) return;
    std::unique_lock lock(mu_);
    if (wake_.wait_for(lock, backoff, [&] { return stopping_ || abandoned_; })) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

void Registration::Stop() {
  std::unique_ptr<Lease> lease;
  bool revoke;
  {
    std::lock_guard lock(mu_);
    revoke = !abandoned_ && !stopping_;
    stopping_ = true;
    registered_ = false;
    lease = std::move(lease_);
  }
  wake_.notify_all();
  if (thread_.joinable() && std::this_thread::get_id() != thread_.get_id()) thread_.join();
  if (lease && revoke) {
    if (absl::Status s = lease->Revoke(); !s.ok()) {
      spdlog::warn("cannot revoke the lease of {}: {}", options_.key, s.ToString());
    }
  }
}

void Registration::AbandonForTesting() {
  std::unique_ptr<Lease> lease;
  {
    std::lock_guard lock(mu_);
    abandoned_ = true;
    registered_ = false;
    lease = std::move(lease_);
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Destroying the lease stops its refreshes without revoking it.
}

}  // namespace streamgrid::etcd
