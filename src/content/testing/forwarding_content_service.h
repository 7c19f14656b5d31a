#pragma once

// A VideoContentService that forwards to another: test doubles derive from it
// and override only the calls they change. Test-only.

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "content/video_content_service.h"

namespace streamgrid::testing {

// Forwards the six calls every service implements. StoreLocalFile() and the
// other calls with defaults keep the interface's defaults (so a local file is
// stored through this service's OpenWriter(), where a derived double sees it).
class ForwardingContentService : public VideoContentService {
 public:
  // `inner` must outlive this service.
  explicit ForwardingContentService(VideoContentService& inner) : inner_(inner) {}

  absl::StatusOr<std::unique_ptr<ContentWriter>> OpenWriter(std::string_view video_id,
                                                            std::string_view name) override {
    return inner_.OpenWriter(video_id, name);
  }
  absl::StatusOr<std::unique_ptr<ContentReader>> OpenReader(
      std::string_view video_id, std::string_view name, uint64_t offset,
      std::optional<uint64_t> length) override {
    return inner_.OpenReader(video_id, name, offset, length);
  }
  absl::StatusOr<ContentInfo> Stat(std::string_view video_id, std::string_view name) override {
    return inner_.Stat(video_id, name);
  }
  absl::StatusOr<std::vector<ContentInfo>> List(std::string_view video_id) override {
    return inner_.List(video_id);
  }
  absl::Status Delete(std::string_view video_id, std::string_view name) override {
    return inner_.Delete(video_id, name);
  }
  absl::Status DeleteVideo(std::string_view video_id) override {
    return inner_.DeleteVideo(video_id);
  }

 protected:
  VideoContentService& inner() { return inner_; }

 private:
  VideoContentService& inner_;
};

}  // namespace streamgrid::testing
