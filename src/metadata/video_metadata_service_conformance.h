#pragma once

// A GoogleTest suite that any VideoMetadataService implementation must pass. To
// run it against an implementation, add `sg_metadata_conformance` to a test's
// DEPS and instantiate it in that test's .cc:
//
//   INSTANTIATE_TEST_SUITE_P(
//       Mine, VideoMetadataServiceConformanceTest,
//       ::testing::Values(MetadataServiceFactory{"Mine", [] { return MakeMyHarness(); }}),
//       MetadataServiceFactoryName);
//
// Every case expects to start from an empty store and writes a few thousand
// records at most; a harness may share one server between cases as long as
// each case sees only its own records (say, under a key prefix of its own).

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "metadata/video_metadata_service.h"

namespace streamgrid {

// A service under test plus whatever backs it (a temp directory, a key prefix
// on a server). Made fresh for every test case; destroying it must release all
// of that.
class MetadataServiceHarness {
 public:
  virtual ~MetadataServiceHarness() = default;
  virtual VideoMetadataService& service() = 0;
};

struct MetadataServiceFactory {
  std::string name;  // becomes part of the test names: letters, digits, '_'
  std::function<std::unique_ptr<MetadataServiceHarness>()> make;
};

// Prints the factory's name, so test listings (and ctest's names) stay short.
inline void PrintTo(const MetadataServiceFactory& factory, std::ostream* os) {
  *os << factory.name;
}

// For INSTANTIATE_TEST_SUITE_P's name generator argument.
std::string MetadataServiceFactoryName(
    const ::testing::TestParamInfo<MetadataServiceFactory>& info);

// A "processing" record created (and last updated) at `created_at_ms`, with an
// id from NewVideoIdAt(created_at_ms).
VideoRecord MakeTestRecord(int64_t created_at_ms, std::string title = "clip.mp4");

// Creates `records` from `threads` threads at once (each takes every
// threads-th record). Returns the first error, or OK when all were created.
absl::Status CreateAll(VideoMetadataService& service, const std::vector<VideoRecord>& records,
                       int threads = 8);

// Every id List yields for `options`, following tokens until the last page;
// the number of pages read goes to `*pages` when given. A failed List is a
// test failure and ends the listing.
std::vector<std::string> ListAllIds(VideoMetadataService& service, ListOptions options,
                                    int* pages = nullptr);

class VideoMetadataServiceConformanceTest
    : public ::testing::TestWithParam<MetadataServiceFactory> {
 protected:
  void SetUp() override;
  VideoMetadataService& service() { return harness_->service(); }

  std::unique_ptr<MetadataServiceHarness> harness_;
};

}  // namespace streamgrid
