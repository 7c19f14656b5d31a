#include "storage/hint_store.h"

#include <filesystem>
#include <fstream>
#include <set>

#include "gtest/gtest.h"
#include "storage/test_util.h"

namespace streamgrid::storage {
namespace {

using testing::TempDir;

const std::string kVideo = "01hx5v0000000000000000000a";
const std::string kOther = "01hx5v0000000000000000000b";
const std::string kSha(64, 'a');

Hint MakeHint(std::string video, std::string name, std::string node) {
  return {.video_id = std::move(video),
          .name = std::move(name),
          .intended_node = std::move(node),
          .size = 5,
          .sha256 = kSha};
}

std::vector<std::string> Names(const HintPage& page) {
  std::vector<std::string> names;
  for (const Hint& h : page.hints) names.push_back(h.name + "@" + h.intended_node);
  return names;
}

TEST(HintStoreTest, AddFindRemoveAndSurviveReopen) {
  TempDir dir;
  {
    auto store = HintStore::Open(dir.path() / "hints");
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Add(MakeHint(kVideo, "a", "127.0.0.1:9101")).ok());
    ASSERT_TRUE((*store)->Add(MakeHint(kVideo, "b", "127.0.0.1:9102")).ok());
    ASSERT_TRUE((*store)->Add(MakeHint(kOther, "c", "127.0.0.1:9101")).ok());
    EXPECT_EQ((*store)->size(), 3u);
    std::optional<Hint> found = (*store)->Find(kVideo, "a", "127.0.0.1:9101");
    ASSERT_TRUE(found);
    EXPECT_EQ(found->sha256, kSha);
    EXPECT_GT(found->created_unix_ms, 0);
    EXPECT_FALSE((*store)->Find(kVideo, "a", "127.0.0.1:9102"));
    EXPECT_TRUE((*store)->HasKey(kVideo, "b"));
    EXPECT_FALSE((*store)->HasKey(kVideo, "c"));
    ASSERT_TRUE((*store)->Remove(kVideo, "b", "127.0.0.1:9102").ok());
    // Removing what is not there is fine.
    ASSERT_TRUE((*store)->Remove(kVideo, "b", "127.0.0.1:9102").ok());
  }
  auto reopened = HintStore::Open(dir.path() / "hints");
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->size(), 2u);
  EXPECT_TRUE((*reopened)->Find(kVideo, "a", "127.0.0.1:9101"));
  EXPECT_TRUE((*reopened)->Find(kOther, "c", "127.0.0.1:9101"));
  EXPECT_FALSE((*reopened)->Find(kVideo, "b", "127.0.0.1:9102"));
  // Sequence numbers keep increasing after a restart.
  ASSERT_TRUE((*reopened)->Add(MakeHint(kVideo, "d", "n4")).ok());
  auto page = (*reopened)->List("", "", 0);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(Names(*page),
            (std::vector<std::string>{"a@127.0.0.1:9101", "c@127.0.0.1:9101", "d@n4"}));
}

TEST(HintStoreTest, ANewerHintReplacesTheOlderAndMovesToTheEnd) {
  TempDir dir;
  auto store = *HintStore::Open(dir.path());
  ASSERT_TRUE(store->Add(MakeHint(kVideo, "a", "n1")).ok());
  ASSERT_TRUE(store->Add(MakeHint(kVideo, "b", "n1")).ok());
  Hint newer = MakeHint(kVideo, "a", "n1");
  newer.sha256 = std::string(64, 'B');  // normalized to lower case
  ASSERT_TRUE(store->Add(newer).ok());
  EXPECT_EQ(store->size(), 2u);
  EXPECT_EQ(store->Find(kVideo, "a", "n1")->sha256, std::string(64, 'b'));
  EXPECT_EQ(Names(*store->List("", "", 0)), (std::vector<std::string>{"b@n1", "a@n1"}));
}

TEST(HintStoreTest, PagesInOrderAndFiltersByNode) {
  TempDir dir;
  auto store = *HintStore::Open(dir.path());
  std::vector<std::string> want_n1;
  for (int i = 0; i < 25; ++i) {
    const std::string node = i % 3 == 0 ? "n1" : "n2";
    const std::string name = "f" + std::to_string(100 + i);
    ASSERT_TRUE(store->Add(MakeHint(kVideo, name, node)).ok());
    if (node == "n1") want_n1.push_back(name + "@n1");
  }
  std::vector<std::string> all;
  std::string token;
  int pages = 0;
  do {
    auto page = store->List("", token, 7);
    ASSERT_TRUE(page.ok());
    EXPECT_LE(page->hints.size(), 7u);
    for (auto& n : Names(*page)) all.push_back(n);
    token = page->next_page_token;
    ASSERT_LT(++pages, 10);
  } while (!token.empty());
  EXPECT_EQ(all.size(), 25u);
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), 25u);

  std::vector<std::string> n1;
  token.clear();
  do {
    auto page = store->List("n1", token, 2);
    ASSERT_TRUE(page.ok());
    for (auto& n : Names(*page)) n1.push_back(n);
    token = page->next_page_token;
  } while (!token.empty());
  EXPECT_EQ(n1, want_n1);
  EXPECT_EQ(store->List("", "x1", 0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(HintStoreTest, RemoveKeyAndVideo) {
  TempDir dir;
  auto store = *HintStore::Open(dir.path());
  ASSERT_TRUE(store->Add(MakeHint(kVideo, "a", "n1")).ok());
  ASSERT_TRUE(store->Add(MakeHint(kVideo, "a", "n2")).ok());
  ASSERT_TRUE(store->Add(MakeHint(kVideo, "b", "n1")).ok());
  ASSERT_TRUE(store->Add(MakeHint(kOther, "a", "n1")).ok());
  ASSERT_TRUE(store->RemoveKey(kVideo, "a").ok());
  EXPECT_EQ(store->size(), 2u);
  EXPECT_FALSE(store->HasKey(kVideo, "a"));
  ASSERT_TRUE(store->RemoveVideo(kVideo).ok());
  EXPECT_EQ(store->size(), 1u);
  EXPECT_TRUE(store->HasKey(kOther, "a"));
  auto reopened = *HintStore::Open(dir.path());
  EXPECT_EQ(reopened->size(), 1u);
}

TEST(HintStoreTest, RefusesBadInput) {
  TempDir dir;
  auto store = *HintStore::Open(dir.path());
  EXPECT_EQ(store->Add(MakeHint("../x", "a", "n1")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Add(MakeHint(kVideo, "../a", "n1")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Add(MakeHint(kVideo, "a", "")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Add(MakeHint(kVideo, "a", "n 1")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Add(MakeHint(kVideo, "a", "n1\nx")).code(), absl::StatusCode::kInvalidArgument);
  Hint bad_sha = MakeHint(kVideo, "a", "n1");
  bad_sha.sha256 = "abc";
  EXPECT_EQ(store->Add(bad_sha).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->size(), 0u);
}

TEST(HintStoreTest, OpenDropsTempFilesAndGarbage) {
  TempDir dir;
  {
    auto store = *HintStore::Open(dir.path());
    ASSERT_TRUE(store->Add(MakeHint(kVideo, "a", "n1")).ok());
  }
  std::ofstream(dir.path() / ".tmp-abc") << "half";
  std::ofstream(dir.path() / "garbage") << "not a hint";
  auto store = *HintStore::Open(dir.path());
  EXPECT_EQ(store->size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / ".tmp-abc"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "garbage"));
  EXPECT_TRUE(testing::TempFiles(dir.path()).empty());
}

}  // namespace
}  // namespace streamgrid::storage
