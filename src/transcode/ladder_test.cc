#include "transcode/ladder.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace streamgrid {
namespace {

MediaInfo Source(int width, int height, double fps = 30) {
  MediaInfo info;
  info.width = width;
  info.height = height;
  info.frame_rate = fps;
  info.duration_seconds = 10;
  info.has_video = true;
  return info;
}

std::vector<std::string> Names(const std::vector<Rung>& ladder) {
  std::vector<std::string> names;
  for (const Rung& rung : ladder) names.push_back(rung.name);
  return names;
}

void ExpectWellFormed(const std::vector<Rung>& ladder, const MediaInfo& source) {
  double aspect = static_cast<double>(source.width) / source.height;
  for (const Rung& rung : ladder) {
    SCOPED_TRACE(rung.name);
    EXPECT_EQ(rung.width % 2, 0);
    EXPECT_EQ(rung.height % 2, 0);
    // Even rounding moves a side by at most one pixel.
    EXPECT_NEAR(static_cast<double>(rung.width) / rung.height, aspect,
                2.0 / std::min(rung.width, rung.height));
    EXPECT_EQ(rung.maxrate, std::llround(rung.bitrate * 1.07));
    EXPECT_EQ(rung.bufsize, std::llround(rung.bitrate * 1.5));
  }
  for (size_t i = 1; i < ladder.size(); ++i) {
    EXPECT_LT(ladder[i].bitrate, ladder[i - 1].bitrate);
    EXPECT_LT(ladder[i].width * ladder[i].height, ladder[i - 1].width * ladder[i - 1].height);
  }
}

TEST(LadderTest, FullHdGetsEveryRung) {
  MediaInfo source = Source(1920, 1080);
  std::vector<Rung> ladder = SelectLadder(source);
  EXPECT_THAT(Names(ladder), ::testing::ElementsAre("1080p", "720p", "480p", "360p", "240p"));
  EXPECT_EQ(ladder[0].width, 1920);
  EXPECT_EQ(ladder[0].height, 1080);
  EXPECT_EQ(ladder[1].width, 1280);
  EXPECT_EQ(ladder[1].height, 720);
  EXPECT_EQ(ladder[2].width, 854);
  EXPECT_EQ(ladder[2].height, 480);
  EXPECT_EQ(ladder[3].width, 640);
  EXPECT_EQ(ladder[3].height, 360);
  EXPECT_EQ(ladder[4].width, 426);
  EXPECT_EQ(ladder[4].height, 240);
  ExpectWellFormed(ladder, source);
}

TEST(LadderTest, BitratesFollowTheReferenceCurve) {
  std::vector<Rung> ladder = SelectLadder(Source(1920, 1080, 30));
  // Around PeerTube's figures for 16:9 at 24-30 fps (see NOTES.md).
  EXPECT_NEAR(ladder[0].bitrate, 4.8e6, 0.3e6);   // 1080p
  EXPECT_NEAR(ladder[1].bitrate, 2.4e6, 0.15e6);  // 720p
  EXPECT_NEAR(ladder[2].bitrate, 1.2e6, 0.1e6);   // 480p
  EXPECT_EQ(ladder[3].bitrate, 800'000);          // 360p is the reference point
  EXPECT_EQ(ladder[0].bitrate % 1000, 0);
}

TEST(LadderTest, NeverUpscales) {
  std::vector<Rung> ladder = SelectLadder(Source(1280, 720));
  EXPECT_THAT(Names(ladder), ::testing::ElementsAre("720p", "480p", "360p", "240p"));
  // Between two standard sizes: the larger one is skipped.
  EXPECT_THAT(Names(SelectLadder(Source(1000, 600))),
              ::testing::ElementsAre("480p", "360p", "240p"));
}

TEST(LadderTest, OddSourceSizeGivesEvenRungs) {
  MediaInfo source = Source(854, 481);
  std::vector<Rung> ladder = SelectLadder(source);
  EXPECT_THAT(Names(ladder), ::testing::ElementsAre("480p", "360p", "240p"));
  EXPECT_EQ(ladder[0].width, 852);
  EXPECT_EQ(ladder[0].height, 480);
  EXPECT_EQ(ladder[1].width, 640);
  EXPECT_EQ(ladder[1].height, 360);
  EXPECT_EQ(ladder[2].width, 426);
  EXPECT_EQ(ladder[2].height, 240);
  ExpectWellFormed(ladder, source);
}

TEST(LadderTest, SourceBelow240KeepsItsOwnSize) {
  std::vector<Rung> ladder = SelectLadder(Source(320, 180));
  ASSERT_EQ(ladder.size(), 1u);
  EXPECT_EQ(ladder[0].name, "180p");
  EXPECT_EQ(ladder[0].width, 320);
  EXPECT_EQ(ladder[0].height, 180);
  EXPECT_GT(ladder[0].bitrate, 0);
  EXPECT_LT(ladder[0].bitrate, 800'000);

  // Odd sizes are rounded down to even.
  ladder = SelectLadder(Source(171, 97));
  ASSERT_EQ(ladder.size(), 1u);
  EXPECT_EQ(ladder[0].name, "96p");
  EXPECT_EQ(ladder[0].width, 170);
  EXPECT_EQ(ladder[0].height, 96);
}

TEST(LadderTest, PortraitRungsAreNamedByTheShortSide) {
  MediaInfo source = Source(1080, 1920);
  std::vector<Rung> ladder = SelectLadder(source);
  EXPECT_THAT(Names(ladder), ::testing::ElementsAre("1080p", "720p", "480p", "360p", "240p"));
  EXPECT_EQ(ladder[0].width, 1080);
  EXPECT_EQ(ladder[0].height, 1920);
  EXPECT_EQ(ladder[1].width, 720);
  EXPECT_EQ(ladder[1].height, 1280);
  EXPECT_EQ(ladder[3].width, 360);
  EXPECT_EQ(ladder[3].height, 640);
  ExpectWellFormed(ladder, source);
  // Same pixels, same bitrate as landscape.
  EXPECT_EQ(ladder[1].bitrate, SelectLadder(Source(1280, 720))[0].bitrate);
}

TEST(LadderTest, RotatedSourceUsesItsDisplaySize) {
  // ProbeMedia reports the display size, so a phone clip stored as 1280x720
  // with a 90 degree rotation arrives as 720x1280.
  MediaInfo source = Source(720, 1280);
  source.rotation = 90;
  std::vector<Rung> ladder = SelectLadder(source);
  EXPECT_THAT(Names(ladder), ::testing::ElementsAre("720p", "480p", "360p", "240p"));
  EXPECT_EQ(ladder[0].width, 720);
  EXPECT_EQ(ladder[0].height, 1280);
  EXPECT_EQ(ladder[1].width, 480);
  EXPECT_EQ(ladder[1].height, 854);
}

TEST(LadderTest, HighFrameRateGetsMoreBits) {
  std::vector<Rung> at30 = SelectLadder(Source(1280, 720, 30));
  std::vector<Rung> at60 = SelectLadder(Source(1280, 720, 60));
  std::vector<Rung> at120 = SelectLadder(Source(1280, 720, 120));
  EXPECT_NEAR(static_cast<double>(at60[0].bitrate) / at30[0].bitrate, std::sqrt(2.0), 0.01);
  // Capped at 60 fps, which is also the most we encode.
  EXPECT_EQ(at120[0].bitrate, at60[0].bitrate);
  // 24 and 25 fps get the 30 fps figures.
  EXPECT_EQ(SelectLadder(Source(1280, 720, 24))[0].bitrate, at30[0].bitrate);
}

TEST(LadderTest, OutputFrameRateIsRoundedAndCapped) {
  EXPECT_EQ(OutputFrameRate(Source(640, 360, 29.97)), 30);
  EXPECT_EQ(OutputFrameRate(Source(640, 360, 23.976)), 24);
  EXPECT_EQ(OutputFrameRate(Source(640, 360, 25)), 25);
  EXPECT_EQ(OutputFrameRate(Source(640, 360, 59.94)), 60);
  EXPECT_EQ(OutputFrameRate(Source(640, 360, 120)), 60);
  EXPECT_EQ(OutputFrameRate(Source(640, 360, 0.2)), 1);
  EXPECT_EQ(OutputFrameRate(Source(640, 360, 0)), 30);
}

}  // namespace
}  // namespace streamgrid
