#include "ingest/ingest.h"

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "content/local_video_content_service.h"
#include "content/testing/forwarding_content_service.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metadata/sqlite_video_metadata_service.h"
#include "transcode/testing/test_media.h"

namespace streamgrid::ingest {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A content service that looks remote (no cheap local store), over a local
// one: uploads stream their original into it while the body arrives. Counts
// the bytes its writers were given, and can fail one writer's appends from
// a given byte on, as a storage node dying midway would.
class RemoteLikeContent : public streamgrid::testing::ForwardingContentService {
 public:
  using ForwardingContentService::ForwardingContentService;

  struct Counts {
    int writers = 0;
    uint64_t appended = 0;
    int commits = 0;
    bool hung = false;                // a writer is blocked in Append
    bool released_by_cancel = false;  // ... and Cancel() woke it
  };
  Counts counts() {
    std::lock_guard lock(mu_);
    return counts_;
  }
  // The next writer opened fails every Append after `bytes` bytes.
  void FailNextWriterAfter(uint64_t bytes) { fail_after_ = bytes; }
  // The next writer opened blocks in Append after `bytes` bytes, as with a
  // storage node that stopped reading, until Cancel() (or a minute passed).
  void HangNextWriterAfter(uint64_t bytes) { hang_after_ = bytes; }
  // Every writer opened from now on fails its first Append: no copy can be
  // stored at all.
  void FailEveryWriter() { fail_every_ = true; }

  absl::StatusOr<std::unique_ptr<ContentWriter>> OpenWriter(std::string_view video_id,
                                                            std::string_view name) override {
    auto inner = ForwardingContentService::OpenWriter(video_id, name);
    if (!inner.ok()) return inner.status();
    std::lock_guard lock(mu_);
    ++counts_.writers;
    std::optional<uint64_t> fail_after = std::exchange(fail_after_, {});
    if (fail_every_) fail_after = 0;
    return std::make_unique<Writer>(*this, *std::move(inner), fail_after,
                                    std::exchange(hang_after_, {}));
  }

 private:
  class Writer : public ContentWriter {
   public:
    Writer(RemoteLikeContent& owner, std::unique_ptr<ContentWriter> inner,
           std::optional<uint64_t> fail_after, std::optional<uint64_t> hang_after)
        : owner_(owner),
          inner_(std::move(inner)),
          fail_after_(fail_after),
          hang_after_(hang_after) {}
    absl::Status Append(std::span<const char> data) override {
      if (fail_after_ && written_ + data.size() > *fail_after_) {
        return absl::UnavailableError("storage node went away");
      }
      if (hang_after_ && written_ + data.size() > *hang_after_) {
        std::unique_lock lock(owner_.mu_);
        owner_.counts_.hung = true;
        owner_.cv_.wait_for(lock, std::chrono::minutes(1), [&] { return cancelled_; });
        owner_.counts_.released_by_cancel = cancelled_;
        return absl::DeadlineExceededError("storage node stopped reading");
      }
      written_ += data.size();
      {
        std::lock_guard lock(owner_.mu_);
        owner_.counts_.appended += data.size();
      }
      return inner_->Append(data);
    }
    absl::StatusOr<ContentInfo> Commit() override {
      {
        std::lock_guard lock(owner_.mu_);
        ++owner_.counts_.commits;
      }
      return inner_->Commit();
    }
    void Cancel() override {
      std::lock_guard lock(owner_.mu_);
      cancelled_ = true;
      owner_.cv_.notify_all();
    }

   private:
    RemoteLikeContent& owner_;
    std::unique_ptr<ContentWriter> inner_;
    std::optional<uint64_t> fail_after_;
    std::optional<uint64_t> hang_after_;
    uint64_t written_ = 0;
    bool cancelled_ = false;  // guarded by owner_.mu_
  };

  std::mutex mu_;
  std::condition_variable cv_;
  Counts counts_;
  std::optional<uint64_t> fail_after_;
  std::optional<uint64_t> hang_after_;
  std::atomic<bool> fail_every_ = false;
};

testing::LazyMedia& Media() {
  static auto* media = new testing::LazyMedia({
      {"clip.mp4",
       [](const fs::path& p) {
         return testing::MakeTestVideo(p, {.width = 320, .height = 180, .seconds = 2});
       }},
      {"faststart.mp4",
       [](const fs::path& p) {
         absl::StatusOr<fs::path> clip = Media().Get("clip.mp4");
         if (!clip.ok()) return clip.status();
         return testing::RunFfmpegForTest(
             {"-i", clip->string(), "-c", "copy", "-movflags", "+faststart", p.string()});
       }},
      {"faststart-cut.mp4",
       [](const fs::path& p) {
         absl::StatusOr<fs::path> whole = Media().Get("faststart.mp4");
         if (!whole.ok()) return whole.status();
         absl::StatusOr<std::string> bytes = testing::ReadTestFile(*whole);
         if (!bytes.ok()) return bytes.status();
         return testing::WriteTestFile(p, bytes->substr(0, bytes->size() * 3 / 4));
       }},
  });
  return *media;
}

std::string Bytes(const std::string& name) {
  absl::StatusOr<fs::path> path = Media().Get(name);
  EXPECT_TRUE(path.ok()) << path.status();
  if (!path.ok()) return "";
  absl::StatusOr<std::string> bytes = testing::ReadTestFile(*path);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : "";
}

class IngestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto content = LocalVideoContentService::Open(dir_.path() / "content");
    ASSERT_TRUE(content.ok()) << content.status();
    local_ = *std::move(content);
    auto metadata = SqliteVideoMetadataService::Open(dir_.path() / "meta.db");
    ASSERT_TRUE(metadata.ok()) << metadata.status();
    metadata_ = *std::move(metadata);
    remote_ = std::make_unique<RemoteLikeContent>(*local_);
  }

  IngestOptions Options() {
    IngestOptions options;
    options.spool_dir = dir_.path() / "spool";
    options.store_backoff = std::chrono::milliseconds(10);
    options.writeback_bytes = 64 * 1024;
    return options;
  }

  std::unique_ptr<Ingest> MakeIngest(VideoContentService& content, IngestOptions options) {
    return std::make_unique<Ingest>(
        *metadata_, content,
        [this](const std::string& id, const fs::path& source, const MediaInfo& media) {
          queued_.emplace_back(id, source);
          queued_media_.push_back(media);
        },
        std::move(options));
  }

  // Feeds `bytes` in small chunks, as the HTTP route does.
  static absl::Status Feed(Upload& upload, std::string_view bytes, size_t chunk = 7000) {
    for (size_t at = 0; at < bytes.size(); at += chunk) {
      std::string_view piece = bytes.substr(at, chunk);
      if (absl::Status s = upload.Append(std::span(piece.data(), piece.size())); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  size_t SpoolFiles() {
    std::error_code ec;
    if (!fs::exists(dir_.path() / "spool", ec)) return 0;
    return static_cast<size_t>(
        std::distance(fs::directory_iterator(dir_.path() / "spool"), fs::directory_iterator()));
  }

  // Nothing of a refused upload is left: no record, no content, no spool.
  void ExpectNothingLeft(const std::string& id) {
    EXPECT_EQ(metadata_->Get(id).status().code(), absl::StatusCode::kNotFound);
    absl::StatusOr<std::vector<ContentInfo>> files = local_->List(id);
    ASSERT_TRUE(files.ok()) << files.status();
    EXPECT_TRUE(files->empty());
    EXPECT_EQ(SpoolFiles(), 0u);
    EXPECT_TRUE(queued_.empty());
  }

  testing::TempDir dir_;
  std::unique_ptr<LocalVideoContentService> local_;
  std::unique_ptr<SqliteVideoMetadataService> metadata_;
  std::unique_ptr<RemoteLikeContent> remote_;
  std::vector<std::pair<std::string, fs::path>> queued_;
  std::vector<MediaInfo> queued_media_;
};

TEST_F(IngestTest, LocalContentGetsTheSpoolFileWithoutACopy) {
  const std::string bytes = Bytes("clip.mp4");
  auto ingest = MakeIngest(*local_, Options());
  absl::StatusOr<std::unique_ptr<Upload>> upload = ingest->Begin();
  ASSERT_TRUE(upload.ok()) << upload.status();
  const std::string id = (*upload)->id();
  ASSERT_TRUE(Feed(**upload, bytes).ok());
  EXPECT_EQ((*upload)->size(), bytes.size());

  absl::StatusOr<VideoRecord> record = (*upload)->Finish("clip.mp4");
  ASSERT_TRUE(record.ok()) << record.status();
  upload->reset();
  EXPECT_EQ(record->id, id);
  EXPECT_EQ(record->status, VideoStatus::kProcessing);
  EXPECT_NEAR(record->duration_seconds, 2.0, 0.3);
  absl::StatusOr<VideoRecord> stored = metadata_->Get(id);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->title, "clip.mp4");

  // Queued with the spool file, which survives the Upload: the job owns it.
  ASSERT_EQ(queued_.size(), 1u);
  EXPECT_EQ(queued_[0].first, id);
  // With what the probe found, so the job need not probe again.
  EXPECT_EQ(queued_media_[0].width, 320);
  EXPECT_EQ(queued_media_[0].height, 180);
  EXPECT_NEAR(queued_media_[0].duration_seconds, 2.0, 0.3);
  absl::StatusOr<std::string> spooled = testing::ReadTestFile(queued_[0].second);
  ASSERT_TRUE(spooled.ok()) << spooled.status();
  EXPECT_EQ(*spooled, bytes);

  // The original is the spool file itself (one inode), not a copy of it.
  const fs::path original = local_->root() / id / "original";
  struct stat a, b;
  ASSERT_EQ(::stat(original.c_str(), &a), 0);
  ASSERT_EQ(::stat(queued_[0].second.c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  absl::StatusOr<std::string> content = testing::ReadTestFile(original);
  ASSERT_TRUE(content.ok());
  EXPECT_EQ(*content, bytes);
  // And the transcoder moving or deleting its file leaves the original alone.
  fs::remove(queued_[0].second);
  absl::StatusOr<ContentInfo> info = local_->Stat(id, "original");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->size, bytes.size());
}

TEST_F(IngestTest, RemoteContentGetsTheOriginalWhileTheBodyArrives) {
  const std::string bytes = Bytes("clip.mp4");
  auto ingest = MakeIngest(*remote_, Options());
  absl::StatusOr<std::unique_ptr<Upload>> upload = ingest->Begin();
  ASSERT_TRUE(upload.ok()) << upload.status();
  const std::string id = (*upload)->id();
  ASSERT_TRUE(Feed(**upload, bytes).ok());

  // Every byte goes out before Finish (from a thread of its own, so the
  // body's reader never waits for the nodes), yet nothing is visible until it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (remote_->counts().appended < bytes.size() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(remote_->counts().writers, 1);
  EXPECT_EQ(remote_->counts().appended, bytes.size());
  EXPECT_EQ(remote_->counts().commits, 0);
  EXPECT_EQ(local_->Stat(id, "original").status().code(), absl::StatusCode::kNotFound);

  absl::StatusOr<VideoRecord> record = (*upload)->Finish("clip.mp4");
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(remote_->counts().writers, 1);  // streamed once, not copied again
  EXPECT_EQ(remote_->counts().commits, 1);
  absl::StatusOr<std::string> content = testing::ReadTestFile(local_->root() / id / "original");
  ASSERT_TRUE(content.ok());
  EXPECT_EQ(*content, bytes);
  ASSERT_EQ(queued_.size(), 1u);
}

TEST_F(IngestTest, AStreamThatFailsMidwayIsStoredFromTheSpoolFile) {
  const std::string bytes = Bytes("clip.mp4");
  auto ingest = MakeIngest(*remote_, Options());
  remote_->FailNextWriterAfter(bytes.size() / 3);
  absl::StatusOr<std::unique_ptr<Upload>> upload = ingest->Begin();
  ASSERT_TRUE(upload.ok()) << upload.status();
  const std::string id = (*upload)->id();
  ASSERT_TRUE(Feed(**upload, bytes).ok()) << "a failed copy does not fail the upload";

  absl::StatusOr<VideoRecord> record = (*upload)->Finish("clip.mp4");
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(remote_->counts().writers, 2);
  EXPECT_EQ(remote_->counts().commits, 1);
  absl::StatusOr<std::string> content = testing::ReadTestFile(local_->root() / id / "original");
  ASSERT_TRUE(content.ok());
  EXPECT_EQ(*content, bytes);
  // The abandoned stream left no temp file beside the original.
  absl::StatusOr<std::vector<ContentInfo>> files = local_->List(id);
  ASSERT_TRUE(files.ok());
  EXPECT_EQ(files->size(), 1u);
  EXPECT_EQ(std::distance(fs::directory_iterator(local_->root() / id), fs::directory_iterator()),
            1);
}

// A finished resumable upload: the file is handed over whole, for both kinds
// of content, and is left where it was whatever happens.
TEST_F(IngestTest, AFinishedFileIsIngestedAndLeftToItsOwner) {
  const std::string bytes = Bytes("clip.mp4");
  const fs::path file = dir_.path() / "tus" / "upload.part";
  fs::create_directories(file.parent_path());
  ASSERT_TRUE(testing::WriteTestFile(file, bytes).ok());
  for (VideoContentService* content : {static_cast<VideoContentService*>(local_.get()),
                                       static_cast<VideoContentService*>(remote_.get())}) {
    queued_.clear();
    auto ingest = MakeIngest(*content, Options());
    absl::StatusOr<std::unique_ptr<Upload>> upload = ingest->BeginFromFile(file);
    ASSERT_TRUE(upload.ok()) << upload.status();
    EXPECT_EQ((*upload)->size(), bytes.size());
    absl::StatusOr<VideoRecord> record = (*upload)->Finish("clip.mp4");
    ASSERT_TRUE(record.ok()) << record.status();
    upload->reset();
    EXPECT_EQ(metadata_->Get(record->id)->title, "clip.mp4");
    absl::StatusOr<std::string> original =
        testing::ReadTestFile(local_->root() / record->id / "original");
    ASSERT_TRUE(original.ok()) << original.status();
    EXPECT_EQ(*original, bytes);
    ASSERT_EQ(queued_.size(), 1u);
    EXPECT_EQ(queued_[0].first, record->id);
    EXPECT_EQ(*testing::ReadTestFile(file), bytes);
  }
}

TEST_F(IngestTest, ARefusedFinishedFileLeavesNothingButTheFile) {
  const fs::path file = dir_.path() / "tus" / "upload.part";
  fs::create_directories(file.parent_path());
  ASSERT_TRUE(testing::WriteTestFile(file, "#EXTM3U\n#EXTINF:1,\n/etc/passwd\n").ok());
  auto ingest = MakeIngest(*local_, Options());
  absl::StatusOr<std::unique_ptr<Upload>> upload = ingest->BeginFromFile(file);
  ASSERT_TRUE(upload.ok()) << upload.status();
  const std::string id = (*upload)->id();
  absl::StatusOr<VideoRecord> record = (*upload)->Finish("x.mp4");
  EXPECT_TRUE(IsRefusal(record.status())) << record.status();
  upload->reset();
  ExpectNothingLeft(id);
  EXPECT_TRUE(fs::exists(file));

  IngestOptions small = Options();
  small.max_file_bytes = 4;
  auto limited = MakeIngest(*local_, small);
  absl::StatusOr<std::unique_ptr<Upload>> too_big = limited->BeginFromFile(file);
  EXPECT_TRUE(IsRefusal(too_big.status())) << too_big.status();
  EXPECT_EQ(too_big.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(SpoolFiles(), 0u);
}

TEST(TitleFromFilenameTest, LastComponentOneLine) {
  EXPECT_EQ(TitleFromFilename("C:\\Users\\me\\clip.mp4"), "clip.mp4");
  EXPECT_EQ(TitleFromFilename("/home/me/a\nb.mp4"), "a b.mp4");
  EXPECT_EQ(TitleFromFilename(""), "untitled");
  EXPECT_EQ(TitleFromFilename(std::string(300, 'x')).size(), 255u);
}

TEST_F(IngestTest, NotAVideoIsRefusedAndLeavesNothing) {
  for (VideoContentService* content : {static_cast<VideoContentService*>(local_.get()),
                                       static_cast<VideoContentService*>(remote_.get())}) {
    auto ingest = MakeIngest(*content, Options());
    absl::StatusOr<std::unique_ptr<Upload>> upload = ingest->Begin();
    ASSERT_TRUE(upload.ok()) << upload.status();
    const std::string id = (*upload)->id();
    ASSERT_TRUE(Feed(**upload, "#EXTM3U\n#EXTINF:1,\n/etc/passwd\n").ok());
    absl::StatusOr<VideoRecord> record = (*upload)->Finish("x.mp4");
    EXPECT_EQ(record.status().code(), absl::StatusCode::kInvalidArgument) << record.status();
    EXPECT_TRUE(IsRefusal(record.status()));
    upload->reset();
    ExpectNothingLeft(id);
  }
}

TEST_F(IngestTest, DataCutShortBehindAnIntactIndexIsRefused) {
  for (VideoContentService* content : {static_cast<VideoContentService*>(local_.get()),
                                       static_cast<VideoContentService*>(remote_.get())}) {
    auto ingest = MakeIngest(*content, Options());
    absl::StatusOr<std::unique_ptr<Upload>> upload = ingest->Begin();
    ASSERT_TRUE(upload.ok()) << upload.status();
    const std::string id = (*upload)->id();
    ASSERT_TRUE(Feed(**upload, Bytes("faststart-cut.mp4")).ok());
    absl::StatusOr<VideoRecord> record = (*upload)->Finish("cut.mp4");
    EXPECT_EQ(record.status().code(), absl::StatusCode::kDataLoss) << record.status();
    EXPECT_TRUE(IsRefusal(record.status()));
    EXPECT_THAT(record.status().message(), HasSubstr("incomplete"));
    upload->reset();
    ExpectNothingLeft(id);
  }
}

TEST_F(IngestTest, EmptyUploadIsRefused) {
  auto ingest = MakeIngest(*local_, Options());
  absl::StatusOr<std::unique_ptr<Upload>> upload = ingest->Begin();
  ASSERT_TRUE(upload.ok());
  const std::string id = (*upload)->id();
  absl::StatusOr<VideoRecord> record = (*upload)->Finish("empty.mp4");
  EXPECT_EQ(record.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(IsRefusal(record.status()));
  upload->reset();
  ExpectNothingLeft(id);
}

TEST_F(IngestTest, LimitsAreRefusals) {
  const std::string bytes = Bytes("clip.mp4");
  {
    IngestOptions options = Options();
    options.max_file_bytes = bytes.size() - 1;
    auto ingest = MakeIngest(*remote_, options);
    absl::StatusOr<std::unique_ptr<Upload>> upload = ingest->Begin();
    ASSERT_TRUE(upload.ok());
    const std::string id = (*upload)->id();
    absl::Status fed = Feed(**upload, bytes);
    EXPECT_EQ(fed.code(), absl::StatusCode::kOutOfRange) << fed;
    EXPECT_TRUE(IsRefusal(fed));
    EXPECT_FALSE((*upload)->Finish("big.mp4").ok());
    upload->reset();
    ExpectNothingLeft(id);
  }
  {
    IngestOptions options = Options();
    options.media_limits.max_duration_seconds = 1;
    auto ingest = MakeIngest(*local_, options);
    absl::StatusOr<std::unique_ptr<Upload>> upload = ingest->Begin();
    ASSERT_TRUE(upload.ok());
    const std::string id = (*upload)->id();
    ASSERT_TRUE(Feed(**upload, bytes).ok());
    absl::StatusOr<VideoRecord> record = (*upload)->Finish("long.mp4");
    EXPECT_EQ(record.status().code(), absl::StatusCode::kOutOfRange) << record.status();
    EXPECT_TRUE(IsRefusal(record.status()));
    upload->reset();
    ExpectNothingLeft(id);
  }
}

TEST_F(IngestTest, AnAbandonedUploadLeavesNothing) {
  const std::string bytes = Bytes("clip.mp4");
  auto ingest = MakeIngest(*remote_, Options());
  absl::StatusOr<std::unique_ptr<Upload>> upload = ingest->Begin();
  ASSERT_TRUE(upload.ok());
  const std::string id = (*upload)->id();
  ASSERT_TRUE(Feed(**upload, std::string_view(bytes).substr(0, bytes.size() / 2)).ok());
  EXPECT_EQ(SpoolFiles(), 1u);
  upload->reset();  // the client went away
  ExpectNothingLeft(id);
  EXPECT_EQ(remote_->counts().commits, 0);
}

TEST_F(IngestTest, AbandoningAnUploadCancelsAStreamThatHangs) {
  const std::string bytes = Bytes("clip.mp4");
  auto ingest = MakeIngest(*remote_, Options());
  remote_->HangNextWriterAfter(bytes.size() / 3);
  absl::StatusOr<std::unique_ptr<Upload>> upload = ingest->Begin();
  ASSERT_TRUE(upload.ok());
  const std::string id = (*upload)->id();
  ASSERT_TRUE(Feed(**upload, bytes).ok());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!remote_->counts().hung && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(remote_->counts().hung);
  // The client went away: the destructor cancels the write rather than
  // waiting for the node (here: a minute; in production the transfer
  // deadline).
  upload->reset();
  EXPECT_TRUE(remote_->counts().released_by_cancel);
  ExpectNothingLeft(id);
  EXPECT_EQ(remote_->counts().commits, 0);
}

// What a head start saw: when it began (was the original stored yet? could
// it read the file?), and whether it was committed or aborted.
struct EarlyEvents {
  int started = 0;
  bool original_stored_at_start = false;
  std::string read_at_start;
  bool record_at_commit = false;
  int committed = 0;
  int aborted = 0;
};

class RecordingEarlyJob : public EarlyJob {
 public:
  RecordingEarlyJob(EarlyEvents& events, std::function<bool()> record_exists)
      : events_(events), record_exists_(std::move(record_exists)) {}
  ~RecordingEarlyJob() override {
    if (!committed_) ++events_.aborted;
  }
  bool Commit() override {
    committed_ = true;
    ++events_.committed;
    events_.record_at_commit = record_exists_();
    return true;
  }

 private:
  EarlyEvents& events_;
  std::function<bool()> record_exists_;
  bool committed_ = false;
};

class IngestEarlyTest : public IngestTest {
 protected:
  std::unique_ptr<Ingest> MakeEarlyIngest() {
    auto ingest = MakeIngest(*remote_, Options());
    ingest->SetEarlyStart(
        [this](const std::string& id, const fs::path& source, const MediaInfo& media) {
          ++events_.started;
          events_.original_stored_at_start = local_->Stat(id, "original").ok();
          absl::StatusOr<std::string> bytes = testing::ReadTestFile(source);
          events_.read_at_start = bytes.ok() ? *bytes : "";
          EXPECT_EQ(media.width, 320);
          return std::make_unique<RecordingEarlyJob>(
              events_, [this, id] { return metadata_->Get(id).ok(); });
        });
    return ingest;
  }

  EarlyEvents events_;
};

TEST_F(IngestEarlyTest, TheEncodeStartsBeforeTheOriginalIsStoredAndIsCommittedAfterTheRecord) {
  const std::string bytes = Bytes("clip.mp4");
  auto ingest = MakeEarlyIngest();
  absl::StatusOr<std::unique_ptr<Upload>> upload = ingest->Begin();
  ASSERT_TRUE(upload.ok()) << upload.status();
  ASSERT_TRUE(Feed(**upload, bytes).ok());
  absl::StatusOr<VideoRecord> record = (*upload)->Finish("clip.mp4");
  ASSERT_TRUE(record.ok()) << record.status();
  upload->reset();

  EXPECT_EQ(events_.started, 1);
  EXPECT_FALSE(events_.original_stored_at_start);
  EXPECT_EQ(events_.read_at_start, bytes);
  EXPECT_EQ(events_.committed, 1);
  EXPECT_TRUE(events_.record_at_commit);
  EXPECT_EQ(events_.aborted, 0);
  // The head start is the job: nothing else queued, and the spool file's
  // own name is gone (the job has its link).
  EXPECT_TRUE(queued_.empty());
  EXPECT_EQ(SpoolFiles(), 0u);
  EXPECT_TRUE(local_->Stat(record->id, "original").ok());
}

TEST_F(IngestEarlyTest, AnOriginalThatCannotBeStoredAbortsTheEncode) {
  const std::string bytes = Bytes("clip.mp4");
  auto ingest = MakeEarlyIngest();
  remote_->FailEveryWriter();
  absl::StatusOr<std::unique_ptr<Upload>> upload = ingest->Begin();
  ASSERT_TRUE(upload.ok()) << upload.status();
  const std::string id = (*upload)->id();
  ASSERT_TRUE(Feed(**upload, bytes).ok());
  absl::StatusOr<VideoRecord> record = (*upload)->Finish("clip.mp4");
  EXPECT_FALSE(record.ok());
  EXPECT_FALSE(IsRefusal(record.status()));
  upload->reset();

  EXPECT_EQ(events_.started, 1);
  EXPECT_EQ(events_.committed, 0);
  EXPECT_EQ(events_.aborted, 1);
  ExpectNothingLeft(id);
}

TEST_F(IngestEarlyTest, ARecordThatCannotBeCreatedAbortsTheEncode) {
  const std::string bytes = Bytes("clip.mp4");
  auto ingest = MakeEarlyIngest();
  absl::StatusOr<std::unique_ptr<Upload>> upload = ingest->Begin();
  ASSERT_TRUE(upload.ok()) << upload.status();
  const std::string id = (*upload)->id();
  // Someone else's record under the same id: Create() refuses.
  VideoRecord squatter;
  squatter.id = id;
  squatter.title = "squatter";
  squatter.status = VideoStatus::kFailed;
  ASSERT_TRUE(metadata_->Create(squatter).ok());
  ASSERT_TRUE(Feed(**upload, bytes).ok());
  EXPECT_FALSE((*upload)->Finish("clip.mp4").ok());
  upload->reset();

  EXPECT_EQ(events_.started, 1);
  EXPECT_EQ(events_.committed, 0);
  EXPECT_EQ(events_.aborted, 1);
  EXPECT_EQ(local_->Stat(id, "original").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(SpoolFiles(), 0u);
  EXPECT_TRUE(queued_.empty());
}

// Without an idle worker (start returns null) the video is queued as before.
TEST_F(IngestEarlyTest, NoHeadStartQueuesTheVideoAsBefore) {
  const std::string bytes = Bytes("clip.mp4");
  auto ingest = MakeIngest(*remote_, Options());
  int asked = 0;
  ingest->SetEarlyStart([&](const std::string&, const fs::path&, const MediaInfo&) {
    ++asked;
    return std::unique_ptr<EarlyJob>();
  });
  absl::StatusOr<std::unique_ptr<Upload>> upload = ingest->Begin();
  ASSERT_TRUE(upload.ok()) << upload.status();
  ASSERT_TRUE(Feed(**upload, bytes).ok());
  ASSERT_TRUE((*upload)->Finish("clip.mp4").ok());
  EXPECT_EQ(asked, 1);
  ASSERT_EQ(queued_.size(), 1u);
  EXPECT_TRUE(fs::exists(queued_[0].second));
}

TEST(IsRefusalTest, OnlyMarkedErrorsAreRefusals) {
  EXPECT_FALSE(IsRefusal(absl::OkStatus()));
  EXPECT_FALSE(IsRefusal(absl::DataLossError("replicas differ")));
  EXPECT_FALSE(IsRefusal(absl::UnavailableError("no nodes")));
}

}  // namespace
}  // namespace streamgrid::ingest
