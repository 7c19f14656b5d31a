#include "common/ids.h"

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace streamgrid {
namespace {

constexpr char kAlphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
constexpr int64_t kMaxTimestamp = (int64_t{1} << 48) - 1;

}  // namespace

std::string NewVideoIdAt(int64_t unix_millis) {
  // Out-of-range times are clamped so IDs keep sorting sensibly instead of
  // wrapping around.
  uint64_t millis = static_cast<uint64_t>(std::clamp<int64_t>(unix_millis, 0, kMaxTimestamp));

  // 128 bits, big-endian: 48-bit timestamp then 80 random bits.
  std::array<unsigned char, 16> bytes;
  for (int i = 0; i < 6; ++i) bytes[i] = static_cast<unsigned char>(millis >> (8 * (5 - i)));
  if (RAND_bytes(bytes.data() + 6, 10) != 1) {
    // Without a working CSPRNG, IDs could collide; nothing sensible remains.
    std::fputs("streamgrid: RAND_bytes failed; cannot generate video IDs\n", stderr);
    std::abort();
  }

  // 26 base32 digits hold 130 bits; the value occupies the low 128, so the
  // first digit carries only two bits and equal-length IDs sort like numbers.
  std::string id(26, '0');
  for (int digit = 0; digit < 26; ++digit) {
    int value = 0;
    for (int bit = digit * 5 - 2; bit < digit * 5 + 3; ++bit) {
      value <<= 1;
      if (bit >= 0 && (bytes[bit / 8] >> (7 - bit % 8)) & 1) value |= 1;
    }
    id[digit] = kAlphabet[value];
  }
  return id;
}

std::string NewVideoId() { return NewVideoIdAt(NowMillis()); }

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace streamgrid
