#include "transcode/transcode_worker_pool.h"

#include <algorithm>
#include <atomic>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "spdlog/spdlog.h"
#include "transcode/transcode_job.h"

namespace streamgrid {
namespace {

namespace fs = std::filesystem;

constexpr char kJobDirPrefix[] = "job-";
// Pages (of kListPageSize records) one listing of processing records reads at
// most, so that a pass ends even on a listing that never does.
constexpr int kListPageSize = 1000;
constexpr int kRescanMaxPages = 100;
constexpr auto kClaimWarningInterval = std::chrono::seconds(30);

void DiscardLocalSource(const std::optional<fs::path>& path) {
  if (!path) return;
  std::error_code ec;
  if (fs::is_regular_file(*path, ec)) fs::remove(*path, ec);
}

TranscodeWorkerPoolOptions WithDefaults(TranscodeWorkerPoolOptions options) {
  // An empty path would put job directories in the current directory.
  if (options.work_dir.empty()) {
    options.work_dir = fs::temp_directory_path() / "streamgrid-transcode";
  }
  return options;
}

}  // namespace

class TranscodeWorkerPool::EarlyHandle : public EarlyJob {
 public:
  explicit EarlyHandle(std::shared_ptr<EarlyState> state) : state_(std::move(state)) {}
  ~EarlyHandle() override { Abort(*state_); }
  bool Commit() override {
    std::lock_guard lock(state_->mu);
    if (state_->phase == EarlyState::Phase::kPending) state_->phase = EarlyState::Phase::kCommitted;
    state_->cv.notify_all();
    const bool committed = state_->phase == EarlyState::Phase::kCommitted;
    if (committed && state_->priority) {
      // The upload is durable: the encode is now what the uploader waits for.
      if (absl::Status restored = state_->priority->Restore(); !restored.ok()) {
        spdlog::warn("transcode: head start stays at low priority: {}", restored.ToString());
      }
    }
    return committed;
  }

 private:
  std::shared_ptr<EarlyState> state_;
};

void TranscodeWorkerPool::Abort(EarlyState& early) {
  std::lock_guard lock(early.mu);
  if (early.phase == EarlyState::Phase::kPending) early.phase = EarlyState::Phase::kAborted;
  early.cv.notify_all();
}

bool TranscodeWorkerPool::AwaitCommit(EarlyState& early, CancelToken& token) {
  // Woken by Stop() and Cancel() too; the lock orders the wake-up after the
  // predicate's check, so it is not lost.
  CancelToken::Registration wake = token.OnCancel([&early] {
    std::lock_guard lock(early.mu);
    early.cv.notify_all();
  });
  std::unique_lock lock(early.mu);
  early.cv.wait(lock,
                [&] { return early.phase != EarlyState::Phase::kPending || token.cancelled(); });
  if (early.phase == EarlyState::Phase::kPending) early.phase = EarlyState::Phase::kAborted;
  return early.phase == EarlyState::Phase::kCommitted;
}

TranscodeWorkerPool::TranscodeWorkerPool(VideoMetadataService& metadata,
                                         VideoContentService& content,
                                         TranscodeWorkerPoolOptions options)
    : metadata_(metadata),
      content_(content),
      options_(WithDefaults(std::move(options))),
      own_claims_(options_.claims ? nullptr : std::make_unique<InProcessJobClaims>()),
      claims_(options_.claims ? *options_.claims : *own_claims_) {}

TranscodeWorkerPool::~TranscodeWorkerPool() {
  Stop();
  // Jobs queued but never started still own their local sources.
  for (const Job& job : queue_) DiscardLocalSource(job.local_source);
}

void TranscodeWorkerPool::Start() {
  std::lock_guard lock(mu_);
  if (started_) return;
  started_ = true;
  std::error_code ec;
  fs::create_directories(options_.work_dir, ec);
  if (ec)
    spdlog::error("transcode: cannot create {}: {}", options_.work_dir.string(), ec.message());
  // Only our own "job-..." directories: the work dir may be shared, e.g. with
  // the web layer's upload temp files.
  for (const fs::directory_entry& entry : fs::directory_iterator(options_.work_dir, ec)) {
    if (entry.path().filename().string().starts_with(kJobDirPrefix)) {
      std::error_code ignored;
      fs::remove_all(entry.path(), ignored);
    }
  }
  int workers = std::max(1, options_.workers);
  for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { WorkerLoop(); });
  if (options_.rescan_interval > std::chrono::milliseconds(0)) {
    threads_.emplace_back([this] { RescanLoop(); });
  }
}

void TranscodeWorkerPool::Stop() {
  std::vector<std::thread> threads;
  std::deque<Job> dropped;
  {
    std::lock_guard lock(mu_);
    if (!started_) return;
    stopping_ = true;
    for (auto& [id, running] : running_) running.token->Cancel();
    // Their records stay processing: RecoverPending() finds them again.
    dropped.swap(queue_);
    for (const Job& job : dropped) active_ids_.erase(job.video_id);
    threads.swap(threads_);
  }
  cv_.notify_all();
  rescan_cv_.notify_all();
  for (const Job& job : dropped) {
    DiscardLocalSource(job.local_source);
    // Its upload is then queued as usual once accepted (Commit() says so).
    if (job.early) Abort(*job.early);
  }
  for (std::thread& thread : threads) thread.join();
  std::lock_guard lock(mu_);
  started_ = false;
  stopping_ = false;
}

void TranscodeWorkerPool::Enqueue(std::string video_id,
                                  std::optional<std::filesystem::path> local_source,
                                  std::optional<MediaInfo> media_info) {
  EnqueueNew(std::move(video_id), std::move(local_source), std::move(media_info));
}

bool TranscodeWorkerPool::EnqueueNew(std::string video_id,
                                     std::optional<std::filesystem::path> local_source,
                                     std::optional<MediaInfo> media_info) {
  if (!IsValidVideoId(video_id)) {
    spdlog::warn("transcode: ignoring invalid video id '{}'", video_id);
    DiscardLocalSource(local_source);
    return false;
  }
  {
    std::lock_guard lock(mu_);
    if (!active_ids_.contains(video_id)) {
      active_ids_.insert(video_id);
      queue_.push_back(Job{std::move(video_id), std::move(local_source), std::move(media_info)});
      cv_.notify_one();
      return true;
    }
    // Already queued: a local copy spares the queued job a download.
    auto queued = std::find_if(queue_.begin(), queue_.end(),
                               [&](const Job& job) { return job.video_id == video_id; });
    if (queued != queue_.end() && !queued->local_source && local_source) {
      queued->local_source = std::move(local_source);
      if (media_info) queued->media_info = std::move(media_info);
      return false;
    }
    // A description of the same original spares the queued job a probe.
    if (queued != queue_.end() && !queued->media_info && media_info) {
      queued->media_info = std::move(media_info);
    }
  }
  DiscardLocalSource(local_source);
  return false;
}

std::unique_ptr<EarlyJob> TranscodeWorkerPool::StartEarly(const std::string& video_id,
                                                          const fs::path& local_source,
                                                          const MediaInfo& media_info) {
  if (!IsValidVideoId(video_id)) return nullptr;
  auto idle = [&] {
    return started_ && !stopping_ && queue_.empty() &&
           running_.size() < static_cast<size_t>(std::max(1, options_.workers)) &&
           !active_ids_.contains(video_id);
  };
  {
    std::lock_guard lock(mu_);
    if (!idle()) return nullptr;
  }
  // A second name for the upload's file: the caller still needs its own (to
  // store the original from it should streaming it have failed), and the job
  // consumes this one like any local source. A "job-" name, so that Start()
  // removes it should the server die first.
  const fs::path linked = options_.work_dir / absl::StrCat(kJobDirPrefix, video_id, ".early");
  std::error_code ec;
  fs::create_hard_link(local_source, linked, ec);
  if (ec) {
    spdlog::debug("transcode {}: no head start: cannot link {}: {}", video_id,
                  local_source.string(), ec.message());
    return nullptr;
  }
  auto state = std::make_shared<EarlyState>();
  if (options_.head_start_nice > 0 && ChildPriority::CanRestore()) {
    state->priority = std::make_shared<ChildPriority>(options_.head_start_nice);
  }
  {
    std::lock_guard lock(mu_);
    if (idle()) {
      active_ids_.insert(video_id);
      queue_.push_back(Job{video_id, linked, media_info, state});
      cv_.notify_one();
      return std::make_unique<EarlyHandle>(std::move(state));
    }
  }
  fs::remove(linked, ec);
  return nullptr;
}

absl::Status TranscodeWorkerPool::Cancel(const std::string& video_id,
                                         std::chrono::milliseconds timeout) {
  std::optional<std::filesystem::path> dropped_source;
  absl::Status stopped = absl::OkStatus();
  {
    std::unique_lock lock(mu_);
    auto queued = std::find_if(queue_.begin(), queue_.end(),
                               [&](const Job& job) { return job.video_id == video_id; });
    if (queued != queue_.end()) {
      dropped_source = std::move(queued->local_source);
      // Its Commit() must then say so, or the accepted video would run nowhere.
      if (queued->early) Abort(*queued->early);
      queue_.erase(queued);
      active_ids_.erase(video_id);
    }
    if (auto running = running_.find(video_id);
        running != running_.end() && running->second.storing) {
      CancelToken* token = running->second.token;
      token->Cancel();
      // The job stops storing once its current store returns (the token also
      // abandons a store blocked on a node) and it has removed what it stored:
      // until then a file could land after the caller deletes the video's.
      // Compared by token: a later job of the same id is not this one.
      const bool ended = storing_cv_.wait_for(lock, timeout, [&] {
        auto now = running_.find(video_id);
        return now == running_.end() || now->second.token != token || !now->second.storing;
      });
      if (!ended) {
        stopped = absl::DeadlineExceededError(absl::StrCat(
            "transcode job of ", video_id, " still storing after ", timeout.count(), " ms"));
      }
    }
  }
  DiscardLocalSource(dropped_source);
  return stopped;
}

absl::Status TranscodeWorkerPool::RecoverPending() {
  absl::StatusOr<size_t> found = EnqueueProcessing(/*max_pages=*/-1);
  if (!found.ok()) return found.status();
  if (*found > 0) spdlog::info("transcode: resuming {} unfinished video(s)", *found);
  return absl::OkStatus();
}

absl::StatusOr<size_t> TranscodeWorkerPool::EnqueueProcessing(int max_pages) {
  ListOptions options;
  options.page_size = kListPageSize;
  options.status = VideoStatus::kProcessing;
  size_t found = 0;
  for (int pages = 1;; ++pages) {
    absl::StatusOr<VideoPage> page = metadata_.List(options);
    if (!page.ok()) return page.status();
    for (const VideoRecord& record : page->videos) {
      if (EnqueueNew(record.id, std::nullopt)) ++found;
    }
    if (page->next_page_token.empty() || pages == max_pages) break;
    // A listing that does not advance would keep start-up here forever.
    if (page->next_page_token == options.page_token) {
      return absl::InternalError("the video listing repeats the same page");
    }
    options.page_token = page->next_page_token;
  }
  return found;
}

void TranscodeWorkerPool::RescanLoop() {
  while (true) {
    {
      std::unique_lock lock(mu_);
      if (rescan_cv_.wait_for(lock, options_.rescan_interval, [this] { return stopping_; })) {
        return;
      }
    }
    absl::StatusOr<size_t> found = EnqueueProcessing(kRescanMaxPages);
    if (!found.ok()) {
      spdlog::warn("transcode: rescan of processing videos failed: {}", found.status().ToString());
    } else if (*found > 0) {
      spdlog::debug("transcode: rescan queued {} processing video(s)", *found);
    }
  }
}

size_t TranscodeWorkerPool::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

size_t TranscodeWorkerPool::running() const {
  std::lock_guard lock(mu_);
  return running_.size();
}

TranscodeWorkerPool::JobCounts TranscodeWorkerPool::counts() const {
  std::lock_guard lock(mu_);
  return counts_;
}

void TranscodeWorkerPool::Count(JobOutcome outcome, bool claim_lost) {
  std::lock_guard lock(mu_);
  switch (outcome) {
    case JobOutcome::kReady:
      ++counts_.ready;
      break;
    case JobOutcome::kFailed:
      ++counts_.failed;
      break;
    case JobOutcome::kSkipped:
      ++counts_.skipped;
      break;
    case JobOutcome::kInterrupted:
      ++counts_.interrupted;
      if (claim_lost) ++counts_.claim_lost;
      break;
    case JobOutcome::kRecordGone:
      ++counts_.record_gone;
      break;
  }
}

void TranscodeWorkerPool::WorkerLoop() {
  while (true) {
    Job job;
    CancelToken token;
    uint64_t number;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      // Registered under the same lock as the pop, so Stop() cannot miss it.
      running_[job.video_id] = RunningJob{.token = &token};
      number = next_job_number_++;
    }

    // Claimed only now, so that jobs wait in the queue of whichever server is
    // free first (a head start: once its upload is accepted, see below). A
    // lost claim cancels the job: another server may run it.
    std::atomic<bool> claim_lost = false;
    std::unique_ptr<JobClaim> claim;
    auto try_claim = [&]() -> bool {
      absl::StatusOr<std::unique_ptr<JobClaim>> claimed =
          claims_.TryClaim(job.video_id, [&token, &claim_lost] {
            claim_lost = true;
            token.Cancel();
          });
      if (claimed.ok() && *claimed != nullptr) {
        claim = *std::move(claimed);
        return true;
      }
      std::lock_guard lock(mu_);
      if (claimed.ok()) {
        spdlog::debug("transcode {}: claimed by another server", job.video_id);
        ++counts_.claimed_elsewhere;
      } else {
        // Every rescan meets the same error while the claim store is away:
        // say so now and then, not for every video every time.
        const auto now = std::chrono::steady_clock::now();
        if (counts_.claim_errors == 0 || now - last_claim_warning_ >= kClaimWarningInterval) {
          spdlog::warn("transcode {}: cannot claim it ({}); left for a later scan", job.video_id,
                       claimed.status().ToString());
          last_claim_warning_ = now;
        }
        ++counts_.claim_errors;
      }
      return false;
    };
    if (!job.early && !try_claim()) {
      // Its original is in the content store for whoever runs it.
      DiscardLocalSource(job.local_source);
      std::lock_guard lock(mu_);
      running_.erase(job.video_id);
      storing_cv_.notify_all();
      active_ids_.erase(job.video_id);
      continue;
    }

    TranscodeJobParams params;
    params.video_id = job.video_id;
    params.local_source = job.local_source;
    params.job_dir = options_.work_dir / absl::StrCat(kJobDirPrefix, job.video_id, "-", number);
    params.progress_interval = options_.progress_interval;
    params.publish_nice = options_.publish_nice;
    params.on_started = [&] { spdlog::info("transcode {}: started", job.video_id); };
    params.media_info = job.media_info;
    params.claim_lost = [&] { return claim_lost || (claim && claim->lost()); };
    // A head start claims the video only once its upload is accepted; until
    // then no other server can know of it (its record does not exist).
    bool declined = false;
    bool gate_called = false;
    if (job.early) {
      params.early_gate = [&] {
        gate_called = true;
        declined = !AwaitCommit(*job.early, token) || !try_claim();
        return !declined;
      };
    }
    TranscodeOptions transcode = options_.transcode;
    if (job.early) transcode.priority = job.early->priority;
    const auto started = std::chrono::steady_clock::now();
    JobOutcome outcome = RunTranscodeJob(metadata_, content_, transcode, params, token);
    const auto ran = std::chrono::steady_clock::now() - started;
    {
      // Every store of the job has returned: a Cancel() waiting may go on.
      std::lock_guard lock(mu_);
      running_.at(job.video_id).storing = false;
    }
    storing_cv_.notify_all();
    // A head start that ended before it began to encode (no scratch space):
    // its upload is queued as usual once accepted, or now if it already was.
    bool requeue = false;
    if (job.early && !gate_called) {
      declined = true;
      std::lock_guard early_lock(job.early->mu);
      requeue = job.early->phase == EarlyState::Phase::kCommitted;
      job.early->phase = EarlyState::Phase::kAborted;
    }
    const bool lost = claim_lost || (claim && claim->lost());
    if (outcome == JobOutcome::kInterrupted && lost) {
      spdlog::warn("transcode {}: interrupted: its claim was lost (another server may take it)",
                   job.video_id);
    } else if (declined) {
      spdlog::info("transcode {}: head start dropped (upload not accepted, or not claimed)",
                   job.video_id);
    } else if (outcome == JobOutcome::kSkipped) {
      // Common with several servers: finished elsewhere after this one queued it.
      spdlog::debug("transcode {}: skipped (record gone or not processing)", job.video_id);
    } else {
      spdlog::info("transcode {}: {}", job.video_id, JobOutcomeName(outcome));
    }
    if (!declined) {
      Count(outcome, lost);
      if (options_.on_job_done) {
        options_.on_job_done({.outcome = outcome, .waited = started - job.queued_at, .ran = ran});
      }
    }
    // Released only now that the outcome is recorded: whoever claims it next
    // sees the record as this job left it.
    claim.reset();

    std::error_code ec;
    fs::remove_all(params.job_dir, ec);
    if (ec) spdlog::warn("transcode: cannot remove {}: {}", params.job_dir.string(), ec.message());
    // A local source the job did not consume (skipped early) is still ours.
    DiscardLocalSource(job.local_source);

    {
      std::lock_guard lock(mu_);
      running_.erase(job.video_id);
      active_ids_.erase(job.video_id);
    }
    if (requeue) EnqueueNew(job.video_id, std::nullopt);
  }
}

}  // namespace streamgrid
