// The UTF-8 validator (src/utf8.hpp) against a reference decoder written the plain way
// (tests/utf8_reference.hpp): every 1-, 2- and 3-byte sequence and a sample of
// 4-byte ones, each whole and split at every position, and long mixed texts through the
// 8-bytes-at-a-time ASCII path.
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <random>
#include <string>
#include <string_view>

#include "../src/utf8.hpp"
#include "utf8_reference.hpp"

using evwheel::kUtf8Boundary;
using evwheel::kUtf8Invalid;
using evwheel::Utf8State;
using evwheel::utf8_feed;

namespace {

using utf8_reference::Verdict;

Verdict reference(std::string_view text) { return utf8_reference::judge(text); }

Verdict verdict(Utf8State state) {
  if (state == kUtf8Invalid) return Verdict::invalid;
  return state == kUtf8Boundary ? Verdict::complete : Verdict::incomplete;
}

std::string name(Verdict v) {
  return v == Verdict::complete ? "complete" : v == Verdict::incomplete ? "incomplete" : "invalid";
}

std::string hex(std::string_view bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    out += kDigits[byte >> 4];
    out += kDigits[byte & 0xf];
    out += ' ';
  }
  return out;
}

// Fails the test when the validator, given `text` whole or cut in two anywhere, disagrees with
// the reference.  Returns whether all agreed (the exhaustive loops stop at the first failure).
bool agrees(std::string_view text) {
  const Utf8State whole = utf8_feed(kUtf8Boundary, text);
  const Verdict expected = reference(text);
  if (verdict(whole) != expected) {
    FAIL_CHECK("bytes ", hex(text), ": validator says ", name(verdict(whole)), ", reference ", name(expected));
    return false;
  }
  for (std::size_t cut = 0; cut <= text.size(); ++cut) {
    const Utf8State split = utf8_feed(utf8_feed(kUtf8Boundary, text.substr(0, cut)), text.substr(cut));
    if (split != whole) {
      FAIL_CHECK("bytes ", hex(text), " cut at ", cut, ": state ", int{split}, ", whole ", int{whole});
      return false;
    }
  }
  return true;
}

}  // namespace

TEST_CASE("the reference decoder itself: known valid and invalid sequences") {
  CHECK(reference("A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80") == Verdict::complete);  // A é € 😀
  CHECK(reference("\xc0\x80") == Verdict::invalid);                                  // overlong NUL
  CHECK(reference("\xed\xa0\x80") == Verdict::invalid);                              // U+D800
  CHECK(reference("\xf4\x90\x80\x80") == Verdict::invalid);                          // U+110000
  CHECK(reference("\xe0\x9f") == Verdict::invalid);                                  // overlong, cut short
  CHECK(reference("\xf4\x8f") == Verdict::incomplete);                               // U+10FFFF's start
}

TEST_CASE("utf8 agrees with the reference on every 1- and 2-byte sequence, whole and split") {
  for (unsigned a = 0; a < 256; ++a) {
    const std::string one(1, static_cast<char>(a));
    REQUIRE(agrees(one));
    for (unsigned b = 0; b < 256; ++b) REQUIRE(agrees(one + static_cast<char>(b)));
  }
}

TEST_CASE("utf8 agrees with the reference on every 3-byte sequence, whole and split") {
  std::string text(3, '\0');
  for (unsigned a = 0; a < 256; ++a) {
    text[0] = static_cast<char>(a);
    for (unsigned b = 0; b < 256; ++b) {
      text[1] = static_cast<char>(b);
      for (unsigned c = 0; c < 256; ++c) {
        text[2] = static_cast<char>(c);
        if (!agrees(text)) return;
      }
    }
  }
}

TEST_CASE("utf8 agrees with the reference on 4-byte sequences: every lead, edge and sampled rest") {
  // Every lead and second byte, with third and fourth bytes from the edges of each class.
  const unsigned edges[] = {0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xe0, 0xf4, 0xff};
  std::string text(4, '\0');
  for (unsigned a = 0; a < 256; ++a) {
    text[0] = static_cast<char>(a);
    for (unsigned b = 0; b < 256; ++b) {
      text[1] = static_cast<char>(b);
      for (unsigned c : edges) {
        text[2] = static_cast<char>(c);
        for (unsigned d : edges) {
          text[3] = static_cast<char>(d);
          if (!agrees(text)) return;
        }
      }
    }
  }
  // And random ones among the 4-byte leads, which the edges above cover only in part.
  std::mt19937 random(4);
  for (int i = 0; i < 1000000; ++i) {
    text[0] = static_cast<char>(0xf0 + random() % 8);
    for (int j = 1; j < 4; ++j) text[static_cast<std::size_t>(j)] = static_cast<char>(0x70 + random() % 0x60);
    if (!agrees(text)) return;
  }
}

TEST_CASE("utf8 on long texts: ASCII runs checked by words still stop at the first bad byte") {
  // Texts of ASCII runs and characters of every length, with now and then a bad byte, checked
  // whole and at every cut, so the word-at-a-time path meets every alignment and boundary.
  const std::string pieces[] = {"abcdefghijklmnopqrstuvwxyz", "0123", "\xc3\xa9", "\xe2\x82\xac",
                                "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf", "\xef\xbf\xbf"};
  const std::string bad[] = {"\x80", "\xc0\xaf", "\xed\xa0\x80", "\xf5", "\xe2\x82", "\xf0\x9f\x98"};
  std::mt19937 random(8);
  for (int i = 0; i < 2000; ++i) {
    std::string text;
    const int count = static_cast<int>(random() % 12);
    for (int j = 0; j < count; ++j) {
      if (random() % 16 == 0) {
        text += bad[random() % std::size(bad)];
      } else {
        text += pieces[random() % std::size(pieces)].substr(0, random() % 2 ? std::string::npos : 32);
      }
    }
    if (!agrees(text)) return;
  }
}

TEST_CASE("utf8 fails fast: the state is invalid right after the first impossible byte") {
  // A long message whose fourth byte is a stray continuation: invalid after 4 bytes already.
  CHECK(utf8_feed(kUtf8Boundary, "abc\x80") == kUtf8Invalid);
  CHECK(utf8_feed(kUtf8Boundary, "\xe0\x80") == kUtf8Invalid);   // overlong at the second byte
  CHECK(utf8_feed(kUtf8Boundary, "\xed\xa0") == kUtf8Invalid);   // a surrogate at the second byte
  CHECK(utf8_feed(kUtf8Boundary, "\xf4\x90") == kUtf8Invalid);   // above U+10FFFF at the second byte
  CHECK(utf8_feed(kUtf8Invalid, "") == kUtf8Invalid);
  CHECK(utf8_feed(kUtf8Invalid, "plain ascii text") == kUtf8Invalid);
}

TEST_CASE("utf8_valid needs a whole last character") {
  CHECK(evwheel::utf8_valid(""));
  CHECK(evwheel::utf8_valid("Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!"));
  CHECK_FALSE(evwheel::utf8_valid("\xce\xba\xe1\xbd\xb9\xcf\x83\xce"));
  CHECK(evwheel::utf8_feed(kUtf8Boundary, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce") != kUtf8Invalid);
}
