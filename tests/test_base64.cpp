// base64 (src/base64.hpp): the RFC 4648 test vectors both ways, round trips of every 1- and
// 2-byte string, and the strict decoder refusing each kind of non-canonical text.
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../src/base64.hpp"

namespace {

std::string encode(std::string_view bytes) {
  std::string out(evwheel::base64_encoded_size(bytes.size()), '?');
  CHECK(evwheel::base64_encode(bytes, out.data()) == out.size());
  return out;
}

// The decoded bytes, or "<refused>" (a value no test decodes to).
std::string decode(std::string_view text, std::size_t capacity = 64) {
  std::vector<uint8_t> out(capacity);
  std::ptrdiff_t n = evwheel::base64_decode(text, out.data(), capacity);
  if (n < 0) return "<refused>";
  return std::string(out.begin(), out.begin() + n);
}

}  // namespace

TEST_CASE("base64 encodes and decodes the RFC 4648 test vectors") {
  const std::vector<std::pair<std::string, std::string>> vectors = {
      {"", ""},         {"f", "Zg=="},        {"fo", "Zm8="},     {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [bytes, text] : vectors) {
    CHECK(encode(bytes) == text);
    CHECK(decode(text) == bytes);
  }
}

TEST_CASE("base64 uses + and / for 62 and 63") {
  CHECK(encode("\xfb\xff") == "+/8=");
  CHECK(decode("+/8=") == "\xfb\xff");
}

TEST_CASE("base64 round-trips every 1- and 2-byte string") {
  for (unsigned first = 0; first < 256; ++first) {
    const std::string one(1, static_cast<char>(first));
    REQUIRE(decode(encode(one)) == one);
    for (unsigned second = 0; second < 256; ++second) {
      const std::string two = one + static_cast<char>(second);
      REQUIRE(decode(encode(two)) == two);
    }
  }
}

TEST_CASE("a Sec-WebSocket-Key decodes to exactly 16 bytes") {
  uint8_t key[16];
  CHECK(evwheel::base64_decode("dGhlIHNhbXBsZSBub25jZQ==", key, sizeof key) == 16);
  CHECK(std::string(reinterpret_cast<char*>(key), 16) == "the sample nonce");
  // 24 characters without padding are 18 bytes: they do not fit, and 12 bytes are too few.
  CHECK(evwheel::base64_decode("dGhlIHNhbXBsZSBub25jZQAA", key, sizeof key) == -1);
  CHECK(evwheel::base64_decode("dGhlIHNhbXBsZSBu", key, sizeof key) == 12);
}

TEST_CASE("base64 decoding refuses a length that is not a multiple of 4") {
  CHECK(decode("Zg=") == "<refused>");
  CHECK(decode("Zg") == "<refused>");
  CHECK(decode("Zm9vY") == "<refused>");
}

TEST_CASE("base64 decoding refuses characters outside the alphabet") {
  CHECK(decode("Zm9v YmFy") == "<refused>");
  CHECK(decode("Zm9vYmF\n") == "<refused>");
  CHECK(decode("-_-_") == "<refused>");  // the URL-safe alphabet
  CHECK(decode(std::string("Zm9\0", 4)) == "<refused>");
  CHECK(decode("Zm9\xff") == "<refused>");
}

TEST_CASE("base64 decoding refuses padding anywhere but the last one or two characters") {
  CHECK(decode("Zg==Zg==") == "<refused>");
  CHECK(decode("Z===") == "<refused>");
  CHECK(decode("====") == "<refused>");
  CHECK(decode("Zg=a") == "<refused>");
  CHECK(decode("=Zm9") == "<refused>");
}

TEST_CASE("base64 decoding refuses non-zero bits under the padding") {
  CHECK(decode("Zh==") == "<refused>");  // 'h' leaves 0001 where "f" has 0000
  CHECK(decode("Zm9=") == "<refused>");  // '9' leaves 01 where "fo" has 00
}

TEST_CASE("base64 decoding refuses output that does not fit") {
  CHECK(decode("Zm9vYmFy", 6) == "foobar");
  CHECK(decode("Zm9vYmFy", 5) == "<refused>");
  CHECK(decode("", 0).empty());
}
