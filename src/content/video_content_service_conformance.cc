#include "content/video_content_service_conformance.h"

#include <algorithm>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "gmock/gmock.h"

namespace streamgrid {

std::string ContentServiceFactoryName(const ::testing::TestParamInfo<ContentServiceFactory>& info) {
  return info.param.name;
}

std::string TestBytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(rng());
  return bytes;
}

absl::StatusOr<ContentInfo> WriteContent(VideoContentService& service, std::string_view video_id,
                                         std::string_view name, std::string_view data,
                                         size_t chunk) {
  absl::StatusOr<std::unique_ptr<ContentWriter>> writer = service.OpenWriter(video_id, name);
  if (!writer.ok()) return writer.status();
  for (size_t pos = 0; pos < data.size(); pos += chunk) {
    std::string_view piece = data.substr(pos, chunk);
    if (absl::Status s = (*writer)->Append(piece); !s.ok()) return s;
  }
  return (*writer)->Commit();
}

absl::StatusOr<std::string> ReadContent(VideoContentService& service, std::string_view video_id,
                                        std::string_view name, uint64_t offset,
                                        std::optional<uint64_t> length, size_t chunk) {
  absl::StatusOr<std::unique_ptr<ContentReader>> reader =
      service.OpenReader(video_id, name, offset, length);
  if (!reader.ok()) return reader.status();
  std::string result;
  std::vector<char> buffer(chunk);
  while (true) {
    absl::StatusOr<size_t> n = (*reader)->Read(buffer);
    if (!n.ok()) return n.status();
    if (*n == 0) return result;
    if (*n > chunk) return absl::InternalError("Read claimed more bytes than the buffer holds");
    result.append(buffer.data(), *n);
  }
}

void VideoContentServiceConformanceTest::SetUp() {
  harness_ = GetParam().make();
  ASSERT_NE(harness_, nullptr);
}

// Test binaries that link this library only for its helpers (TestBytes,
// WriteContent, ReadContent) do not instantiate the suite.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(VideoContentServiceConformanceTest);

namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::IsEmpty;
using ::testing::SizeIs;

std::vector<std::string> Names(const std::vector<ContentInfo>& infos) {
  std::vector<std::string> names;
  for (const ContentInfo& info : infos) names.push_back(info.name);
  return names;
}

TEST_P(VideoContentServiceConformanceTest, RoundTripsInChunks) {
  const std::string id = NewVideoId();
  const std::string data = TestBytes(5 * 1024 * 1024, 1);
  auto committed = WriteContent(service(), id, "original.mp4", data, 64 * 1024);
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(committed->name, "original.mp4");
  EXPECT_EQ(committed->size, data.size());
  EXPECT_FALSE(committed->etag.empty());

  auto stat = service().Stat(id, "original.mp4");
  ASSERT_TRUE(stat.ok()) << stat.status();
  EXPECT_EQ(stat->size, committed->size);
  EXPECT_EQ(stat->etag, committed->etag);

  auto reader = service().OpenReader(id, "original.mp4");
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->info().size, data.size());
  EXPECT_EQ((*reader)->info().etag, committed->etag);
  std::string read;
  char buffer[4096];
  while (true) {
    auto n = (*reader)->Read(buffer);
    ASSERT_TRUE(n.ok()) << n.status();
    if (*n == 0) break;
    read.append(buffer, *n);
  }
  EXPECT_TRUE(read == data) << "read " << read.size() << " bytes, wrote " << data.size();
  // The end stays the end.
  EXPECT_EQ(*(*reader)->Read(buffer), 0u);
}

TEST_P(VideoContentServiceConformanceTest, EmptyFile) {
  const std::string id = NewVideoId();
  auto committed = WriteContent(service(), id, "empty", "");
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(committed->size, 0u);
  EXPECT_EQ(ReadContent(service(), id, "empty").value_or("error"), "");
  EXPECT_EQ(ReadContent(service(), id, "empty", 0, 0).value_or("error"), "");
  EXPECT_EQ(service().OpenReader(id, "empty", 1).status().code(), absl::StatusCode::kOutOfRange);
}

TEST_P(VideoContentServiceConformanceTest, RangedReads) {
  const std::string id = NewVideoId();
  const std::string data = TestBytes(10000, 2);
  ASSERT_TRUE(WriteContent(service(), id, "seg-1.m4s", data, 999).ok());
  auto read = [&](uint64_t offset, std::optional<uint64_t> length) {
    return ReadContent(service(), id, "seg-1.m4s", offset, length, 333);
  };
  EXPECT_EQ(read(1000, 500).value_or("error"), data.substr(1000, 500));
  EXPECT_EQ(read(0, 1).value_or("error"), data.substr(0, 1));
  EXPECT_EQ(read(9000, std::nullopt).value_or("error"), data.substr(9000));
  EXPECT_EQ(read(9500, 10000).value_or("error"), data.substr(9500));
  EXPECT_EQ(read(1, std::numeric_limits<uint64_t>::max()).value_or("error"), data.substr(1));
  EXPECT_EQ(read(5000, 0).value_or("error"), "");
  EXPECT_EQ(read(10000, std::nullopt).value_or("error"), "");
  EXPECT_EQ(read(10000, 0).value_or("error"), "");
  EXPECT_EQ(read(10001, std::nullopt).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(read(std::numeric_limits<uint64_t>::max(), 1).status().code(),
            absl::StatusCode::kOutOfRange);

  auto reader = service().OpenReader(id, "seg-1.m4s", 100, 10);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->info().size, data.size());  // the whole file's, not the range's
}

TEST_P(VideoContentServiceConformanceTest, MissingContentIsNotFound) {
  const std::string id = NewVideoId();
  EXPECT_EQ(service().OpenReader(id, "nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(service().Stat(id, "nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(service().Delete(id, "nope").code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(WriteContent(service(), id, "present", "x").ok());
  EXPECT_EQ(service().OpenReader(id, "nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(service().Stat(id, "nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(VideoContentServiceConformanceTest, UncommittedWriterLeavesNoTrace) {
  const std::string id = NewVideoId();
  ASSERT_TRUE(WriteContent(service(), id, "kept", "old").ok());
  {
    auto fresh = service().OpenWriter(id, "fresh");
    auto replacement = service().OpenWriter(id, "kept");
    ASSERT_TRUE(fresh.ok() && replacement.ok());
    ASSERT_TRUE((*fresh)->Append(std::string_view("new data")).ok());
    ASSERT_TRUE((*replacement)->Append(std::string_view("new data")).ok());
    EXPECT_EQ(service().Stat(id, "fresh").status().code(), absl::StatusCode::kNotFound);
    EXPECT_THAT(Names(*service().List(id)), ElementsAre("kept"));
    EXPECT_EQ(ReadContent(service(), id, "kept").value_or("error"), "old");
  }
  EXPECT_EQ(service().Stat(id, "fresh").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Names(*service().List(id)), ElementsAre("kept"));
  EXPECT_EQ(ReadContent(service(), id, "kept").value_or("error"), "old");
}

TEST_P(VideoContentServiceConformanceTest, WriterIsSpentAfterCommit) {
  const std::string id = NewVideoId();
  auto writer = service().OpenWriter(id, "once");
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append(std::string_view("abc")).ok());
  ASSERT_TRUE((*writer)->Commit().ok());
  EXPECT_FALSE((*writer)->Append(std::string_view("def")).ok());
  EXPECT_FALSE((*writer)->Commit().ok());
  writer->reset();
  EXPECT_EQ(ReadContent(service(), id, "once").value_or("error"), "abc");
}

TEST_P(VideoContentServiceConformanceTest, ReplacingChangesETag) {
  const std::string id = NewVideoId();
  auto first = WriteContent(service(), id, "manifest.mpd", "version-1");
  ASSERT_TRUE(first.ok());
  // Same size on purpose: the ETag must not be derived from the size alone.
  auto second = WriteContent(service(), id, "manifest.mpd", "version-2");
  ASSERT_TRUE(second.ok());
  EXPECT_NE(first->etag, second->etag);
  EXPECT_EQ(service().Stat(id, "manifest.mpd")->etag, second->etag);
  EXPECT_EQ(ReadContent(service(), id, "manifest.mpd").value_or("error"), "version-2");
  // Unchanged content keeps its ETag.
  EXPECT_EQ(service().Stat(id, "manifest.mpd")->etag, second->etag);
}

TEST_P(VideoContentServiceConformanceTest, InvalidIdsAndNamesAreRejected) {
  const std::string id = NewVideoId();
  ASSERT_TRUE(WriteContent(service(), id, "real", "data").ok());
  const std::string bad_names[] = {"",         ".",
                                   "..",       "../x",
                                   "a/b",      "/abs",
                                   ".hidden",  ".tmp-real",
                                   "x\\y",     std::string("a\0b", 3),
                                   " sp",      "nul\n",
                                   "\xc3\xa9", std::string(129, 'a')};
  for (const std::string& name : bad_names) {
    SCOPED_TRACE(::testing::PrintToString(name));
    EXPECT_EQ(service().OpenWriter(id, name).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(service().OpenReader(id, name).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(service().Stat(id, name).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(service().Delete(id, name).code(), absl::StatusCode::kInvalidArgument);
  }
  const std::string bad_ids[] = {"",
                                 ".",
                                 "..",
                                 "../" + id,
                                 id + "/..",
                                 id.substr(1),
                                 id + "0",
                                 std::string(26, 'U'),
                                 std::string(13, '0') + '\0' + std::string(12, '0')};
  for (const std::string& bad : bad_ids) {
    SCOPED_TRACE(::testing::PrintToString(bad));
    EXPECT_EQ(service().OpenWriter(bad, "real").status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(service().OpenReader(bad, "real").status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(service().Stat(bad, "real").status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(service().List(bad).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(service().Delete(bad, "real").code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(service().DeleteVideo(bad).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(ReadContent(service(), id, "real").value_or("error"), "data");
}

TEST_P(VideoContentServiceConformanceTest, ListDeleteAndDeleteVideo) {
  const std::string id = NewVideoId();
  const std::string other = NewVideoId();
  EXPECT_THAT(*service().List(id), IsEmpty());
  for (const char* name : {"seg-2.m4s", "init.mp4", "Z-upper", "seg-10.m4s", "manifest.mpd"}) {
    ASSERT_TRUE(WriteContent(service(), id, name, name).ok());
  }
  ASSERT_TRUE(WriteContent(service(), other, "original.mp4", "keep me").ok());

  auto listed = service().List(id);
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_THAT(Names(*listed),
              ElementsAre("Z-upper", "init.mp4", "manifest.mpd", "seg-10.m4s", "seg-2.m4s"));
  for (const ContentInfo& info : *listed) {
    EXPECT_EQ(info.size, info.name.size());
    EXPECT_EQ(info.etag, service().Stat(id, info.name)->etag);
  }

  ASSERT_TRUE(service().Delete(id, "manifest.mpd").ok());
  EXPECT_EQ(service().Stat(id, "manifest.mpd").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(service().Delete(id, "manifest.mpd").code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Names(*service().List(id)),
              ElementsAre("Z-upper", "init.mp4", "seg-10.m4s", "seg-2.m4s"));

  ASSERT_TRUE(service().DeleteVideo(id).ok());
  EXPECT_THAT(*service().List(id), IsEmpty());
  EXPECT_EQ(service().Stat(id, "init.mp4").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(service().DeleteVideo(id).ok());
  EXPECT_TRUE(service().DeleteVideo(NewVideoId()).ok());
  EXPECT_THAT(*service().List(other), ElementsAre(Field(&ContentInfo::name, "original.mp4")));
  EXPECT_EQ(ReadContent(service(), other, "original.mp4").value_or("error"), "keep me");

  // A deleted video can be written again.
  ASSERT_TRUE(WriteContent(service(), id, "init.mp4", "again").ok());
  EXPECT_EQ(ReadContent(service(), id, "init.mp4").value_or("error"), "again");
}

TEST_P(VideoContentServiceConformanceTest, ConcurrentWritersOfDifferentFiles) {
  constexpr int kThreads = 8;
  constexpr int kFilesPerThread = 12;
  const std::string ids[] = {NewVideoId(), NewVideoId()};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int f = 0; f < kFilesPerThread; ++f) {
        const uint32_t seed = t * 1000 + f;
        auto info = WriteContent(service(), ids[t % 2], absl::StrCat("t", t, "-f", f),
                                 TestBytes(1000 + seed % 50000, seed), 4096);
        EXPECT_TRUE(info.ok()) << info.status();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  for (int t = 0; t < kThreads; ++t) {
    for (int f = 0; f < kFilesPerThread; ++f) {
      const uint32_t seed = t * 1000 + f;
      auto read = ReadContent(service(), ids[t % 2], absl::StrCat("t", t, "-f", f));
      ASSERT_TRUE(read.ok()) << read.status();
      EXPECT_TRUE(*read == TestBytes(1000 + seed % 50000, seed)) << "t" << t << "-f" << f;
    }
  }
  EXPECT_THAT(*service().List(ids[0]), SizeIs(kThreads / 2 * kFilesPerThread));
  EXPECT_THAT(*service().List(ids[1]), SizeIs(kThreads / 2 * kFilesPerThread));
}

TEST_P(VideoContentServiceConformanceTest, ConcurrentWritersOfOneFileNeverMix) {
  constexpr int kThreads = 4;
  const std::string id = NewVideoId();
  std::vector<std::string> contents;
  for (int t = 0; t < kThreads; ++t) contents.push_back(TestBytes(300'000, 100 + t));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round) {
        auto info = WriteContent(service(), id, "thumbnail.jpg", contents[t], 10'000);
        EXPECT_TRUE(info.ok()) << info.status();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  auto read = ReadContent(service(), id, "thumbnail.jpg");
  ASSERT_TRUE(read.ok());
  EXPECT_NE(std::find(contents.begin(), contents.end(), *read), contents.end());
  EXPECT_THAT(Names(*service().List(id)), ElementsAre("thumbnail.jpg"));
}

}  // namespace
}  // namespace streamgrid
