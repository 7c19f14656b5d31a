#include "content/local_video_content_service.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <stdexcept>
#include <string>

#include "common/ids.h"
#include "content/video_content_service_conformance.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace streamgrid {
namespace {

namespace fs = std::filesystem;

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::StartsWith;

// A fresh directory for one test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "sg_content_XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

class LocalHarness : public ContentServiceHarness {
 public:
  LocalHarness() {
    auto opened = LocalVideoContentService::Open(dir_.path() / "root");
    if (!opened.ok()) throw std::runtime_error(opened.status().ToString());
    service_ = *std::move(opened);
  }
  VideoContentService& service() override { return *service_; }

 private:
  TempDir dir_;
  std::unique_ptr<LocalVideoContentService> service_;
};

INSTANTIATE_TEST_SUITE_P(Local, VideoContentServiceConformanceTest,
                         ::testing::Values(ContentServiceFactory{
                             "Local", [] { return std::make_unique<LocalHarness>(); }}),
                         ContentServiceFactoryName);

// Every path under `dir`, relative to it.
std::set<std::string> Tree(const fs::path& dir) {
  std::set<std::string> paths;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    paths.insert(fs::relative(entry.path(), dir).string());
  }
  return paths;
}

std::string FileContents(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class LocalVideoContentServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path() / "store" / "root";
    Reopen();
  }
  void Reopen() {
    service_.reset();
    auto opened = LocalVideoContentService::Open(root_);
    ASSERT_TRUE(opened.ok()) << opened.status();
    service_ = *std::move(opened);
  }

  TempDir dir_;
  fs::path root_;
  std::unique_ptr<LocalVideoContentService> service_;
};

TEST_F(LocalVideoContentServiceTest, OpenCreatesRoot) {
  EXPECT_TRUE(fs::is_directory(root_));
  EXPECT_EQ(service_->root(), root_);
}

TEST_F(LocalVideoContentServiceTest, OpenRefusesAFile) {
  std::ofstream(dir_.path() / "file") << "x";
  EXPECT_FALSE(LocalVideoContentService::Open(dir_.path() / "file").ok());
}

TEST_F(LocalVideoContentServiceTest, CommittedFileLivesAtRootIdName) {
  const std::string id = NewVideoId();
  const std::string data = TestBytes(200'000, 7);
  auto info = WriteContent(*service_, id, "original.mp4", data);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(Tree(root_), ElementsAre(id, id + "/original.mp4"));
  EXPECT_TRUE(FileContents(root_ / id / "original.mp4") == data);
  EXPECT_THAT(info->etag, MatchesRegex("\"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+\""));
}

TEST_F(LocalVideoContentServiceTest, WriterUsesHiddenTempFileRemovedWhenAbandoned) {
  const std::string id = NewVideoId();
  {
    auto writer = service_->OpenWriter(id, "seg-1.m4s");
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Append(std::string_view("partial")).ok());
    std::set<std::string> tree = Tree(root_ / id);
    ASSERT_EQ(tree.size(), 1u);
    EXPECT_THAT(*tree.begin(), StartsWith(".tmp-"));
    EXPECT_THAT(*service_->List(id), IsEmpty());
  }
  EXPECT_THAT(Tree(root_ / id), IsEmpty());
}

TEST_F(LocalVideoContentServiceTest, CommitLeavesNoTempFile) {
  const std::string id = NewVideoId();
  ASSERT_TRUE(WriteContent(*service_, id, "a", "1").ok());
  ASSERT_TRUE(WriteContent(*service_, id, "a", "2").ok());
  EXPECT_THAT(Tree(root_ / id), ElementsAre("a"));
}

TEST_F(LocalVideoContentServiceTest, OpenRemovesStaleTempFilesOnly) {
  const std::string id = NewVideoId();
  ASSERT_TRUE(WriteContent(*service_, id, "init.mp4", "real").ok());
  service_.reset();
  // What a crash mid-write leaves behind.
  std::ofstream(root_ / id / ".tmp-seg-3.m4s.0123456789abcdef") << "half";
  std::ofstream(root_ / id / ".tmp-init.mp4.fedcba9876543210") << "half";
  fs::create_directories(root_ / NewVideoId());
  const std::string other = NewVideoId();
  fs::create_directories(root_ / other);
  std::ofstream(root_ / other / ".tmp-x.1") << "half";

  Reopen();
  EXPECT_THAT(Tree(root_ / id), ElementsAre("init.mp4"));
  EXPECT_THAT(Tree(root_ / other), IsEmpty());
  EXPECT_EQ(ReadContent(*service_, id, "init.mp4").value_or("error"), "real");
}

TEST_F(LocalVideoContentServiceTest, ReopenKeepsContentAndETags) {
  const std::string id = NewVideoId();
  auto info = WriteContent(*service_, id, "manifest.mpd", "<MPD/>");
  ASSERT_TRUE(info.ok());
  Reopen();
  EXPECT_EQ(service_->Stat(id, "manifest.mpd")->etag, info->etag);
  EXPECT_EQ(ReadContent(*service_, id, "manifest.mpd").value_or("error"), "<MPD/>");
}

TEST_F(LocalVideoContentServiceTest, OpenReaderKeepsItsFileAcrossReplaceAndDelete) {
  const std::string id = NewVideoId();
  const std::string old_data = TestBytes(100'000, 1);
  ASSERT_TRUE(WriteContent(*service_, id, "f", old_data).ok());
  auto reader = service_->OpenReader(id, "f");
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE(WriteContent(*service_, id, "f", "new").ok());
  std::string read;
  char buffer[1000];
  for (auto n = (*reader)->Read(buffer); n.ok() && *n > 0; n = (*reader)->Read(buffer)) {
    read.append(buffer, *n);
    if (read.size() == 50'000) {
      ASSERT_TRUE(service_->Delete(id, "f").ok());
    }
  }
  EXPECT_TRUE(read == old_data);
}

TEST_F(LocalVideoContentServiceTest, ReaderOffersItsDescriptorAtTheNextByte) {
  const std::string id = NewVideoId();
  const std::string data = TestBytes(10'000, 2);
  ASSERT_TRUE(WriteContent(*service_, id, "f", data).ok());
  auto reader = service_->OpenReader(id, "f", 1000, 5000);
  ASSERT_TRUE(reader.ok()) << reader.status();
  uint64_t position = 0;
  const int fd = (*reader)->SendableFd(&position);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(position, 1000u);
  char buffer[100];
  ASSERT_EQ(*(*reader)->Read(buffer), sizeof(buffer));
  EXPECT_EQ(std::string(buffer, sizeof(buffer)), data.substr(1000, 100));
  // After a read, the descriptor's next byte is the reader's next byte.
  EXPECT_EQ((*reader)->SendableFd(&position), fd);
  EXPECT_EQ(position, 1100u);
  std::string through_fd(200, '\0');
  ASSERT_EQ(::pread(fd, through_fd.data(), through_fd.size(), static_cast<off_t>(position)), 200);
  EXPECT_EQ(through_fd, data.substr(1100, 200));
}

TEST_F(LocalVideoContentServiceTest, ExternalChangeInPlaceChangesETag) {
  const std::string id = NewVideoId();
  auto info = WriteContent(*service_, id, "f", "abc");
  ASSERT_TRUE(info.ok());
  std::ofstream(root_ / id / "f", std::ios::app) << "d";
  EXPECT_NE(service_->Stat(id, "f")->etag, info->etag);
}

TEST_F(LocalVideoContentServiceTest, RejectedArgumentsTouchNothingOutsideOrInsideRoot) {
  const std::string id = NewVideoId();
  const std::string names[] = {"..", "../x",    "../../escape", "a/b",
                               "",   ".hidden", "x\\y",         std::string("a\0b", 3)};
  const std::string ids[] = {"..", "../escape", "", "a/b", std::string("x\0", 2), "."};
  const std::set<std::string> before = Tree(dir_.path());
  for (const std::string& name : names) {
    EXPECT_EQ(service_->OpenWriter(id, name).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(service_->Delete(id, name).code(), absl::StatusCode::kInvalidArgument);
  }
  for (const std::string& bad : ids) {
    EXPECT_EQ(service_->OpenWriter(bad, "x").status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(service_->DeleteVideo(bad).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(Tree(dir_.path()), before);
  // Not even the video directory appears for a valid id with a bad name.
  EXPECT_FALSE(fs::exists(root_ / id));
}

TEST_F(LocalVideoContentServiceTest, DeleteVideoDoesNotFollowOrEscape) {
  // Content outside the root must survive DeleteVideo of a neighbour id.
  const fs::path outside = dir_.path() / "outside.txt";
  std::ofstream(outside) << "precious";
  const std::string id = NewVideoId();
  ASSERT_TRUE(WriteContent(*service_, id, "a", "x").ok());
  fs::create_symlink(outside, root_ / id / "link");
  ASSERT_TRUE(service_->DeleteVideo(id).ok());
  EXPECT_FALSE(fs::exists(root_ / id));
  EXPECT_EQ(FileContents(outside), "precious");
}

TEST_F(LocalVideoContentServiceTest, SymlinksAndDirectoriesAreNotContent) {
  const std::string id = NewVideoId();
  ASSERT_TRUE(WriteContent(*service_, id, "real", "x").ok());
  std::ofstream(dir_.path() / "outside.txt") << "secret";
  fs::create_symlink(dir_.path() / "outside.txt", root_ / id / "link");
  fs::create_directories(root_ / id / "subdir");
  EXPECT_EQ(service_->OpenReader(id, "link").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(service_->Stat(id, "link").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(service_->Stat(id, "subdir").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(service_->OpenReader(id, "subdir").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(*service_->List(id), ElementsAre(::testing::Field(&ContentInfo::name, "real")));
}

TEST_F(LocalVideoContentServiceTest, VideoPathBlockedByAFileIsNotFoundOrError) {
  const std::string id = NewVideoId();
  std::ofstream(root_ / id) << "not a directory";
  EXPECT_EQ(service_->Stat(id, "x").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(service_->OpenReader(id, "x").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(service_->OpenWriter(id, "x").ok());
}

}  // namespace
}  // namespace streamgrid
