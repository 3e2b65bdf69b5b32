// Unit tests for evwheel::FramedCodec and evwheel::SeedCodec — the wire formats described in
// include/evwheel/codec.hpp.
//
// Frames are built with the codec's own encode_header() (plus the payload) and also by hand
// from the byte layout in the header comment, so an encoder and decoder that agree on a wrong
// format are still caught.  A seeded randomised test feeds random frame sequences, split at
// random points, through a reassembly loop like a connection's.
#include <doctest/doctest.h>

#include "evwheel/codec.hpp"

#include <cstddef>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using evwheel::Codec;
using evwheel::CodecState;
using evwheel::FramedCodec;
using evwheel::Frame;
using evwheel::FrameType;
using evwheel::SeedCodec;

// decode() with a fresh state.  The framed and seed codecs never write to their input, so a
// read-only view may stand in for the writable bytes a connection passes.
std::ptrdiff_t decode(const Codec& codec, std::string_view input, Frame& frame) {
  CodecState state;
  return codec.decode(const_cast<char*>(input.data()), input.size(), frame, state, 0);
}

// A decoded frame, copied out of the input so it survives the input being erased.
struct Decoded {
  FrameType type;
  std::string payload;
  bool operator==(const Decoded& other) const { return type == other.type && payload == other.payload; }
};

const char* type_name(FrameType type) {
  switch (type) {
    case FrameType::data: return "data";
    case FrameType::ping: return "ping";
    case FrameType::pong: return "pong";
    case FrameType::close: return "close";
  }
  return "?";
}

// The whole frame (header and payload) as the codec encodes it; fails the test if it refuses.
std::string encode(const Codec& codec, FrameType type, std::string_view payload) {
  char header[Codec::kMaxHeader];
  int n = codec.encode_header(type, evwheel::MessageType::binary, payload.size(), nullptr, header);
  REQUIRE_MESSAGE(n > 0, "encode_header refused a ", type_name(type), " frame of ", payload.size(), " bytes");
  REQUIRE(static_cast<std::size_t>(n) <= Codec::kMaxHeader);
  return std::string(header, static_cast<std::size_t>(n)) + std::string(payload);
}

// A framed header built by hand from the layout in codec.hpp: uint32 BE length, uint8 type.
std::string framed_header(uint32_t length, uint8_t type) {
  std::string h;
  h += static_cast<char>(length >> 24);
  h += static_cast<char>(length >> 16);
  h += static_cast<char>(length >> 8);
  h += static_cast<char>(length);
  h += static_cast<char>(type);
  return h;
}

std::string payload_of(std::size_t size, uint32_t salt = 0) {
  std::string p(size, '\0');
  for (std::size_t i = 0; i < size; ++i) p[i] = static_cast<char>((i * 131 + salt * 7 + 3) & 0xff);
  return p;
}

// The reassembly loop of a connection: append what arrives, decode whole frames off the front
// while there are any, erase what was consumed.  Returns false on a protocol error.
struct Reassembler {
  const Codec& codec;
  std::string pending;
  std::vector<Decoded> frames;

  bool feed(std::string_view bytes) {
    pending.append(bytes.data(), bytes.size());
    std::size_t consumed = 0;
    for (;;) {
      Frame frame;
      std::ptrdiff_t n = decode(codec, std::string_view(pending).substr(consumed), frame);
      if (n < 0) return false;
      if (n == 0) break;
      REQUIRE(static_cast<std::size_t>(n) <= pending.size() - consumed);
      frames.push_back({frame.type, std::string(frame.payload)});
      consumed += static_cast<std::size_t>(n);
    }
    pending.erase(0, consumed);
    return true;
  }
};

// Decodes `wire` fed one byte at a time and checks decode() says "need more" (0) for every
// strict prefix of each frame and returns the frame's whole length once it is complete.
void check_slow_drip(const Codec& codec, std::string_view wire, std::size_t frame_size) {
  Frame frame;
  for (std::size_t len = 0; len < frame_size; ++len) {
    std::ptrdiff_t n = decode(codec, wire.substr(0, len), frame);
    if (n != 0) {
      FAIL_CHECK("decode of a ", len, "-byte prefix of a ", frame_size, "-byte frame returned ", n, ", expected 0");
      return;
    }
  }
  CHECK(decode(codec, wire.substr(0, frame_size), frame) == static_cast<std::ptrdiff_t>(frame_size));
}

}  // namespace

// --- framed ------------------------------------------------------------------------------

TEST_CASE("framed: data, ping and pong frames of 0, 1, 5, 65536 and max_frame bytes round-trip") {
  for (uint32_t max_frame : {FramedCodec::kDefaultMaxFrame, 65536u, 70000u}) {
    FramedCodec codec(max_frame);
    for (FrameType type : {FrameType::data, FrameType::ping, FrameType::pong}) {
      for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{5}, std::size_t{65536}, std::size_t{max_frame}}) {
        CAPTURE(max_frame);
        CAPTURE(type_name(type));
        CAPTURE(size);
        std::string payload = payload_of(size, static_cast<uint32_t>(type));
        std::string wire = encode(codec, type, payload);
        CHECK(wire.size() == FramedCodec::kHeaderSize + size);
        // The header is exactly the documented layout.
        CHECK(wire.substr(0, 5) == framed_header(static_cast<uint32_t>(size), static_cast<uint8_t>(type)));

        Frame frame;
        REQUIRE(decode(codec, wire, frame) == static_cast<std::ptrdiff_t>(wire.size()));
        CHECK(frame.type == type);
        CHECK(frame.payload.size() == size);
        CHECK(frame.payload == payload);
        // The payload is a view into the given bytes, not a copy.
        if (size > 0) CHECK(frame.payload.data() == wire.data() + FramedCodec::kHeaderSize);
      }
    }
  }
}

TEST_CASE("framed: decode needs more bytes for every strict prefix of a frame (slow drip)") {
  FramedCodec codec;
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{5}, std::size_t{65536},
                           std::size_t{FramedCodec::kDefaultMaxFrame}}) {
    for (FrameType type : {FrameType::data, FrameType::ping, FrameType::pong}) {
      CAPTURE(size);
      CAPTURE(type_name(type));
      std::string wire = encode(codec, type, payload_of(size));
      check_slow_drip(codec, wire, wire.size());
      // Trailing bytes of a following frame do not change the answer for the first one.
      std::string two = wire + encode(codec, FrameType::pong, "xyz");
      Frame frame;
      CHECK(decode(codec, two, frame) == static_cast<std::ptrdiff_t>(wire.size()));
      CHECK(frame.type == type);
      CHECK(frame.payload.size() == size);
    }
  }
}

TEST_CASE("framed: two and three concatenated frames decode one by one") {
  FramedCodec codec;
  std::string a = encode(codec, FrameType::data, "hello");
  std::string b = encode(codec, FrameType::ping, "\x01\x02\x03\x04\x05\x06\x07\x08");
  std::string c = encode(codec, FrameType::pong, "");

  Frame frame;
  std::string two = a + b;
  REQUIRE(decode(codec, two, frame) == static_cast<std::ptrdiff_t>(a.size()));
  CHECK(frame.type == FrameType::data);
  CHECK(frame.payload == "hello");
  std::string_view rest = std::string_view(two).substr(a.size());
  REQUIRE(decode(codec, rest, frame) == static_cast<std::ptrdiff_t>(b.size()));
  CHECK(frame.type == FrameType::ping);
  CHECK(frame.payload == "\x01\x02\x03\x04\x05\x06\x07\x08");
  CHECK(decode(codec, rest.substr(b.size()), frame) == 0);

  std::string three = c + a + b;
  std::string_view view = three;
  std::vector<Decoded> got;
  while (!view.empty()) {
    std::ptrdiff_t n = decode(codec, view, frame);
    REQUIRE(n > 0);
    got.push_back({frame.type, std::string(frame.payload)});
    view.remove_prefix(static_cast<std::size_t>(n));
  }
  std::vector<Decoded> want = {{FrameType::pong, ""}, {FrameType::data, "hello"},
                               {FrameType::ping, "\x01\x02\x03\x04\x05\x06\x07\x08"}};
  CHECK(got == want);
}

TEST_CASE("framed: a length of max_frame + 1 is a protocol error judged from the 4 length bytes alone") {
  for (uint32_t max_frame : {1u, 100u, FramedCodec::kDefaultMaxFrame}) {
    CAPTURE(max_frame);
    FramedCodec codec(max_frame);
    Frame frame;
    for (uint8_t type : {uint8_t{0}, uint8_t{1}, uint8_t{2}}) {
      std::string header = framed_header(max_frame + 1, type);
      // Fewer than 4 bytes cannot be judged yet; the length alone, without the type byte or
      // any payload, is refused at once (a seed "ping" read as a length never waits).
      for (std::size_t len = 0; len < 4; ++len)
        CHECK(decode(codec, std::string_view(header).substr(0, len), frame) == 0);
      CHECK(decode(codec, std::string_view(header).substr(0, 4), frame) == -1);
      CHECK(decode(codec, header, frame) == -1);
      CHECK(decode(codec, header + "abc", frame) == -1);
      // The largest length the header can express too.
      CHECK(decode(codec, framed_header(0xffffffffu, type), frame) == -1);
      // Exactly max_frame is fine (incomplete, so 0).
      CHECK(decode(codec, framed_header(max_frame, type), frame) == 0);
    }
  }
}

TEST_CASE("framed: a seed peer's \"ping\" or \"pong\" is a protocol error on its 4th byte") {
  FramedCodec codec;
  Frame frame;
  for (std::string token : {"ping", "pong"}) {
    CAPTURE(token);
    for (std::size_t len = 0; len < 4; ++len) CHECK(decode(codec, token.substr(0, len), frame) == 0);
    CHECK(decode(codec, token, frame) == -1);
    CHECK(decode(codec, token + token, frame) == -1);
  }
}

TEST_CASE("seed: a framed peer's frame is a protocol error on its first byte") {
  SeedCodec codec;
  FramedCodec framed;
  Frame frame;
  for (FrameType type : {FrameType::data, FrameType::ping, FrameType::pong}) {
    std::string wire = encode(framed, type, "12345678");
    CHECK(decode(codec, wire.substr(0, 1), frame) == -1);
    CHECK(decode(codec, wire, frame) == -1);
  }
}

TEST_CASE("framed: an unknown type byte (3, 255) is a protocol error") {
  FramedCodec codec;
  Frame frame;
  for (uint8_t type : {uint8_t{3}, uint8_t{4}, uint8_t{0x80}, uint8_t{255}}) {
    CAPTURE(static_cast<int>(type));
    CHECK(decode(codec, framed_header(0, type), frame) == -1);            // complete, empty
    CHECK(decode(codec, framed_header(3, type) + "abc", frame) == -1);    // complete, with payload
    CHECK(decode(codec, framed_header(100, type), frame) == -1);          // payload still to come
  }
}

TEST_CASE("framed: encode_header refuses a payload above max_frame and accepts exactly max_frame") {
  char header[Codec::kMaxHeader];
  FramedCodec small(100);
  CHECK(small.max_frame() == 100);
  CHECK(small.encode_header(FrameType::data, evwheel::MessageType::binary, 100, nullptr, header) == 5);
  CHECK(small.encode_header(FrameType::data, evwheel::MessageType::binary, 101, nullptr, header) == -1);
  CHECK(small.encode_header(FrameType::ping, evwheel::MessageType::binary, 101, nullptr, header) == -1);
  CHECK(small.encode_header(FrameType::pong, evwheel::MessageType::binary, 1000000, nullptr, header) == -1);

  FramedCodec codec;
  CHECK(codec.max_frame() == FramedCodec::kDefaultMaxFrame);
  CHECK(codec.encode_header(FrameType::data, evwheel::MessageType::binary, FramedCodec::kDefaultMaxFrame, nullptr, header) == 5);
  CHECK(codec.encode_header(FrameType::data, evwheel::MessageType::binary, FramedCodec::kDefaultMaxFrame + 1, nullptr, header) == -1);

  // A size_t payload that would wrap the 32-bit length field is refused, not truncated.
  FramedCodec huge(0xffffffffu);
  CHECK(huge.encode_header(FrameType::data, evwheel::MessageType::binary, 0xffffffffu, nullptr, header) == 5);
  if constexpr (sizeof(std::size_t) > 4) {
    CHECK(huge.encode_header(FrameType::data, evwheel::MessageType::binary, std::size_t{1} << 32, nullptr, header) == -1);
    CHECK(huge.encode_header(FrameType::data, evwheel::MessageType::binary, (std::size_t{1} << 32) + 5, nullptr, header) == -1);
  }
}

TEST_CASE("framed: a codec with max_frame 0 throws std::invalid_argument") {
  CHECK_THROWS_AS(FramedCodec(0), std::invalid_argument);
  CHECK_NOTHROW(FramedCodec(1));
}

TEST_CASE("framed: a ping with payload 01..08 is exactly the wire bytes of codec.hpp's example") {
  // codec.hpp: "Example, a ping with payload 01..08:  00 00 00 08 01 01 02 03 04 05 06 07 08"
  const unsigned char expected[] = {0x00, 0x00, 0x00, 0x08, 0x01, 0x01, 0x02,
                                    0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
  std::string want(reinterpret_cast<const char*>(expected), sizeof expected);
  FramedCodec codec;
  std::string payload = "\x01\x02\x03\x04\x05\x06\x07\x08";
  CHECK(encode(codec, FrameType::ping, payload) == want);

  Frame frame;
  REQUIRE(decode(codec, want, frame) == 13);
  CHECK(frame.type == FrameType::ping);
  CHECK(frame.payload == payload);
}

TEST_CASE("framed: name is \"framed\" and a ping carries an 8-byte payload") {
  FramedCodec codec;
  CHECK(codec.name() == "framed");
  CHECK(codec.ping_payload_size() == 8);
}

// --- seed --------------------------------------------------------------------------------

TEST_CASE("seed: \"ping\" and \"pong\" decode as ping and pong with an empty payload") {
  SeedCodec codec;
  Frame frame;
  frame.payload = "junk";
  REQUIRE(decode(codec, "ping", frame) == 4);
  CHECK(frame.type == FrameType::ping);
  CHECK(frame.payload.empty());
  frame.payload = "junk";
  REQUIRE(decode(codec, "pong", frame) == 4);
  CHECK(frame.type == FrameType::pong);
  CHECK(frame.payload.empty());
  // Strict prefixes need more bytes.
  for (std::string_view token : {"ping", "pong"})
    for (std::size_t len = 0; len < 4; ++len) CHECK(decode(codec, token.substr(0, len), frame) == 0);
}

TEST_CASE("seed: \"pingpong\" decodes as two frames") {
  SeedCodec codec;
  std::string_view input = "pingpong";
  Frame frame;
  REQUIRE(decode(codec, input, frame) == 4);
  CHECK(frame.type == FrameType::ping);
  input.remove_prefix(4);
  REQUIRE(decode(codec, input, frame) == 4);
  CHECK(frame.type == FrameType::pong);
  input.remove_prefix(4);
  CHECK(decode(codec, input, frame) == 0);
}

TEST_CASE("seed: every split point of \"pingpongping\" fed incrementally yields ping, pong, ping") {
  SeedCodec codec;
  const std::string wire = "pingpongping";
  const std::vector<Decoded> want = {{FrameType::ping, ""}, {FrameType::pong, ""}, {FrameType::ping, ""}};
  for (std::size_t i = 0; i <= wire.size(); ++i) {
    for (std::size_t j = i; j <= wire.size(); ++j) {
      CAPTURE(i);
      CAPTURE(j);
      Reassembler r{codec, {}, {}};
      REQUIRE(r.feed(std::string_view(wire).substr(0, i)));
      REQUIRE(r.feed(std::string_view(wire).substr(i, j - i)));
      REQUIRE(r.feed(std::string_view(wire).substr(j)));
      CHECK(r.frames == want);
      CHECK(r.pending.empty());
    }
  }
  // And one byte at a time.
  Reassembler r{codec, {}, {}};
  for (char c : wire) REQUIRE(r.feed(std::string_view(&c, 1)));
  CHECK(r.frames == want);
}

TEST_CASE("seed: a byte sequence that cannot become a token is a protocol error as soon as it arrives") {
  SeedCodec codec;
  struct Case {
    std::string stream;       // fed one byte at a time
    std::size_t bad_at;       // the index of the first byte that makes the stream invalid
    std::size_t frames_before;
  };
  const std::vector<Case> cases = {
      {"x", 0, 0},        {"pix", 2, 0},        {"pinx", 3, 0},   {"pongx", 4, 1},
      {"pingpongx", 8, 2}, {"pingpox", 6, 1},   {"pingx", 4, 1},  {"PING", 0, 0},
      {"Ping", 0, 0},     {"pIng", 1, 0},       {"pang", 1, 0},   {"pinG", 3, 0},
      {"ping pong", 4, 1}, {std::string("\0ping", 5), 0, 0},
  };
  for (const Case& c : cases) {
    CAPTURE(c.stream);
    Reassembler r{codec, {}, {}};
    for (std::size_t i = 0; i < c.stream.size(); ++i) {
      CAPTURE(i);
      bool ok = r.feed(std::string_view(c.stream).substr(i, 1));
      if (i < c.bad_at) {
        REQUIRE(ok);
      } else {
        CHECK_FALSE(ok);
        CHECK(r.frames.size() == c.frames_before);
        break;
      }
    }
  }
  // Directly: the garbage is judged without waiting for 4 bytes.
  Frame frame;
  CHECK(decode(codec, "x", frame) == -1);
  CHECK(decode(codec, "pix", frame) == -1);
  CHECK(decode(codec, "PING", frame) == -1);
  CHECK(decode(codec, "pingx", frame) == 4);  // the first token is still whole
}

TEST_CASE("seed: encode_header writes exactly \"ping\"/\"pong\" and refuses data or a payload") {
  SeedCodec codec;
  char header[Codec::kMaxHeader];
  CHECK(codec.encode_header(FrameType::data, evwheel::MessageType::binary, 0, nullptr, header) == -1);
  CHECK(codec.encode_header(FrameType::data, evwheel::MessageType::binary, 5, nullptr, header) == -1);
  CHECK(codec.encode_header(FrameType::ping, evwheel::MessageType::binary, 8, nullptr, header) == -1);
  CHECK(codec.encode_header(FrameType::pong, evwheel::MessageType::binary, 1, nullptr, header) == -1);

  int n = codec.encode_header(FrameType::ping, evwheel::MessageType::binary, 0, nullptr, header);
  REQUIRE(n == 4);
  CHECK(std::string(header, 4) == "ping");
  n = codec.encode_header(FrameType::pong, evwheel::MessageType::binary, 0, nullptr, header);
  REQUIRE(n == 4);
  CHECK(std::string(header, 4) == "pong");
}

TEST_CASE("seed: name is \"seed\" and a ping carries no payload") {
  SeedCodec codec;
  CHECK(codec.name() == "seed");
  CHECK(codec.ping_payload_size() == 0);
  CHECK(FramedCodec().ping_payload_size() == 8);
}

// --- both --------------------------------------------------------------------------------

TEST_CASE("random frame sequences split at random points reassemble to the same frames (both codecs)") {
  std::mt19937_64 rng(20240611);
  auto uniform = [&](std::size_t lo, std::size_t hi) {
    return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
  };
  const FramedCodec framed(4096);
  const SeedCodec seed;
  for (const Codec* codec : {static_cast<const Codec*>(&framed), static_cast<const Codec*>(&seed)}) {
    CAPTURE(codec->name());
    const bool is_seed = codec == &seed;
    std::size_t compared = 0, single_bytes = 0;  // frames checked; rounds fed a byte at a time
    for (int round = 0; round < 300; ++round) {
      CAPTURE(round);
      std::vector<Decoded> frames;
      std::string wire;
      std::size_t count = uniform(0, 60);
      for (std::size_t k = 0; k < count; ++k) {
        Decoded f;
        if (is_seed) {
          f.type = uniform(0, 1) ? FrameType::ping : FrameType::pong;
        } else {
          f.type = static_cast<FrameType>(uniform(0, 2));
          std::size_t size = uniform(0, 9) == 0 ? uniform(0, 4096) : uniform(0, 24);
          f.payload.resize(size);
          for (char& c : f.payload) c = static_cast<char>(uniform(0, 255));
        }
        wire += encode(*codec, f.type, f.payload);
        frames.push_back(std::move(f));
      }
      // Cut the stream at random points, sometimes into single bytes, sometimes in big chunks.
      Reassembler r{*codec, {}, {}};
      std::size_t max_chunk = uniform(0, 3) == 0 ? 1 : uniform(1, wire.size() + 1);
      for (std::size_t at = 0; at < wire.size();) {
        std::size_t n = std::min(uniform(0, max_chunk), wire.size() - at);
        REQUIRE(r.feed(std::string_view(wire).substr(at, n)));
        at += n;
      }
      REQUIRE(r.frames.size() == frames.size());
      CHECK(r.frames == frames);
      CHECK(r.pending.empty());
      compared += frames.size();
      single_bytes += max_chunk == 1 && !frames.empty();
    }
    CHECK(compared > 3000);
    CHECK(single_bytes > 10);
  }
}
