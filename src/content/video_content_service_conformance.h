#pragma once

// A GoogleTest suite that any VideoContentService implementation must pass. To
// run it against an implementation, add `sg_content_conformance` to a test's DEPS
// and instantiate it in that test's .cc:
//
//   INSTANTIATE_TEST_SUITE_P(
//       Mine, VideoContentServiceConformanceTest,
//       ::testing::Values(ContentServiceFactory{"Mine", [] { return MakeMyHarness(); }}),
//       ContentServiceFactoryName);

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "content/video_content_service.h"
#include "gtest/gtest.h"

namespace streamgrid {

// A service under test plus whatever backs it (a temp directory, a server). Made
// fresh for every test case; destroying it must release all of that.
class ContentServiceHarness {
 public:
  virtual ~ContentServiceHarness() = default;
  virtual VideoContentService& service() = 0;
};

struct ContentServiceFactory {
  std::string name;  // becomes part of the test names: letters, digits, '_'
  std::function<std::unique_ptr<ContentServiceHarness>()> make;
};

// Prints the factory's name, so test listings (and ctest's names) stay short.
inline void PrintTo(const ContentServiceFactory& factory, std::ostream* os) { *os << factory.name; }

// For INSTANTIATE_TEST_SUITE_P's name generator argument.
std::string ContentServiceFactoryName(const ::testing::TestParamInfo<ContentServiceFactory>& info);

// `size` bytes of deterministic, seed-dependent, non-repeating-looking data.
std::string TestBytes(size_t size, uint32_t seed);

// Writes and commits `data` to `video_id/name` in appends of `chunk` bytes.
absl::StatusOr<ContentInfo> WriteContent(VideoContentService& service, std::string_view video_id,
                                         std::string_view name, std::string_view data,
                                         size_t chunk = 64 * 1024);

// Everything a reader over the given range yields, read `chunk` bytes at a time.
absl::StatusOr<std::string> ReadContent(VideoContentService& service, std::string_view video_id,
                                        std::string_view name, uint64_t offset = 0,
                                        std::optional<uint64_t> length = std::nullopt,
                                        size_t chunk = 4096);

class VideoContentServiceConformanceTest : public ::testing::TestWithParam<ContentServiceFactory> {
 protected:
  void SetUp() override;
  VideoContentService& service() { return harness_->service(); }

  std::unique_ptr<ContentServiceHarness> harness_;
};

}  // namespace streamgrid
