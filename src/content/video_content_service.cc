#include "content/video_content_service.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace streamgrid {

bool IsImmutableContentName(std::string_view name) {
  return name.ends_with(".m4s") || name == "storyboard.jpg" || name == "storyboard.vtt";
}

absl::StatusOr<ContentInfo> CopyLocalFile(VideoContentService& content, std::string_view video_id,
                                          std::string_view name,
                                          const std::filesystem::path& file) {
  // Large reads keep the per-call overhead (a gRPC message per Append in
  // cluster mode) small; 1 MiB stays under gRPC's 4 MiB message default.
  constexpr size_t kChunk = 1024 * 1024;
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot open ", file.string(), ": ", strerror(errno)));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  absl::StatusOr<std::unique_ptr<ContentWriter>> writer = content.OpenWriter(video_id, name);
  if (!writer.ok()) return writer.status();
  std::vector<char> buffer(kChunk);
  for (;;) {
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::InternalError(
          absl::StrCat("cannot read ", file.string(), ": ", strerror(errno)));
    }
    if (n == 0) break;
    if (absl::Status s = (*writer)->Append(std::span(buffer.data(), static_cast<size_t>(n)));
        !s.ok()) {
      return s;
    }
  }
  return (*writer)->Commit();
}

absl::StatusOr<ContentInfo> VideoContentService::StoreLocalFile(std::string_view video_id,
                                                                std::string_view name,
                                                                const std::filesystem::path& file) {
  return CopyLocalFile(*this, video_id, name, file);
}

}  // namespace streamgrid
