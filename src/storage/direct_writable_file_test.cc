#include "storage/direct_writable_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "gtest/gtest.h"
#include "storage/test_util.h"

namespace streamgrid::storage {
namespace {

namespace fs = std::filesystem;
using testing::Pattern;
using testing::TempDir;

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

ScopedFd Create(const fs::path& path) {
  return ScopedFd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
}

// Whether the file system under `dir` takes O_DIRECT at all.
bool SupportsDirectIo(const fs::path& dir) {
  const fs::path probe = dir / "probe";
  const int fd = open(probe.c_str(), O_WRONLY | O_CREAT | O_DIRECT | O_CLOEXEC, 0644);
  if (fd >= 0) close(fd);
  fs::remove(probe);
  return fd >= 0;
}

// Whether the file system under `dir` refuses a direct write at an unaligned
// offset (ext4, xfs do; tmpfs, which has no blocks to align to, does not).
bool RefusesUnalignedDirectWrites(const fs::path& dir) {
  const fs::path probe = dir / "probe";
  const int fd = open(probe.c_str(), O_WRONLY | O_CREAT | O_DIRECT | O_CLOEXEC, 0644);
  if (fd < 0) return true;
  void* memory = nullptr;
  bool refused = true;
  if (posix_memalign(&memory, kDirectIoAlignment, kDirectIoAlignment) == 0) {
    std::memset(memory, 0, kDirectIoAlignment);
    refused = pwrite(fd, memory, kDirectIoAlignment, 1000) < 0 && errno == EINVAL;
    std::free(memory);
  }
  close(fd);
  fs::remove(probe);
  return refused;
}

// Appends `data` in pieces of awkward sizes (smaller and larger than the
// buffer, crossing the prefix), as the node's gRPC chunks would.
void AppendInPieces(DirectWritableFile& file, const std::string& data) {
  size_t at = 0;
  size_t piece = 1;
  while (at < data.size()) {
    const size_t n = std::min(piece, data.size() - at);
    ASSERT_TRUE(file.Append(std::span<const char>(data.data() + at, n)).ok());
    at += n;
    piece = piece * 3 + 7;
  }
}

void WriteAndCheck(const fs::path& dir, DirectWriteOptions options, size_t size,
                   bool expect_direct) {
  const fs::path path = dir / "data";
  const std::string data = Pattern(size, 7);
  DirectWritableFile file(Create(path), path, options);
  AppendInPieces(file, data);
  ASSERT_TRUE(file.Sync().ok());
  auto stat = file.Stat();
  ASSERT_TRUE(stat.ok()) << stat.status();
  EXPECT_EQ(stat->size, size);
  ASSERT_TRUE(file.Close().ok());
  EXPECT_EQ(ReadAll(path), data);
  if (expect_direct) {
    // Everything but the prefix and the last partial buffer went direct.
    const uint64_t past_prefix = size - options.buffered_prefix_bytes;
    EXPECT_EQ(file.direct_bytes(), past_prefix - past_prefix % options.buffer_bytes);
  } else {
    EXPECT_EQ(file.direct_bytes(), 0u);
  }
  fs::remove(path);
}

TEST(DirectWritableFileTest, WritesEveryByteAndBypassesTheCacheWhereTheFileSystemCan) {
  TempDir dir;
  const bool direct = SupportsDirectIo(dir.path());
  const DirectWriteOptions options{.buffered_prefix_bytes = 3 * kDirectIoAlignment,
                                   .buffer_bytes = 4 * kDirectIoAlignment};
  WriteAndCheck(dir.path(), options, 200'000 + 123, direct);
  // Exactly whole buffers, nothing held back.
  WriteAndCheck(dir.path(), options, 3 * kDirectIoAlignment + 10 * 4 * kDirectIoAlignment, direct);
}

TEST(DirectWritableFileTest, SmallFilesStayInTheBufferedPrefix) {
  TempDir dir;
  WriteAndCheck(dir.path(), {.buffered_prefix_bytes = 1 << 20, .buffer_bytes = 1 << 16}, 5000,
                false);
  WriteAndCheck(dir.path(), {}, 0, false);
}

TEST(DirectWritableFileTest, OnTmpfsToo) {
  // /dev/shm is tmpfs on Linux; older kernels refuse O_DIRECT there, newer
  // ones take it. Either way every byte must land.
  if (!fs::is_directory("/dev/shm") || access("/dev/shm", W_OK) != 0) {
    GTEST_SKIP() << "no writable /dev/shm";
  }
  const fs::path dir = fs::path("/dev/shm") / ("sg_direct_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const DirectWriteOptions options{.buffered_prefix_bytes = kDirectIoAlignment,
                                   .buffer_bytes = 2 * kDirectIoAlignment};
  WriteAndCheck(dir, options, 100'001, SupportsDirectIo(dir));
  fs::remove_all(dir);
}

TEST(DirectWritableFileTest, FallsBackToBufferedWhenTheKernelRefusesADirectWrite) {
  TempDir dir;
  // A prefix that ends at an unaligned offset: a file system with blocks
  // refuses the first direct write there (EINVAL), and the file must go on
  // buffered without losing a byte.
  const bool refuses = RefusesUnalignedDirectWrites(dir.path());
  const fs::path path = dir.path() / "data";
  const std::string data = Pattern(300'000, 3);
  DirectWritableFile file(Create(path), path,
                          {.buffered_prefix_bytes = 1000, .buffer_bytes = 4 * kDirectIoAlignment});
  AppendInPieces(file, data);
  ASSERT_TRUE(file.Sync().ok());
  ASSERT_TRUE(file.Close().ok());
  EXPECT_EQ(ReadAll(path), data);
  if (refuses) EXPECT_EQ(file.direct_bytes(), 0u);
}

TEST(DirectWritableFileTest, AnAppendAfterSyncGoesOnBuffered) {
  TempDir dir;
  const fs::path path = dir.path() / "data";
  const std::string data = Pattern(100'000, 5);
  DirectWritableFile file(Create(path), path,
                          {.buffered_prefix_bytes = 0, .buffer_bytes = kDirectIoAlignment});
  ASSERT_TRUE(file.Append(std::span<const char>(data.data(), 50'000)).ok());
  ASSERT_TRUE(file.Sync().ok());
  ASSERT_TRUE(file.Append(std::span<const char>(data.data() + 50'000, 50'000)).ok());
  auto stat = file.Stat();
  ASSERT_TRUE(stat.ok());
  EXPECT_EQ(stat->size, data.size());
  ASSERT_TRUE(file.Close().ok());
  EXPECT_EQ(ReadAll(path), data);
  EXPECT_FALSE(file.Append(std::span<const char>(data.data(), 1)).ok());
}

}  // namespace
}  // namespace streamgrid::storage
