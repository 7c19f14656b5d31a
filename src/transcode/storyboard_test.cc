#include "transcode/storyboard.h"

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/names.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace streamgrid {
namespace {

MediaInfo Source(int width, int height, double seconds) {
  MediaInfo info;
  info.width = width;
  info.height = height;
  info.duration_seconds = seconds;
  info.has_video = true;
  return info;
}

TEST(PlanStoryboardTest, ShortVideoGetsATileASecondInOneRow) {
  std::optional<StoryboardLayout> layout = PlanStoryboard(Source(640, 360, 6));
  ASSERT_TRUE(layout.has_value());
  EXPECT_EQ(layout->interval_seconds, 1);
  EXPECT_EQ(layout->tile_width, 160);
  EXPECT_EQ(layout->tile_height, 90);
  EXPECT_EQ(layout->columns, 6);
  EXPECT_EQ(layout->rows, 1);
  EXPECT_EQ(layout->sheet_width(), 960);
  EXPECT_EQ(layout->sheet_height(), 90);
}

TEST(PlanStoryboardTest, PartialSecondGetsItsOwnTile) {
  std::optional<StoryboardLayout> layout = PlanStoryboard(Source(1920, 1080, 12.4));
  ASSERT_TRUE(layout.has_value());
  EXPECT_EQ(layout->interval_seconds, 1);
  EXPECT_EQ(layout->columns, 10);
  EXPECT_EQ(layout->rows, 2);  // 13 tiles
}

TEST(PlanStoryboardTest, LongVideosWidenTheIntervalAndStayWithinTheMaximum) {
  for (double seconds : {100.0, 100.5, 250.0, 3600.0, 3601.0, 36000.0}) {
    SCOPED_TRACE(seconds);
    std::optional<StoryboardLayout> layout = PlanStoryboard(Source(1280, 720, seconds));
    ASSERT_TRUE(layout.has_value());
    EXPECT_LE(layout->columns * layout->rows, kStoryboardMaxTiles);
    EXPECT_LE(layout->columns, kStoryboardColumns);
    // Every second of the video has a tile.
    EXPECT_GE(layout->interval_seconds * layout->columns * layout->rows, seconds);
  }
  EXPECT_EQ(PlanStoryboard(Source(1280, 720, 100))->interval_seconds, 1);
  EXPECT_EQ(PlanStoryboard(Source(1280, 720, 100.5))->interval_seconds, 2);
  EXPECT_EQ(PlanStoryboard(Source(1280, 720, 3600))->interval_seconds, 36);
}

TEST(PlanStoryboardTest, TilesKeepTheAspectRatioEvenAndNeverUpscale) {
  std::optional<StoryboardLayout> portrait = PlanStoryboard(Source(1080, 1920, 10));
  EXPECT_EQ(portrait->tile_width, 90);
  EXPECT_EQ(portrait->tile_height, 160);
  std::optional<StoryboardLayout> four_three = PlanStoryboard(Source(640, 480, 10));
  EXPECT_EQ(four_three->tile_width, 160);
  EXPECT_EQ(four_three->tile_height, 120);
  std::optional<StoryboardLayout> tiny = PlanStoryboard(Source(97, 55, 10));
  EXPECT_EQ(tiny->tile_width, 96);
  EXPECT_EQ(tiny->tile_height, 54);
  std::optional<StoryboardLayout> sliver = PlanStoryboard(Source(1000, 2, 10));
  EXPECT_EQ(sliver->tile_width, 160);
  EXPECT_EQ(sliver->tile_height, 2);
}

TEST(PlanStoryboardTest, UnknownDurationOrSizeMeansNone) {
  EXPECT_FALSE(PlanStoryboard(Source(640, 360, 0)).has_value());
  EXPECT_FALSE(PlanStoryboard(Source(0, 0, 10)).has_value());
}

TEST(VttTimestampTest, HoursMinutesSecondsMilliseconds) {
  EXPECT_EQ(VttTimestamp(0), "00:00:00.000");
  EXPECT_EQ(VttTimestamp(2), "00:00:02.000");
  EXPECT_EQ(VttTimestamp(6.0666), "00:00:06.067");
  EXPECT_EQ(VttTimestamp(3725.5), "01:02:05.500");
  EXPECT_EQ(VttTimestamp(-1), "00:00:00.000");
}

TEST(StoryboardVttTest, OneCuePerTileRowByRowTheLastEndingAtTheDuration) {
  StoryboardLayout layout{
      .interval_seconds = 2, .tile_width = 160, .tile_height = 90, .columns = 3, .rows = 2};
  EXPECT_EQ(StoryboardVtt(layout, 9.5),
            "WEBVTT\n"
            "\n00:00:00.000 --> 00:00:02.000\nstoryboard.jpg#xywh=0,0,160,90\n"
            "\n00:00:02.000 --> 00:00:04.000\nstoryboard.jpg#xywh=160,0,160,90\n"
            "\n00:00:04.000 --> 00:00:06.000\nstoryboard.jpg#xywh=320,0,160,90\n"
            "\n00:00:06.000 --> 00:00:08.000\nstoryboard.jpg#xywh=0,90,160,90\n"
            "\n00:00:08.000 --> 00:00:09.500\nstoryboard.jpg#xywh=160,90,160,90\n");
}

TEST(StoryboardVttTest, ExactMultipleHasNoEmptyLastCue) {
  StoryboardLayout layout{
      .interval_seconds = 1, .tile_width = 160, .tile_height = 90, .columns = 6, .rows = 1};
  std::string vtt = StoryboardVtt(layout, 6);
  EXPECT_THAT(vtt, ::testing::EndsWith("00:00:05.000 --> 00:00:06.000\n"
                                       "storyboard.jpg#xywh=800,0,160,90\n"));
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(vtt, "-->")).size(), 7u);  // 6 cues
}

TEST(StoryboardVttTest, LongerThanTheSheetStretchesItsLastTileToTheEnd) {
  // Probed as 4 s, encoded 7 s: four tiles, the last covering 3 s to the end.
  StoryboardLayout layout = *PlanStoryboard(Source(640, 360, 4));
  std::string vtt = StoryboardVtt(layout, 7);
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(vtt, "-->")).size(), 5u);
  EXPECT_THAT(vtt, ::testing::EndsWith("00:00:03.000 --> 00:00:07.000\n"
                                       "storyboard.jpg#xywh=480,0,160,90\n"));
}

TEST(StoryboardVttTest, ShorterThanProbedNamesOnlyTheTilesItHas) {
  StoryboardLayout layout = *PlanStoryboard(Source(640, 360, 20));  // 10x2
  std::string vtt = StoryboardVtt(layout, 11.2);
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(vtt, "-->")).size(), 13u);  // 12 cues
  EXPECT_THAT(vtt, ::testing::EndsWith("00:00:11.000 --> 00:00:11.200\n"
                                       "storyboard.jpg#xywh=160,90,160,90\n"));
}

TEST(StoryboardVttTest, NoDurationNoCues) {
  StoryboardLayout layout = *PlanStoryboard(Source(640, 360, 5));
  EXPECT_EQ(StoryboardVtt(layout, 0), "WEBVTT\n");
}

TEST(StoryboardNamesTest, AreValidContentNames) {
  EXPECT_TRUE(IsValidContentName(kStoryboardImageName));
  EXPECT_TRUE(IsValidContentName(kStoryboardTrackName));
}

}  // namespace
}  // namespace streamgrid
