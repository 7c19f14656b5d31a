#include "transcode/transcode_worker_pool.h"

#include <algorithm>
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

TranscodeWorkerPool::TranscodeWorkerPool(VideoMetadataService& metadata,
                                         VideoContentService& content,
                                         TranscodeWorkerPoolOptions options)
    : metadata_(metadata), content_(content), options_(WithDefaults(std::move(options))) {}

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
}

void TranscodeWorkerPool::Stop() {
  std::vector<std::thread> threads;
  std::deque<Job> dropped;
  {
    std::lock_guard lock(mu_);
    if (!started_) return;
    stopping_ = true;
    for (auto& [id, token] : running_) token->Cancel();
    // Their records stay processing: RecoverPending() finds them again.
    dropped.swap(queue_);
    for (const Job& job : dropped) active_ids_.erase(job.video_id);
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (const Job& job : dropped) DiscardLocalSource(job.local_source);
  for (std::thread& thread : threads) thread.join();
  std::lock_guard lock(mu_);
  started_ = false;
  stopping_ = false;
}

void TranscodeWorkerPool::Enqueue(std::string video_id,
                                  std::optional<std::filesystem::path> local_source) {
  if (!IsValidVideoId(video_id)) {
    spdlog::warn("transcode: ignoring invalid video id '{}'", video_id);
    DiscardLocalSource(local_source);
    return;
  }
  {
    std::lock_guard lock(mu_);
    if (!active_ids_.contains(video_id)) {
      active_ids_.insert(video_id);
      queue_.push_back(Job{std::move(video_id), std::move(local_source)});
      cv_.notify_one();
      return;
    }
    // Already queued: a local copy spares the queued job a download.
    auto queued = std::find_if(queue_.begin(), queue_.end(),
                               [&](const Job& job) { return job.video_id == video_id; });
    if (queued != queue_.end() && !queued->local_source && local_source) {
      queued->local_source = std::move(local_source);
      return;
    }
  }
  DiscardLocalSource(local_source);
}

void TranscodeWorkerPool::Cancel(const std::string& video_id) {
  std::optional<std::filesystem::path> dropped_source;
  {
    std::lock_guard lock(mu_);
    auto queued = std::find_if(queue_.begin(), queue_.end(),
                               [&](const Job& job) { return job.video_id == video_id; });
    if (queued != queue_.end()) {
      dropped_source = std::move(queued->local_source);
      queue_.erase(queued);
      active_ids_.erase(video_id);
    }
    if (auto running = running_.find(video_id); running != running_.end()) {
      running->second->Cancel();
    }
  }
  DiscardLocalSource(dropped_source);
}

absl::Status TranscodeWorkerPool::RecoverPending() {
  ListOptions options;
  options.page_size = 1000;
  options.status = VideoStatus::kProcessing;
  size_t found = 0;
  while (true) {
    absl::StatusOr<VideoPage> page = metadata_.List(options);
    if (!page.ok()) return page.status();
    for (const VideoRecord& record : page->videos) {
      Enqueue(record.id);
      ++found;
    }
    if (page->next_page_token.empty()) break;
    // A listing that does not advance would keep start-up here forever.
    if (page->next_page_token == options.page_token) {
      return absl::InternalError("the video listing repeats the same page");
    }
    options.page_token = page->next_page_token;
  }
  if (found > 0) spdlog::info("transcode: resuming {} unfinished video(s)", found);
  return absl::OkStatus();
}

size_t TranscodeWorkerPool::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

size_t TranscodeWorkerPool::running() const {
  std::lock_guard lock(mu_);
  return running_.size();
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
      running_[job.video_id] = &token;
      number = next_job_number_++;
    }

    TranscodeJobParams params;
    params.video_id = job.video_id;
    params.local_source = job.local_source;
    params.job_dir = options_.work_dir / absl::StrCat(kJobDirPrefix, job.video_id, "-", number);
    params.progress_interval = options_.progress_interval;
    spdlog::info("transcode {}: started", job.video_id);
    JobOutcome outcome = RunTranscodeJob(metadata_, content_, options_.transcode, params, token);
    spdlog::info("transcode {}: {}", job.video_id, JobOutcomeName(outcome));

    std::error_code ec;
    fs::remove_all(params.job_dir, ec);
    if (ec) spdlog::warn("transcode: cannot remove {}: {}", params.job_dir.string(), ec.message());
    // A local source the job did not consume (skipped early) is still ours.
    DiscardLocalSource(job.local_source);

    std::lock_guard lock(mu_);
    running_.erase(job.video_id);
    active_ids_.erase(job.video_id);
  }
}

}  // namespace streamgrid
