// SHA-1 (src/sha1.hpp): the FIPS 180 example vectors, messages whose padding falls on each side
// of a block edge, and incremental hashing of every split equal to the one-shot digest.
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "../src/sha1.hpp"

using evwheel::Sha1;
using evwheel::Sha1Digest;

namespace {

std::string hex(const Sha1Digest& digest) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t byte : digest) {
    out += kDigits[byte >> 4];
    out += kDigits[byte & 0xf];
  }
  return out;
}

// A message whose bytes all differ from their neighbours, so a misplaced piece changes the digest.
std::string varied(std::size_t size) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>((i * 131 + 7) & 0xff);
  return out;
}

}  // namespace

TEST_CASE("sha1 of the FIPS 180 examples: abc, the 448-bit and the 896-bit messages") {
  CHECK(hex(evwheel::sha1("abc")) == "a9993e364706816aba3e25717850c26c9cd0d89d");
  CHECK(hex(evwheel::sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
        "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  CHECK(hex(evwheel::sha1("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                          "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu")) ==
        "a49b2446a02c645bf419f995b67091253a04a259");
}

TEST_CASE("sha1 of one million 'a', fed in pieces of 1000") {
  Sha1 hash;
  const std::string thousand(1000, 'a');
  for (int i = 0; i < 1000; ++i) hash.update(thousand);
  CHECK(hex(hash.finish()) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  CHECK(hex(evwheel::sha1(std::string(1000000, 'a'))) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

TEST_CASE("sha1 of the empty message, with and without an empty update") {
  CHECK(hex(evwheel::sha1("")) == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  Sha1 hash;
  hash.update("");
  CHECK(hex(hash.finish()) == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

TEST_CASE("sha1 where the padding fits in the last block and where it needs one more") {
  // 55 bytes leave room for the 0x80 and the length; 56 do not; 64 fill a block exactly.
  // (Digests from Python's hashlib.)
  CHECK(hex(evwheel::sha1(std::string(55, 'a'))) == "c1c8bbdc22796e28c0e15163d20899b65621d65a");
  CHECK(hex(evwheel::sha1(std::string(56, 'a'))) == "c2db330f6083854c99d4b5bfb6e8f29f201be699");
  CHECK(hex(evwheel::sha1(std::string(63, 'a'))) == "03f09f5b158a7a8cdad920bddc29b81c18a551f5");
  CHECK(hex(evwheel::sha1(std::string(64, 'a'))) == "0098ba824b5c16427bd7a1122a5a442a25ec644d");
  CHECK(hex(evwheel::sha1(std::string(65, 'a'))) == "11655326c708d70319be2610e8a57d9a5b959d3b");
  CHECK(hex(evwheel::sha1(std::string(119, 'a'))) == "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56");
  CHECK(hex(evwheel::sha1(std::string(120, 'a'))) == "f34c1488385346a55709ba056ddd08280dd4c6d6");
  CHECK(hex(evwheel::sha1(std::string(128, 'a'))) == "ad5b3fdbcb526778c2839d2f151ea753995e26a0");
}

TEST_CASE("sha1 fed in two or three pieces, cut anywhere, equals the one-shot digest") {
  for (std::size_t size : {0, 1, 55, 56, 63, 64, 65, 127, 128, 129, 200}) {
    const std::string message = varied(size);
    const Sha1Digest whole = evwheel::sha1(message);
    for (std::size_t cut = 0; cut <= size; ++cut) {
      Sha1 two;
      two.update(std::string_view(message).substr(0, cut));
      two.update(std::string_view(message).substr(cut));
      CHECK_MESSAGE(two.finish() == whole, "size ", size, " cut at ", cut);
      for (std::size_t second = cut; second <= size; second += 7) {
        Sha1 three;
        three.update(std::string_view(message).substr(0, cut));
        three.update(std::string_view(message).substr(cut, second - cut));
        three.update(std::string_view(message).substr(second));
        CHECK_MESSAGE(three.finish() == whole, "size ", size, " cuts at ", cut, " and ", second);
      }
    }
  }
}

TEST_CASE("sha1 fed byte by byte equals the one-shot digest, and finish() starts a new message") {
  const std::string message = varied(300);
  Sha1 hash;
  for (char byte : message) hash.update(std::string_view(&byte, 1));
  CHECK(hash.finish() == evwheel::sha1(message));
  hash.update("abc");
  CHECK(hex(hash.finish()) == "a9993e364706816aba3e25717850c26c9cd0d89d");
}
