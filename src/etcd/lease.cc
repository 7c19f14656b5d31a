#include "etcd/lease.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "etcd/convert.h"

namespace streamgrid::etcd {
namespace {

namespace pb = etcdserverpb;

// Runs `call` against the client's members like a read: bounded attempts,
// moving on from a member that is unavailable.
template <typename Call>
auto WithFailover(EtcdClient& client, Call call)
    -> decltype(call(std::declval<pb::Lease::Stub&>())) {
  const EtcdOptions& options = client.options();
  std::chrono::milliseconds backoff = options.initial_backoff;
  const int attempts = std::max(1, options.read_attempts);
  absl::Status last;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    size_t index = 0;
    pb::Lease::Stub stub(client.PreferredChannel(&index));
    auto result = call(stub);
    if (result.ok() || !EtcdClient::IsRetriable(result.status())) return result;
    last = result.status();
    client.Failover(index);
    if ((attempt + 1) % options.endpoints.size() == 0 && attempt + 1 < attempts) {
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, options.max_backoff);
    }
  }
  return last;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Lease>> Lease::Grant(EtcdClient& client, std::chrono::seconds ttl,
                                                    std::function<void()> on_lost) {
  if (ttl < std::chrono::seconds(2)) return absl::InvalidArgumentError("lease TTL below 2 s");
  pb::LeaseGrantRequest request;
  request.set_ttl(ttl.count());
  absl::StatusOr<int64_t> id =
      WithFailover(client, [&](pb::Lease::Stub& stub) -> absl::StatusOr<int64_t> {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + client.options().call_timeout);
        pb::LeaseGrantResponse response;
        if (absl::Status s = FromGrpc(stub.LeaseGrant(&context, request, &response), "lease grant");
            !s.ok()) {
          return s;
        }
        if (!response.error().empty()) {
          return absl::InternalError(absl::StrCat("etcd lease grant: ", response.error()));
        }
        return response.id();
      });
  if (!id.ok()) return id.status();
  return std::unique_ptr<Lease>(new Lease(client, *id, ttl, std::move(on_lost)));
}

Lease::Lease(EtcdClient& client, int64_t id, std::chrono::seconds ttl,
             std::function<void()> on_lost)
    : client_(client), id_(id), ttl_(ttl), on_lost_(std::move(on_lost)) {
  keeper_ = std::thread([this] { KeepAlive(); });
}

Lease::~Lease() { StopKeeping(); }

bool Lease::alive() const {
  std::lock_guard lock(mu_);
  return alive_;
}

void Lease::StopKeeping() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (keeper_.joinable()) keeper_.join();
}

absl::StatusOr<int64_t> Lease::RefreshOnce() {
  size_t index = 0;
  pb::Lease::Stub stub(client_.PreferredChannel(&index));
  grpc::ClientContext context;
  // A refresh must finish within the TTL to be of use; on a loaded machine one
  // call may need more than the refresh period, and the lease only counts as
  // lost after a whole TTL without a successful refresh anyway.
  const auto timeout =
      std::min<std::chrono::milliseconds>(client_.options().call_timeout, ttl_ / 2);
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  auto stream = stub.LeaseKeepAlive(&context);
  pb::LeaseKeepAliveRequest request;
  request.set_id(id_);
  pb::LeaseKeepAliveResponse response;
  const bool exchanged = stream->Write(request) && stream->Read(&response);
  if (exchanged) {
    stream->WritesDone();
    context.TryCancel();  // one exchange is all this call is for
    stream->Finish().ok();
    return response.ttl();
  }
  absl::Status status = FromGrpc(stream->Finish(), "lease keepalive");
  if (status.ok()) status = absl::UnavailableError("etcd lease keepalive: stream ended");
  client_.Failover(index);
  return status;
}

void Lease::KeepAlive() {
  auto last_success = std::chrono::steady_clock::now();
  std::chrono::milliseconds wait = ttl_ / 3;
  while (true) {
    {
      std::unique_lock lock(mu_);
      if (wake_.wait_for(lock, wait, [&] { return stop_; })) return;
    }
    absl::StatusOr<int64_t> ttl = RefreshOnce();
    const auto now = std::chrono::steady_clock::now();
    bool lost = false;
    if (ttl.ok() && *ttl > 0) {
      last_success = now;
      wait = ttl_ / 3;
      continue;
    }
    if (ttl.ok()) {
      spdlog::warn("etcd lease {:x} is gone (expired or revoked)", id_);
      lost = true;
    } else if (now - last_success >= ttl_) {
      spdlog::warn("etcd lease {:x} could not be refreshed for its whole TTL: {}", id_,
                   ttl.status().ToString());
      lost = true;
    } else {
      wait = std::chrono::milliseconds(300);  // soon again, likely on another member
    }
    if (lost) {
      {
        std::lock_guard lock(mu_);
        alive_ = false;
      }
      if (on_lost_) on_lost_();
      return;
    }
  }
}

absl::Status Lease::Revoke() {
  StopKeeping();
  {
    std::lock_guard lock(mu_);
    if (!alive_) return absl::OkStatus();
    alive_ = false;
  }
  pb::LeaseRevokeRequest request;
  request.set_id(id_);
  absl::StatusOr<bool> done =
      WithFailover(client_, [&](pb::Lease::Stub& stub) -> absl::StatusOr<bool> {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + client_.options().call_timeout);
        pb::LeaseRevokeResponse response;
        absl::Status s = FromGrpc(stub.LeaseRevoke(&context, request, &response), "lease revoke");
        // Already gone is what revoking wanted.
        if (absl::IsNotFound(s)) return true;
        if (!s.ok()) return s;
        return true;
      });
  return done.status();
}

absl::StatusOr<int64_t> Lease::TimeToLive(EtcdClient& client, int64_t id) {
  pb::LeaseTimeToLiveRequest request;
  request.set_id(id);
  return WithFailover(client, [&](pb::Lease::Stub& stub) -> absl::StatusOr<int64_t> {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + client.options().call_timeout);
    pb::LeaseTimeToLiveResponse response;
    if (absl::Status s =
            FromGrpc(stub.LeaseTimeToLive(&context, request, &response), "lease time-to-live");
        !s.ok()) {
      return s;
    }
    return response.ttl();
  });
}

}  // namespace streamgrid::etcd
