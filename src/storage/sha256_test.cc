#include "storage/sha256.h"

#include <string>

#include "gtest/gtest.h"

namespace streamgrid::storage {
namespace {

TEST(Sha256Test, KnownDigests) {
  EXPECT_EQ(Sha256::HexOf(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256::HexOf("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, IncrementalEqualsOneShot) {
  std::string data;
  for (int i = 0; i < 100000; ++i) data.push_back(static_cast<char>(i * 7));
  Sha256 hasher;
  for (size_t at = 0; at < data.size(); at += 4099) {
    hasher.Update(std::string_view(data).substr(at, 4099));
  }
  EXPECT_EQ(hasher.FinishHex(), Sha256::HexOf(data));
}

TEST(Sha256Test, ResetStartsANewMessage) {
  Sha256 hasher;
  hasher.Update(std::string_view("abc"));
  const Sha256::Digest abc = hasher.Finish();
  EXPECT_EQ(abc[0], 0xba);
  EXPECT_EQ(abc[31], 0xad);
  hasher.Reset();
  hasher.Update(std::string_view("ab"));
  hasher.Update(std::string_view("c"));
  EXPECT_EQ(hasher.Finish(), abc);
  // Also after an unfinished message.
  hasher.Reset();
  hasher.Update(std::string_view("discarded"));
  hasher.Reset();
  EXPECT_EQ(hasher.FinishHex(), Sha256::HexOf(""));
}

TEST(Sha256Test, NormalizeAcceptsOnlySixtyFourHexDigits) {
  const std::string lower(64, 'a');
  EXPECT_EQ(NormalizeSha256Hex(std::string(64, 'A')), lower);
  EXPECT_EQ(NormalizeSha256Hex(lower), lower);
  EXPECT_FALSE(NormalizeSha256Hex(std::string(63, 'a')));
  EXPECT_FALSE(NormalizeSha256Hex(std::string(65, 'a')));
  EXPECT_FALSE(NormalizeSha256Hex(std::string(63, 'a') + "g"));
  EXPECT_FALSE(NormalizeSha256Hex(""));
}

}  // namespace
}  // namespace streamgrid::storage
