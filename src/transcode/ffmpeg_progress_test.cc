#include "transcode/ffmpeg_progress.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace streamgrid {
namespace {

TEST(FfmpegProgressTest, PercentFollowsOutTime) {
  FfmpegProgress progress(10.0);
  EXPECT_FALSE(progress.OnLine("frame=1"));
  EXPECT_FALSE(progress.OnLine("out_time_us=N/A"));
  EXPECT_FALSE(progress.OnLine("out_time_us=50000"));  // 0.5 %: still 0
  EXPECT_EQ(progress.percent(), 0);
  EXPECT_TRUE(progress.OnLine("out_time_us=2500000"));
  EXPECT_EQ(progress.percent(), 25);
  EXPECT_EQ(progress.out_time_us(), 2500000);
  EXPECT_FALSE(progress.OnLine("progress=continue"));
  EXPECT_FALSE(progress.ended());
}

TEST(FfmpegProgressTest, IgnoresOtherTimeKeys) {
  FfmpegProgress progress(10.0);
  // out_time_ms is in microseconds too; reading it as milliseconds would be
  // wildly off, so it is ignored, as is the text form.
  EXPECT_FALSE(progress.OnLine("out_time_ms=5000000"));
  EXPECT_FALSE(progress.OnLine("out_time=00:00:05.000000"));
  EXPECT_EQ(progress.percent(), 0);
}

TEST(FfmpegProgressTest, StaysBelowHundredAndNeverGoesBack) {
  FfmpegProgress progress(3.0);
  EXPECT_TRUE(progress.OnLine("out_time_us=1500000"));
  EXPECT_EQ(progress.percent(), 50);
  EXPECT_FALSE(progress.OnLine("out_time_us=1000000"));
  EXPECT_EQ(progress.percent(), 50);
  // Audio often ends a little after the container's duration.
  EXPECT_TRUE(progress.OnLine("out_time_us=3029333"));
  EXPECT_EQ(progress.percent(), 99);
  EXPECT_FALSE(progress.OnLine("out_time_us=4000000"));
  EXPECT_FALSE(progress.OnLine("progress=end"));
  EXPECT_TRUE(progress.ended());
}

TEST(FfmpegProgressTest, ToleratesJunkAndWhitespace) {
  FfmpegProgress progress(100.0);
  for (const char* line : {"", "=", "garbage", "out_time_us=", "out_time_us=abc",
                           "out_time_us=-23000", "speed= 2.7x"}) {
    EXPECT_FALSE(progress.OnLine(line)) << line;
  }
  EXPECT_TRUE(progress.OnLine(" out_time_us=10000000 \r"));
  EXPECT_EQ(progress.percent(), 10);
}

TEST(FfmpegProgressTest, UnknownDurationGivesNoPercent) {
  FfmpegProgress progress(0);
  EXPECT_FALSE(progress.OnLine("out_time_us=10000000"));
  EXPECT_EQ(progress.percent(), 0);
  EXPECT_EQ(progress.out_time_us(), 10000000);
}

TEST(FfmpegProgressTest, ParsesARealProgressBlock) {
  const std::vector<std::string> block = {"frame=90",
                                          "fps=0.00",
                                          "stream_0_0_q=-1.0",
                                          "bitrate=N/A",
                                          "total_size=N/A",
                                          "out_time_us=1800000",
                                          "out_time_ms=1800000",
                                          "out_time=00:00:01.800000",
                                          "dup_frames=0",
                                          "drop_frames=0",
                                          "speed=13.4x",
                                          "progress=continue"};
  FfmpegProgress progress(3.0);
  int changes = 0;
  for (const std::string& line : block) changes += progress.OnLine(line) ? 1 : 0;
  EXPECT_EQ(changes, 1);
  EXPECT_EQ(progress.percent(), 60);
}

}  // namespace
}  // namespace streamgrid
