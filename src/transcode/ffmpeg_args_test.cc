#include "transcode/ffmpeg_args.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/names.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transcode/transcode_job.h"

namespace streamgrid {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

MediaInfo Source(int width, int height, bool audio, double fps = 30) {
  MediaInfo info;
  info.width = width;
  info.height = height;
  info.frame_rate = fps;
  info.duration_seconds = 12;
  info.has_video = true;
  info.has_audio = audio;
  return info;
}

// The value following `flag` in `args`, or "" when absent.
std::string ValueOf(const std::vector<std::string>& args, const std::string& flag) {
  auto it = std::find(args.begin(), args.end(), flag);
  if (it == args.end() || it + 1 == args.end()) return "";
  return *(it + 1);
}

int CountOf(const std::vector<std::string>& args, const std::string& value) {
  return static_cast<int>(std::count(args.begin(), args.end(), value));
}

TEST(LadderCommandTest, EncodesEveryRungFromOneDecode) {
  MediaInfo info = Source(1280, 720, /*audio=*/true);
  std::vector<Rung> ladder = SelectLadder(info);
  ASSERT_EQ(ladder.size(), 4u);
  std::vector<std::string> args = BuildLadderCommand("ffmpeg", "/in/source", info, ladder, "/out");

  EXPECT_EQ(args[0], "ffmpeg");
  EXPECT_EQ(CountOf(args, "-i"), 1);
  EXPECT_EQ(ValueOf(args, "-i"), "file:/in/source");
  EXPECT_EQ(ValueOf(args, "-filter_complex"),
            "[0:v:0]fps=30,split=4[s0][s1][s2][s3];"
            "[s0]scale=1280:720,setdar=dar=16/9:max=1000000,format=yuv420p[v0];"
            "[s1]scale=854:480,setdar=dar=16/9:max=1000000,format=yuv420p[v1];"
            "[s2]scale=640:360,setdar=dar=16/9:max=1000000,format=yuv420p[v2];"
            "[s3]scale=426:240,setdar=dar=16/9:max=1000000,format=yuv420p[v3]");
  for (size_t i = 0; i < ladder.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_THAT(args, Contains(absl::StrCat("[v", i, "]")));
    EXPECT_EQ(ValueOf(args, absl::StrCat("-b:v:", i)), absl::StrCat(ladder[i].bitrate));
    EXPECT_EQ(ValueOf(args, absl::StrCat("-maxrate:v:", i)), absl::StrCat(ladder[i].maxrate));
    EXPECT_EQ(ValueOf(args, absl::StrCat("-bufsize:v:", i)), absl::StrCat(ladder[i].bufsize));
  }
  EXPECT_EQ(CountOf(args, "-map"), 5);
  EXPECT_THAT(args, Contains("0:a:0?"));

  EXPECT_EQ(ValueOf(args, "-c:v"), "libx264");
  EXPECT_EQ(ValueOf(args, "-preset"), "veryfast");
  EXPECT_EQ(ValueOf(args, "-profile:v"), "high");
  EXPECT_EQ(ValueOf(args, "-pix_fmt"), "yuv420p");
  EXPECT_EQ(ValueOf(args, "-force_key_frames"), "expr:gte(t,n_forced*2)");
  EXPECT_EQ(ValueOf(args, "-sc_threshold"), "0");

  EXPECT_EQ(ValueOf(args, "-c:a"), "aac");
  EXPECT_EQ(ValueOf(args, "-b:a"), "128k");
  EXPECT_EQ(ValueOf(args, "-ac"), "2");
  EXPECT_EQ(ValueOf(args, "-ar"), "48000");

  EXPECT_EQ(ValueOf(args, "-f"), "dash");
  EXPECT_EQ(ValueOf(args, "-adaptation_sets"), "id=0,streams=v id=1,streams=a");
  EXPECT_EQ(ValueOf(args, "-seg_duration"), "2");
  EXPECT_EQ(ValueOf(args, "-use_template"), "1");
  EXPECT_EQ(ValueOf(args, "-use_timeline"), "1");
  EXPECT_EQ(ValueOf(args, "-hls_playlist"), "1");
  EXPECT_EQ(ValueOf(args, "-hls_master_name"), "master.m3u8");
  EXPECT_EQ(ValueOf(args, "-init_seg_name"), "init-$RepresentationID$.m4s");
  EXPECT_EQ(ValueOf(args, "-media_seg_name"), "chunk-$RepresentationID$-$Number%05d$.m4s");
  EXPECT_EQ(ValueOf(args, "-progress"), "pipe:1");
  EXPECT_THAT(args, Contains("-nostats"));
  EXPECT_THAT(args, Contains("-nostdin"));
  EXPECT_THAT(args, Contains("-y"));
  EXPECT_EQ(args.back(), "file:/out/manifest.mpd");
}

TEST(LadderCommandTest, WithoutAudioThereIsNoAudioSet) {
  MediaInfo info = Source(320, 180, /*audio=*/false);
  std::vector<std::string> args =
      BuildLadderCommand("/usr/bin/ffmpeg", "/in/source", info, SelectLadder(info), "/out");
  EXPECT_EQ(args[0], "/usr/bin/ffmpeg");
  EXPECT_THAT(args, Not(Contains("0:a:0?")));
  EXPECT_THAT(args, Not(Contains("-c:a")));
  EXPECT_EQ(ValueOf(args, "-adaptation_sets"), "id=0,streams=v");
  // One rung: no split.
  EXPECT_EQ(ValueOf(args, "-filter_complex"),
            "[0:v:0]fps=30,scale=320:180,setdar=dar=16/9:max=1000000,format=yuv420p[v0]");
  EXPECT_EQ(CountOf(args, "-map"), 1);
}

TEST(LadderCommandTest, ThumbnailIsASecondOutputOfTheSameDecode) {
  MediaInfo info = Source(1280, 720, /*audio=*/true);
  std::vector<Rung> ladder = SelectLadder(info);
  ASSERT_EQ(ladder.size(), 4u);
  std::vector<std::string> plain = BuildLadderCommand("ffmpeg", "/in/source", info, ladder, "/out");
  std::vector<std::string> args =
      BuildLadderCommand("ffmpeg", "/in/source", info, ladder, "/out", /*thumbnail_at=*/6.0);

  EXPECT_EQ(CountOf(args, "-i"), 1);
  // The 360-line rung has the thumbnail's size: its scaled frames feed the
  // pick too, so the thumbnail branch scales nothing.
  EXPECT_EQ(ValueOf(args, "-filter_complex"),
            "[0:v:0]fps=30,split=4[s0][s1][s2][s3];"
            "[s0]scale=1280:720,setdar=dar=16/9:max=1000000,format=yuv420p[v0];"
            "[s1]scale=854:480,setdar=dar=16/9:max=1000000,format=yuv420p[v1];"
            "[s2]scale=640:360,split=2[r2][tsrc];"
            "[r2]setdar=dar=16/9:max=1000000,format=yuv420p[v2];"
            "[s3]scale=426:240,setdar=dar=16/9:max=1000000,format=yuv420p[v3];"
            "[tsrc]setpts=PTS-STARTPTS,split=2[tfirst][tpick];"
            "[tfirst]trim=end_frame=1,setsar=1[t0];"
            "[tpick]trim=start=6.000,trim=end_frame=50,setsar=1,thumbnail=50[t1];"
            "[t0][t1]concat=n=2:v=1:a=0[thumb]");
  // The DASH output is unchanged; the thumbnail's options follow it.
  auto dash_end = std::find(args.begin(), args.end(), "file:/out/manifest.mpd");
  ASSERT_NE(dash_end, args.end());
  std::vector<std::string> before(args.begin(), dash_end + 1);
  auto without_graph = [](std::vector<std::string> v) {
    auto it = std::find(v.begin(), v.end(), "-filter_complex");
    if (it != v.end() && it + 1 != v.end()) *(it + 1) = "GRAPH";
    return v;
  };
  EXPECT_EQ(without_graph(before), without_graph(plain));
  std::vector<std::string> after(dash_end + 1, args.end());
  EXPECT_EQ(after, (std::vector<std::string>{"-map", "[thumb]", "-fps_mode", "passthrough",
                                             "-frames:v", "2", "-q:v", "3", "-map_metadata", "-1",
                                             "file:/out/thumbnail-%d.jpg"}));

  // A single rung of the thumbnail's size: the split comes after its scale.
  MediaInfo small = Source(320, 180, /*audio=*/false);
  args = BuildLadderCommand("ffmpeg", "/in/source", small, SelectLadder(small), "/out", 0.0);
  EXPECT_EQ(ValueOf(args, "-filter_complex"),
            "[0:v:0]fps=30,scale=320:180,split=2[r0][tsrc];"
            "[r0]setdar=dar=16/9:max=1000000,format=yuv420p[v0];"
            "[tsrc]setpts=PTS-STARTPTS,split=2[tfirst][tpick];"
            "[tfirst]trim=end_frame=1,setsar=1[t0];"
            "[tpick]trim=start=0.000,trim=end_frame=50,setsar=1,thumbnail=50[t1];"
            "[t0][t1]concat=n=2:v=1:a=0[thumb]");
}

TEST(LadderCommandTest, StoryboardIsATiledBranchAndAThirdOutput) {
  MediaInfo info = Source(1280, 720, /*audio=*/true);  // 12 s
  std::vector<Rung> ladder = SelectLadder(info);
  std::optional<StoryboardLayout> layout = PlanStoryboard(info);
  ASSERT_TRUE(layout.has_value());
  std::vector<std::string> thumb_only =
      BuildLadderCommand("ffmpeg", "/in/source", info, ladder, "/out", /*thumbnail_at=*/6.0);
  std::vector<std::string> args = BuildLadderCommand("ffmpeg", "/in/source", info, ladder, "/out",
                                                     /*thumbnail_at=*/6.0, layout);

  EXPECT_EQ(CountOf(args, "-i"), 1);
  // One more branch of the main split: a frame a second, 160x90, tiled 10x2;
  // the first frame on a canvas of that size goes out first.
  EXPECT_EQ(ValueOf(args, "-filter_complex"),
            "[0:v:0]fps=30,split=5[s0][s1][s2][s3][s4];"
            "[s0]scale=1280:720,setdar=dar=16/9:max=1000000,format=yuv420p[v0];"
            "[s1]scale=854:480,setdar=dar=16/9:max=1000000,format=yuv420p[v1];"
            "[s2]scale=640:360,split=2[r2][tsrc];"
            "[r2]setdar=dar=16/9:max=1000000,format=yuv420p[v2];"
            "[s3]scale=426:240,setdar=dar=16/9:max=1000000,format=yuv420p[v3];"
            "[tsrc]setpts=PTS-STARTPTS,split=2[tfirst][tpick];"
            "[tfirst]trim=end_frame=1,setsar=1[t0];"
            "[tpick]trim=start=6.000,trim=end_frame=50,setsar=1,thumbnail=50[t1];"
            "[t0][t1]concat=n=2:v=1:a=0[thumb];"
            "[s4]setpts=PTS-STARTPTS,split=2[sbfirst][sbtiles];"
            "[sbfirst]trim=end_frame=1,scale=160:90,setsar=1,pad=1600:180[sb0];"
            "[sbtiles]fps=1/1,scale=160:90,setsar=1,tile=10x2[sb1];"
            "[sb0][sb1]concat=n=2:v=1:a=0,setpts=N/TB[storyboard]");
  // Everything else is as without it; the storyboard's output comes last.
  auto sheet = std::find(args.begin(), args.end(), "[storyboard]");
  ASSERT_NE(sheet, args.end());
  std::vector<std::string> before(args.begin(), sheet - 1);
  auto without_graph = [](std::vector<std::string> v) {
    auto it = std::find(v.begin(), v.end(), "-filter_complex");
    if (it != v.end() && it + 1 != v.end()) *(it + 1) = "GRAPH";
    return v;
  };
  EXPECT_EQ(without_graph(before), without_graph(thumb_only));
  EXPECT_EQ(std::vector<std::string>(sheet - 1, args.end()),
            (std::vector<std::string>{"-map", "[storyboard]", "-fps_mode", "passthrough",
                                      "-frames:v", "2", "-q:v", "5", "-map_metadata", "-1",
                                      "file:/out/storyboard-%d.jpg"}));

  // Without a thumbnail, one small rung: the split has just the two branches.
  MediaInfo small = Source(320, 180, /*audio=*/false);
  small.duration_seconds = 250;  // a tile every 3 s, 84 of them
  args = BuildLadderCommand("ffmpeg", "/in/source", small, SelectLadder(small), "/out",
                            std::nullopt, PlanStoryboard(small));
  EXPECT_EQ(ValueOf(args, "-filter_complex"),
            "[0:v:0]fps=30,split=2[s0][s1];"
            "[s0]scale=320:180,setdar=dar=16/9:max=1000000,format=yuv420p[v0];"
            "[s1]setpts=PTS-STARTPTS,split=2[sbfirst][sbtiles];"
            "[sbfirst]trim=end_frame=1,scale=160:90,setsar=1,pad=1600:810[sb0];"
            "[sbtiles]fps=1/3,scale=160:90,setsar=1,tile=10x9[sb1];"
            "[sb0][sb1]concat=n=2:v=1:a=0,setpts=N/TB[storyboard]");
}

TEST(LadderCommandTest, ThumbnailBranchScalesWhenNoRungHasItsSize) {
  // A portrait source: its thumbnail is 360 lines high (202x360), its rungs
  // are named by their short side (360x640, ...), so none has that size.
  MediaInfo info = Source(1080, 1920, /*audio=*/false);
  std::vector<Rung> ladder = SelectLadder(info);
  int width, height;
  ThumbnailSize(info, &width, &height);
  for (const Rung& rung : ladder) {
    ASSERT_FALSE(rung.width == width && rung.height == height) << rung.name;
  }
  std::vector<std::string> args =
      BuildLadderCommand("ffmpeg", "/in/source", info, ladder, "/out", 1.0);
  std::string graph = ValueOf(args, "-filter_complex");
  EXPECT_THAT(graph, ::testing::HasSubstr(absl::StrCat(",split=", ladder.size() + 1, "[s0]")));
  EXPECT_THAT(graph, ::testing::HasSubstr(absl::StrCat(
                         "[s", ladder.size(), "]setpts=PTS-STARTPTS,split=2[tfirst][tpick];",
                         "[tfirst]trim=end_frame=1,scale=", width, ":", height, ",setsar=1[t0];")));
  EXPECT_THAT(graph, Not(::testing::HasSubstr("[tsrc]")));
}

TEST(LadderCommandTest, FrameRateIsConstantRoundedAndCapped) {
  MediaInfo ntsc = Source(640, 360, true, 29.97);
  EXPECT_THAT(ValueOf(BuildLadderCommand("ffmpeg", "/s", ntsc, SelectLadder(ntsc), "/o"),
                      "-filter_complex"),
              ::testing::StartsWith("[0:v:0]fps=30,"));
  MediaInfo fast = Source(640, 360, true, 120);
  EXPECT_THAT(ValueOf(BuildLadderCommand("ffmpeg", "/s", fast, SelectLadder(fast), "/o"),
                      "-filter_complex"),
              ::testing::StartsWith("[0:v:0]fps=60,"));
}

TEST(LadderCommandTest, PathsWithColonsAndSpacesStayOneArgument) {
  MediaInfo info = Source(320, 180, false);
  std::vector<std::string> args =
      BuildLadderCommand("ffmpeg", "/in/a b:c.mp4", info, SelectLadder(info), "/out dir");
  EXPECT_EQ(ValueOf(args, "-i"), "file:/in/a b:c.mp4");
  EXPECT_EQ(args.back(), "file:/out dir/manifest.mpd");
}

TEST(ThumbnailCommandTest, SeeksScalesAndWritesOneFrame) {
  MediaInfo info = Source(1920, 1080, true);
  std::vector<std::string> args = BuildThumbnailCommand("ffmpeg", "/in/source", info, 6, "/out");
  EXPECT_EQ(ValueOf(args, "-ss"), "6.000");
  EXPECT_EQ(ValueOf(args, "-i"), "file:/in/source");
  // The seek is an input option: before -i.
  EXPECT_LT(std::find(args.begin(), args.end(), "-ss"), std::find(args.begin(), args.end(), "-i"));
  EXPECT_EQ(ValueOf(args, "-vf"), "scale=640:360,setsar=1,thumbnail=50");
  EXPECT_EQ(ValueOf(args, "-frames:v"), "1");
  EXPECT_EQ(args.back(), "file:/out/thumbnail.jpg");
}

TEST(ThumbnailCommandTest, SizeKeepsAspectAndNeverUpscales) {
  int width, height;
  ThumbnailSize(Source(1920, 1080, false), &width, &height);
  EXPECT_EQ(width, 640);
  EXPECT_EQ(height, 360);
  ThumbnailSize(Source(1080, 1920, false), &width, &height);
  EXPECT_EQ(width, 202);
  EXPECT_EQ(height, 360);
  ThumbnailSize(Source(320, 180, false), &width, &height);
  EXPECT_EQ(width, 320);
  EXPECT_EQ(height, 180);
  ThumbnailSize(Source(171, 97, false), &width, &height);
  EXPECT_EQ(width, 170);
  EXPECT_EQ(height, 96);
}

TEST(OutputNamesTest, EveryNameTheMuxerWritesIsAValidContentName) {
  // The dash muxer's names for our templates, for stream indexes up to 5 (five
  // rungs plus audio) and segment numbers up to the 5-digit maximum.
  std::vector<std::string> names = {
      std::string(kDashManifestName),     std::string(kHlsMasterName),
      std::string(kThumbnailName),        std::string(kLadderStoryboardFirstName),
      std::string(kLadderStoryboardName), std::string(kStoryboardImageName),
      std::string(kStoryboardTrackName)};
  for (int n = 0; n <= 5; ++n) {
    names.push_back(absl::StrCat("media_", n, ".m3u8"));
    names.push_back(absl::StrCat("init-", n, ".m4s"));
    names.push_back(absl::StrCat("chunk-", n, "-00001.m4s"));
    names.push_back(absl::StrCat("chunk-", n, "-99999.m4s"));
  }
  for (const std::string& name : names) EXPECT_TRUE(IsValidContentName(name)) << name;
}

TEST(UploadOrderTest, ManifestsComeLastTheMasterAfterWhatItNames) {
  std::vector<std::string> order =
      UploadOrder({"chunk-0-00001.m4s", "init-0.m4s", "manifest.mpd", "master.m3u8", "media_0.m3u8",
                   "media_1.m3u8", "thumbnail.jpg", "chunk-1-00001.m4s", "init-1.m4s"});
  EXPECT_THAT(order, ::testing::ElementsAre("chunk-0-00001.m4s", "init-0.m4s", "thumbnail.jpg",
                                            "chunk-1-00001.m4s", "init-1.m4s", "media_0.m3u8",
                                            "media_1.m3u8", "manifest.mpd", "master.m3u8"));
}

}  // namespace
}  // namespace streamgrid
