#include "etcd/watcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "etcd/convert.h"
#include "grpcpp/channel.h"

namespace streamgrid::etcd {
namespace {

namespace pb = etcdserverpb;

}  // namespace

std::unique_ptr<Watcher> Watcher::Start(EtcdClient& client, WatchOptions options, Handler handler) {
  std::unique_ptr<Watcher> watcher(new Watcher(client, std::move(options), std::move(handler)));
  watcher->watchdog_ = std::thread([w = watcher.get()] { w->RunWatchdog(); });
  watcher->thread_ = std::thread([w = watcher.get()] { w->Run(); });
  return watcher;
}

Watcher::Watcher(EtcdClient& client, WatchOptions options, Handler handler)
    : client_(client), options_(std::move(options)), handler_(std::move(handler)) {
  if (options_.start_revision > 0) SetNextRevision(options_.start_revision);
}

Watcher::~Watcher() { Stop(); }

void Watcher::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
  }
  cv_.notify_all();
  // From the handler the thread cannot join itself; it ends once the handler
  // returns, and the destructor (elsewhere) joins it.
  if (std::this_thread::get_id() == run_thread_id_.load()) return;
  std::lock_guard join_lock(join_mu_);
  if (thread_.joinable()) thread_.join();
  if (watchdog_.joinable()) watchdog_.join();
}

void Watcher::SetNextRevision(int64_t next) {
  next_revision_ = next;
  last_revision_.store(next - 1);
}

pb::WatchRequest Watcher::CreateRequest() const {
  pb::WatchRequest request;
  pb::WatchCreateRequest* create = request.mutable_create_request();
  // etcd's form of "every key" is the range ["\0", "\0"): from the smallest
  // key on.
  create->set_key(options_.prefix.empty() ? std::string(1, '\0') : options_.prefix);
  create->set_range_end(PrefixEnd(options_.prefix));
  create->set_start_revision(next_revision_);
  create->set_progress_notify(true);
  create->set_prev_kv(options_.prev_kv);
  return request;
}

bool Watcher::Pause(std::chrono::milliseconds pause) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, pause, [this] { return stopping_; });
}

void Watcher::Run() {
  run_thread_id_.store(std::this_thread::get_id());
  std::chrono::milliseconds backoff = options_.initial_backoff;
  while (true) {
    size_t index = 0;
    std::shared_ptr<grpc::Channel> channel = client_.PreferredChannel(&index);
    bool established = false;
    const StreamEnd end = RunStream(channel, &established);
    healthy_.store(false);
    if (end == StreamEnd::kStopped) return;
    if (established) backoff = options_.initial_backoff;
    if (end == StreamEnd::kResumeNow) continue;
    client_.Failover(index);
    if (!Pause(backoff)) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

Watcher::StreamEnd Watcher::RunStream(const std::shared_ptr<grpc::Channel>& channel,
                                      bool* established) {
  grpc::ClientContext context;
  // etcd then ends the stream when this member loses its leader, instead of
  // keeping a watch that would silently stop seeing changes.
  context.AddMetadata("hasleader", "true");
  {
    std::lock_guard lock(mu_);
    if (stopping_) return StreamEnd::kStopped;
    context_ = &context;
    create_timed_out_ = false;
    create_deadline_ = std::chrono::steady_clock::now() + options_.create_timeout;
  }
  cv_.notify_all();

  pb::Watch::Stub stub(channel);
  // The token the stream is opened with, should etcd refuse it.
  stream_token_ = client_.AuthToken();
  // Blocks until the call is started (the connection made, or failed); the
  // watchdog or Stop() cancels it.
  std::unique_ptr<Stream> stream = stub.Watch(&context);
  StreamEnd end = StreamEnd::kFailed;
  bool ended_by_etcd = true;
  if (stream->Write(CreateRequest())) end = ReadLoop(*stream, established, &ended_by_etcd);
  if (!ended_by_etcd) {
    // The stream still runs, with our watch canceled on it.
    context.TryCancel();
    pb::WatchResponse ignored;
    while (stream->Read(&ignored)) {
    }
  }
  const grpc::Status status = stream->Finish();

  std::lock_guard lock(mu_);
  context_ = nullptr;
  create_deadline_.reset();
  if (stopping_) return StreamEnd::kStopped;
  if (end == StreamEnd::kFailed && ended_by_etcd) {
    spdlog::info("etcd watch on '{}' ended ({}); resuming from revision {}", options_.prefix,
                 create_timed_out_ ? "not confirmed in time"
                                   : absl::StrCat(static_cast<int>(status.error_code()), ": ",
                                                  status.error_message()),
                 next_revision_);
  }
  return end;
}

Watcher::StreamEnd Watcher::ReadLoop(Stream& stream, bool* established, bool* ended_by_etcd) {
  *ended_by_etcd = false;
  bool created = false;
  int64_t watch_id = 0;
  pb::WatchResponse response;
  while (stream.Read(&response)) {
    if (!created) {
      // Nothing but our create's answer concerns us before it.
      if (!response.created()) continue;
      created = true;
      watch_id = response.watch_id();
      if (response.canceled()) return OnCanceled(response);
      {
        std::lock_guard lock(mu_);
        create_deadline_.reset();
      }
      // "From now" is fixed by the first watch: its changes are those after
      // the revision it was created at.
      if (next_revision_ == 0) SetNextRevision(response.header().revision() + 1);
      *established = true;
      healthy_.store(true);
      continue;
    }
    // Other ids are answers to no watch of ours (etcd 3.4 sends progress
    // request answers as watch -1).
    if (response.watch_id() != watch_id) continue;
    if (response.canceled()) return OnCanceled(response);
    if (response.events_size() == 0) {
      // A progress notice: etcd sends it only to a watcher that has been sent
      // every change up to the revision in its header.
      const int64_t revision = response.header().revision();
      if (revision >= next_revision_) SetNextRevision(revision + 1);
      continue;
    }
    Deliver(response);
  }
  *ended_by_etcd = true;
  return StreamEnd::kFailed;
}

Watcher::StreamEnd Watcher::OnCanceled(const pb::WatchResponse& response) {
  if (response.compact_revision() <= 0) {
    spdlog::info("etcd canceled the watch on '{}': {}", options_.prefix, response.cancel_reason());
    // etcd checks the token when a watch is created and cancels it, rather
    // than failing the call, when it no longer knows the token (expired, or
    // the member restarted): the next attempt authenticates again.
    if (absl::StrContains(response.cancel_reason(), "invalid auth token") ||
        absl::StrContains(response.cancel_reason(), "revision of auth store is old")) {
      client_.InvalidateAuthToken(stream_token_);
    }
    return StreamEnd::kFailed;
  }
  // The oldest revision etcd still has: watching from it again works, and
  // everything before it is only to be had by listing.
  const int64_t resume = std::max(next_revision_, response.compact_revision());
  spdlog::info("etcd watch on '{}' needed revision {}, compacted up to {}: reset", options_.prefix,
               next_revision_, response.compact_revision());
  SetNextRevision(resume);
  handler_(WatchBatch{.revision = resume - 1, .reset = true});
  return StreamEnd::kResumeNow;
}

void Watcher::Deliver(const pb::WatchResponse& response) {
  // Anything at or below what was delivered is a repeat (reconnections,
  // etcd 3.4's duplicates), and so is anything that goes back within the
  // batch. Events of one revision come together, one per key.
  const int64_t delivered = next_revision_ - 1;
  WatchBatch batch;
  std::set<std::string> keys_at_revision;
  for (const mvccpb::Event& event : response.events()) {
    const int64_t revision = event.kv().mod_revision();
    if (revision <= delivered || revision < batch.revision) continue;
    if (revision > batch.revision) {
      batch.revision = revision;
      keys_at_revision.clear();
    }
    if (!keys_at_revision.insert(event.kv().key()).second) continue;
    WatchEvent& out = batch.events.emplace_back();
    out.type = event.type() == mvccpb::Event::DELETE ? WatchEvent::kDelete : WatchEvent::kPut;
    out.kv = FromProto(event.kv());
    if (options_.prev_kv && event.has_prev_kv()) out.prev_kv = FromProto(event.prev_kv());
  }
  if (batch.events.empty()) return;
  handler_(batch);
  SetNextRevision(batch.revision + 1);
}

void Watcher::RunWatchdog() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (!create_deadline_) {
      cv_.wait(lock);
    } else if (std::chrono::steady_clock::now() >= *create_deadline_) {
      if (context_ != nullptr) context_->TryCancel();
      create_timed_out_ = true;
      create_deadline_.reset();
    } else {
      cv_.wait_until(lock, *create_deadline_);
    }
  }
}

}  // namespace streamgrid::etcd
