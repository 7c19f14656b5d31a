#include "common/file_writes.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "gtest/gtest.h"

namespace streamgrid {
namespace {

TEST(WriteFullyTest, WritesEverythingAndReportsErrors) {
  char path[] = "/tmp/sg_file_writes_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  const std::string data(3 << 20, 'x');
  Writeback writeback(1 << 20);
  EXPECT_EQ(WriteFully(fd, data), 0);
  writeback.Wrote(fd, data.size());  // advisory; must not disturb the file
  EXPECT_EQ(lseek(fd, 0, SEEK_END), static_cast<off_t>(data.size()));
  close(fd);
  // A closed descriptor: the write's errno comes back.
  EXPECT_EQ(WriteFully(fd, data), EBADF);
}

}  // namespace
}  // namespace streamgrid
