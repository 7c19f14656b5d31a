#pragma once

// Damage as bit rot leaves it, for tests of verified reads, scrubbing and
// repair: the bytes change, the inode, size and mtime do not, so only reading
// the bytes shows it.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>

#include "gtest/gtest.h"

namespace streamgrid::storage::testing {

// Flips one bit of the byte at `offset` of `path` in place and puts the
// file's mtime back. Fails the calling test (a fatal failure: wrap the call
// in ASSERT_NO_FATAL_FAILURE where it matters) if the file cannot be changed.
inline void FlipBitKeepingMtime(const std::filesystem::path& path, uint64_t offset) {
  struct stat before;
  ASSERT_EQ(::stat(path.c_str(), &before), 0) << path;
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << path;
  char c = 0;
  const bool read = ::pread(fd, &c, 1, static_cast<off_t>(offset)) == 1;
  c ^= 0x10;
  const bool written = read && ::pwrite(fd, &c, 1, static_cast<off_t>(offset)) == 1;
  ::close(fd);
  ASSERT_TRUE(written) << path << " at " << offset;
  const struct timespec times[2] = {before.st_mtim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

}  // namespace streamgrid::storage::testing
