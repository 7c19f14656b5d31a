#include "webserver/video_json.h"

#include <gtest/gtest.h>

namespace streamgrid::webserver {
namespace {

VideoRecord Sample() {
  VideoRecord v;
  v.id = "01jc0000000000000000000000";
  v.title = "holiday.mp4";
  v.status = VideoStatus::kReady;
  v.progress = 100;
  v.duration_seconds = 6.5;
  v.renditions = {{"360p", 640, 360, 800000}, {"240p", 426, 240, 420000}};
  v.created_at_ms = 1700000000123;
  v.updated_at_ms = 1700000005000;
  v.storyboard = true;
  return v;
}

TEST(VideoJsonTest, ReadyVideoHasEveryFieldAndItsUrls) {
  nlohmann::json j = VideoToJson(Sample());
  EXPECT_EQ(j["id"], "01jc0000000000000000000000");
  EXPECT_EQ(j["status"], "ready");
  EXPECT_EQ(j["progress"], 100);
  EXPECT_DOUBLE_EQ(j["duration"].get<double>(), 6.5);
  ASSERT_EQ(j["renditions"].size(), 2u);
  EXPECT_EQ(j["renditions"][0]["height"], 360);
  EXPECT_EQ(j["renditions"][1]["bitrate"], 420000);
  EXPECT_TRUE(j["error"].is_null());
  EXPECT_EQ(j["created_at"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(j["dash_url"], "/content/01jc0000000000000000000000/manifest.mpd");
  EXPECT_EQ(j["hls_url"], "/content/01jc0000000000000000000000/master.m3u8");
  EXPECT_EQ(j["storyboard_url"], "/content/01jc0000000000000000000000/storyboard.vtt");
}

TEST(VideoJsonTest, AVideoTranscodedBeforeStoryboardsHasNoStoryboardUrl) {
  VideoRecord v = Sample();
  v.storyboard = false;
  nlohmann::json j = VideoToJson(v);
  EXPECT_EQ(j["dash_url"], "/content/01jc0000000000000000000000/manifest.mpd");
  EXPECT_FALSE(j.contains("storyboard_url"));
}

TEST(VideoJsonTest, FailedVideoCarriesItsErrorAndNoUrls) {
  VideoRecord v = Sample();
  v.status = VideoStatus::kFailed;
  v.error = "ffmpeg: invalid data";
  nlohmann::json j = VideoToJson(v);
  EXPECT_EQ(j["status"], "failed");
  EXPECT_EQ(j["error"], "ffmpeg: invalid data");
  EXPECT_FALSE(j.contains("dash_url"));
  EXPECT_FALSE(j.contains("storyboard_url"));
}

TEST(VideoJsonTest, ProcessingVideoIsPlayableThroughHlsOnceItsPlaylistsAreStored) {
  VideoRecord v = Sample();
  v.status = VideoStatus::kProcessing;
  v.progress = 30;
  nlohmann::json not_yet = VideoToJson(v);
  EXPECT_EQ(not_yet["playable"], false);
  EXPECT_FALSE(not_yet.contains("hls_url"));

  v.playable = true;
  nlohmann::json j = VideoToJson(v);
  EXPECT_EQ(j["playable"], true);
  EXPECT_EQ(j["hls_url"], "/content/01jc0000000000000000000000/master.m3u8");
  // The DASH manifest and the thumbnail are written at the end.
  EXPECT_FALSE(j.contains("dash_url"));
  EXPECT_FALSE(j.contains("thumbnail_url"));
  EXPECT_FALSE(j.contains("storyboard_url"));

  EXPECT_EQ(VideoToJson(Sample())["playable"], true);
  v.status = VideoStatus::kFailed;
  EXPECT_EQ(VideoToJson(v)["playable"], false);
  EXPECT_FALSE(VideoToJson(v).contains("hls_url"));
}

TEST(VideoJsonTest, InvalidUtf8InTitlesDoesNotThrow) {
  VideoRecord v = Sample();
  v.title = "bad\xff\xfe.mp4";
  std::string out;
  ASSERT_NO_THROW(out = DumpJson(VideoToJson(v)));
  EXPECT_NE(out.find("bad"), std::string::npos);
}

}  // namespace
}  // namespace streamgrid::webserver
