// WebSocket frames (src/websocket_frame.hpp): RFC 6455 §5.7's example frames both ways, one
// test per receive rule with the close code it leads to, prefixes of every input, the shortest
// length encodings, masking in pieces, and close payloads.
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "../src/websocket_frame.hpp"

using namespace evwheel::websocket;
using Status = HeaderParse::Status;

namespace {

constexpr uint64_t kMax = 1u << 20;
const MaskKey kRfcKey = {0x37, 0xfa, 0x21, 0x3d};  // the key of §5.7's masked examples

std::string bytes(std::initializer_list<int> list) {
  std::string out;
  for (int b : list) out += static_cast<char>(b);
  return out;
}

HeaderParse parse(const std::string& input, Role receiver = Role::server, uint64_t max_message = kMax) {
  return parse_frame_header(input, receiver, max_message);
}

// The error `input` is refused with, checking that every shorter prefix needs more or gives the
// same error (the rules are checked as soon as their bytes are in, and in one order).
FrameError error_of(const std::string& input, Role receiver = Role::server, uint64_t max_message = kMax) {
  HeaderParse whole = parse(input, receiver, max_message);
  for (std::size_t n = 0; n < input.size(); ++n) {
    HeaderParse prefix = parse(input.substr(0, n), receiver, max_message);
    CHECK_MESSAGE((prefix.status == Status::need_more ||
                   (prefix.status == Status::error && prefix.error == whole.error)),
                  "prefix of ", n, " bytes");
  }
  return whole.status == Status::error ? whole.error : FrameError::none;
}

// A frame's bytes through MessageState as a connection would feed them: the header, then the
// payload in one piece, then the end of the frame; the first error wins.
FrameError feed(MessageState& state, const FrameHeader& header, std::string_view payload, uint64_t so_far = 0,
                uint64_t max_message = kMax) {
  FrameError error = state.on_header(header, so_far, max_message);
  if (error == FrameError::none) error = state.on_payload(payload);
  if (error == FrameError::none) error = state.on_frame_end();
  return error;
}

FrameHeader header(Opcode opcode, bool fin, uint64_t length = 0) {
  FrameHeader h;
  h.opcode = opcode;
  h.fin = fin;
  h.payload_length = length;
  return h;
}

std::string encode(Opcode opcode, bool fin, uint64_t length, const MaskKey* mask = nullptr) {
  char out[kMaxFrameHeader];
  return std::string(out, encode_frame_header(opcode, fin, length, mask, out));
}

}  // namespace

TEST_CASE("RFC 6455 §5.7: the unmasked and masked \"Hello\" text frames") {
  const std::string unmasked = bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
  HeaderParse p = parse(unmasked, Role::client);
  REQUIRE(p.status == Status::header);
  CHECK(p.header.fin);
  CHECK(p.header.opcode == Opcode::text);
  CHECK_FALSE(p.header.masked);
  CHECK(p.header.size == 2);
  CHECK(p.header.payload_length == 5);

  std::string masked = bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  p = parse(masked, Role::server);
  REQUIRE(p.status == Status::header);
  CHECK(p.header.masked);
  CHECK(p.header.mask == kRfcKey);
  CHECK(p.header.size == 6);
  apply_mask(masked.data() + 6, 5, p.header.mask, 0);
  CHECK(masked.substr(6) == "Hello");

  char out[kMaxFrameHeader + 5];
  CHECK(std::string(out, write_frame(Opcode::text, true, "Hello", nullptr, out)) == unmasked);
  CHECK(std::string(out, write_frame(Opcode::text, true, "Hello", &kRfcKey, out)) ==
        bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
}

TEST_CASE("RFC 6455 §5.7: a fragmented text message, ping and pong, 256-byte and 64 KiB lengths") {
  CHECK(encode(Opcode::text, false, 3) == bytes({0x01, 0x03}));
  CHECK(encode(Opcode::continuation, true, 2) == bytes({0x80, 0x02}));
  CHECK(encode(Opcode::ping, true, 5) == bytes({0x89, 0x05}));
  CHECK(encode(Opcode::pong, true, 5, &kRfcKey) == bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d}));
  CHECK(encode(Opcode::binary, true, 256) == bytes({0x82, 0x7e, 0x01, 0x00}));
  CHECK(encode(Opcode::binary, true, 65536) == bytes({0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}));
  HeaderParse p = parse(bytes({0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}), Role::client);
  REQUIRE(p.status == Status::header);
  CHECK(p.header.payload_length == 65536);
  CHECK(p.header.size == 10);
}

TEST_CASE("frame headers are encoded with the shortest length and parse back the same") {
  const uint64_t lengths[] = {0, 1, 125, 126, 127, 65535, 65536, uint64_t{1} << 32, (uint64_t{1} << 63) - 1};
  const std::size_t sizes[] = {2, 2, 2, 4, 4, 4, 10, 10, 10};
  for (std::size_t i = 0; i < std::size(lengths); ++i) {
    for (const MaskKey* mask : {static_cast<const MaskKey*>(nullptr), &kRfcKey}) {
      const std::string encoded = encode(Opcode::binary, i % 2 == 0, lengths[i], mask);
      CHECK(encoded.size() == sizes[i] + (mask ? 4 : 0));
      HeaderParse p = parse_frame_header(encoded, mask ? Role::server : Role::client, UINT64_MAX);
      REQUIRE(p.status == Status::header);
      CHECK(p.header.payload_length == lengths[i]);
      CHECK(p.header.fin == (i % 2 == 0));
      CHECK(p.header.size == encoded.size());
      if (mask) CHECK(p.header.mask == *mask);
    }
  }
}

TEST_CASE("longer length encodings than needed are accepted on receive") {
  HeaderParse p = parse(bytes({0x82, 0x7e, 0x00, 0x05}), Role::client);
  REQUIRE(p.status == Status::header);
  CHECK(p.header.payload_length == 5);
  p = parse(bytes({0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0x05}), Role::client);
  REQUIRE(p.status == Status::header);
  CHECK(p.header.payload_length == 5);
}

TEST_CASE("every proper prefix of a header needs more bytes") {
  const std::string headers[] = {bytes({0x81, 0x85, 1, 2, 3, 4}), bytes({0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4}),
                                 bytes({0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4})};
  for (const std::string& h : headers) {
    for (std::size_t n = 0; n < h.size(); ++n) CHECK(parse(h.substr(0, n)).status == Status::need_more);
    CHECK(parse(h).status == Status::header);
    CHECK(parse(h + "payload").header.size == h.size());
  }
}

TEST_CASE("a client's unmasked frame is refused by the server with 1002") {
  CHECK(error_of(bytes({0x81, 0x05}), Role::server) == FrameError::unmasked);
  CHECK(close_code(FrameError::unmasked) == CloseCode::protocol_error);
}

TEST_CASE("a server's masked frame is refused by the client with 1002") {
  CHECK(error_of(bytes({0x81, 0x85, 1, 2, 3, 4}), Role::client) == FrameError::masked);
  CHECK(close_code(FrameError::masked) == CloseCode::protocol_error);
}

TEST_CASE("RSV1, RSV2 or RSV3 set without a negotiated extension is refused with 1002") {
  for (int rsv : {0x40, 0x20, 0x10, 0x70}) {
    CHECK(error_of(bytes({0x81 | rsv, 0x80, 1, 2, 3, 4})) == FrameError::reserved_bits);
    CHECK(error_of(bytes({0x89 | rsv, 0x80, 1, 2, 3, 4})) == FrameError::reserved_bits);
  }
  CHECK(close_code(FrameError::reserved_bits) == CloseCode::protocol_error);
}

TEST_CASE("opcodes 3-7 and 0xB-0xF are refused with 1002, at the first byte") {
  for (int opcode : {3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf}) {
    CHECK(error_of(bytes({0x80 | opcode})) == FrameError::unknown_opcode);
    CHECK(error_of(bytes({opcode, 0x80, 1, 2, 3, 4})) == FrameError::unknown_opcode);
  }
  for (int opcode : {0, 1, 2, 8, 9, 0xa}) CHECK(error_of(bytes({0x80 | opcode, 0x80, 1, 2, 3, 4})) == FrameError::none);
  CHECK(close_code(FrameError::unknown_opcode) == CloseCode::protocol_error);
}

TEST_CASE("a control frame over 125 bytes is refused with 1002, even in a longer encoding") {
  for (int opcode : {0x8, 0x9, 0xa}) {
    CHECK(error_of(bytes({0x80 | opcode, 0x80 | 125, 1, 2, 3, 4})) == FrameError::none);
    CHECK(error_of(bytes({0x80 | opcode, 0x80 | 126, 0, 126, 1, 2, 3, 4})) == FrameError::control_too_long);
    CHECK(error_of(bytes({0x80 | opcode, 0x80 | 126, 0, 5, 1, 2, 3, 4})) == FrameError::control_too_long);
    CHECK(error_of(bytes({0x80 | opcode, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 5})) == FrameError::control_too_long);
  }
  CHECK(close_code(FrameError::control_too_long) == CloseCode::protocol_error);
}

TEST_CASE("a control frame without FIN is refused with 1002") {
  for (int opcode : {0x8, 0x9, 0xa}) CHECK(error_of(bytes({opcode, 0x80, 1, 2, 3, 4})) == FrameError::control_fragmented);
  CHECK(close_code(FrameError::control_fragmented) == CloseCode::protocol_error);
}

TEST_CASE("a 64-bit length with its top bit set is refused with 1002") {
  CHECK(error_of(bytes({0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}), Role::server, UINT64_MAX) ==
        FrameError::length_top_bit);
  CHECK(error_of(bytes({0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}), Role::server,
                 UINT64_MAX) == FrameError::none);
  CHECK(close_code(FrameError::length_top_bit) == CloseCode::protocol_error);
}

TEST_CASE("a frame longer than the maximum message size is refused with 1009 as soon as its length is in") {
  CHECK(error_of(bytes({0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4}), Role::server, 256) == FrameError::none);
  CHECK(error_of(bytes({0x82, 0xfe, 0x01, 0x01, 1, 2, 3, 4}), Role::server, 256) == FrameError::too_big);
  CHECK(parse(bytes({0x82, 0xfe, 0x01, 0x01}), Role::server, 256).error == FrameError::too_big);  // no key yet
  CHECK(close_code(FrameError::too_big) == CloseCode::message_too_big);
}

TEST_CASE("a continuation frame without a message in progress is refused with 1002") {
  MessageState state;
  CHECK(feed(state, header(Opcode::continuation, true, 3), "abc") == FrameError::continuation_without_message);
  MessageState after_whole;
  CHECK(feed(after_whole, header(Opcode::text, true, 2), "hi") == FrameError::none);
  CHECK(feed(after_whole, header(Opcode::continuation, false, 2), "hi") == FrameError::continuation_without_message);
  CHECK(close_code(FrameError::continuation_without_message) == CloseCode::protocol_error);
}

TEST_CASE("a new text or binary frame while a fragmented message is in progress is refused with 1002") {
  for (Opcode next : {Opcode::text, Opcode::binary}) {
    MessageState state;
    CHECK(feed(state, header(Opcode::binary, false, 3), "abc") == FrameError::none);
    CHECK(feed(state, header(next, true, 3), "abc") == FrameError::message_in_progress);
  }
  CHECK(close_code(FrameError::message_in_progress) == CloseCode::protocol_error);
}

TEST_CASE("fragments and control frames between them: the message's type lasts until its final frame") {
  MessageState state;
  CHECK(sizeof state == 2);
  CHECK(state.message() == Opcode::continuation);
  CHECK(feed(state, header(Opcode::text, false, 3), "Hel") == FrameError::none);
  CHECK(state.message() == Opcode::text);
  CHECK(feed(state, header(Opcode::ping, true, 2), "\xff\xfe") == FrameError::none);  // not text
  CHECK(feed(state, header(Opcode::continuation, false, 1), "l") == FrameError::none);
  CHECK(state.message() == Opcode::text);
  CHECK(feed(state, header(Opcode::pong, true, 0), "") == FrameError::none);
  CHECK(feed(state, header(Opcode::continuation, true, 1), "o") == FrameError::none);
  CHECK(state.message() == Opcode::continuation);
  CHECK(feed(state, header(Opcode::binary, true, 2), "\xff\xfe") == FrameError::none);  // not text either
}

TEST_CASE("a fragmented message over the maximum message size is refused with 1009 at the frame that exceeds it") {
  MessageState state;
  CHECK(feed(state, header(Opcode::binary, false, 6), "abcdef", 0, 10) == FrameError::none);
  CHECK(feed(state, header(Opcode::continuation, false, 4), "ghij", 6, 10) == FrameError::none);
  CHECK(state.on_header(header(Opcode::continuation, true, 1), 10, 10) == FrameError::too_big);
  MessageState first;
  CHECK(first.on_header(header(Opcode::text, false, 11), 0, 10) == FrameError::too_big);
}

TEST_CASE("text that is not UTF-8 is refused with 1007 at the first bad byte, across fragments") {
  MessageState state;
  CHECK(state.on_header(header(Opcode::text, false, 4), 0, kMax) == FrameError::none);
  CHECK(state.on_payload("ab\xc3") == FrameError::none);  // é cut after its first byte
  CHECK(state.on_payload("\xa9") == FrameError::none);
  CHECK(state.on_frame_end() == FrameError::none);
  CHECK(state.on_header(header(Opcode::continuation, false, 6), 4, kMax) == FrameError::none);
  CHECK(state.on_payload("\xed\xa0") == FrameError::invalid_utf8);  // a surrogate: known at its second byte
  CHECK(close_code(FrameError::invalid_utf8) == CloseCode::invalid_payload);
}

TEST_CASE("a text message whose last frame ends inside a character is refused with 1007") {
  MessageState state;
  CHECK(feed(state, header(Opcode::text, false, 2), "a\xe2") == FrameError::none);  // € continues
  CHECK(feed(state, header(Opcode::continuation, false, 1), "\x82") == FrameError::none);
  CHECK(feed(state, header(Opcode::continuation, true, 0), "") == FrameError::invalid_utf8);
  MessageState whole;
  CHECK(feed(whole, header(Opcode::text, true, 4), "ab\xf0\x9f") == FrameError::invalid_utf8);
}

TEST_CASE("masking in pieces equals masking at once, for every cut, offset and length") {
  const MaskKey key = {0x01, 0x23, 0x45, 0x67};
  std::string payload;
  for (int i = 0; i < 67; ++i) payload += static_cast<char>(i * 37);
  for (uint64_t offset = 0; offset < 8; ++offset) {
    std::string expected = payload;  // byte by byte, as §5.3 writes it
    for (std::size_t i = 0; i < expected.size(); ++i)
      expected[i] = static_cast<char>(expected[i] ^ key[(offset + i) % 4]);
    std::string whole = payload;
    apply_mask(whole.data(), whole.size(), key, offset);
    CHECK(whole == expected);
    for (std::size_t cut = 0; cut <= payload.size(); ++cut) {
      std::string pieces = payload;
      apply_mask(pieces.data(), cut, key, offset);
      apply_mask(pieces.data() + cut, pieces.size() - cut, key, offset + cut);
      CHECK_MESSAGE(pieces == expected, "offset ", offset, " cut ", cut);
    }
    apply_mask(whole.data(), whole.size(), key, offset);
    CHECK(whole == payload);  // masking twice restores the payload
  }
}

TEST_CASE("a client's whole frame: header, masked payload, read back by a server") {
  const MaskKey key = {0xde, 0xad, 0xbe, 0xef};
  const std::string message(300, 'x');
  std::vector<char> out(kMaxFrameHeader + message.size());
  const std::size_t size = write_frame(Opcode::binary, true, message, &key, out.data());
  HeaderParse p = parse_frame_header(std::string_view(out.data(), size), Role::server, kMax);
  REQUIRE(p.status == Status::header);
  REQUIRE(p.header.size + p.header.payload_length == size);
  char* payload = out.data() + p.header.size;
  CHECK(std::string_view(payload, message.size()) != message);
  apply_mask(payload, message.size(), p.header.mask, 0);
  CHECK(std::string_view(payload, message.size()) == message);
}

TEST_CASE("close payloads: empty, or a code with a UTF-8 reason") {
  ClosePayload empty = parse_close_payload("");
  CHECK(empty.error == FrameError::none);
  CHECK(empty.code == CloseCode::no_status);
  const std::string payload = bytes({0x03, 0xe8}) + "bye \xc3\xa9";
  ClosePayload normal = parse_close_payload(payload);
  CHECK(normal.error == FrameError::none);
  CHECK(normal.code == CloseCode::normal);
  CHECK(normal.reason == "bye \xc3\xa9");
}

TEST_CASE("a close payload of one byte is refused with 1002") {
  CHECK(parse_close_payload(bytes({0x03})).error == FrameError::close_payload_length);
  CHECK(close_code(FrameError::close_payload_length) == CloseCode::protocol_error);
}

TEST_CASE("close codes: the registered ones and 3000-4999 are accepted, the others refused with 1002") {
  std::set<unsigned> valid;
  for (unsigned code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}) valid.insert(code);
  for (unsigned code = 3000; code <= 4999; ++code) valid.insert(code);
  for (unsigned code = 0; code <= 0xffff; ++code) {
    const ClosePayload close = parse_close_payload(bytes({static_cast<int>(code >> 8), static_cast<int>(code & 0xff)}));
    const bool accepted = close.error == FrameError::none;
    if (accepted != (valid.count(code) == 1)) FAIL_CHECK("close code ", code, accepted ? " accepted" : " refused");
    if (!accepted) REQUIRE(close.error == FrameError::close_code);
  }
  CHECK(close_code(FrameError::close_code) == CloseCode::protocol_error);
}

TEST_CASE("a close reason that is not UTF-8 is refused with 1007") {
  CHECK(parse_close_payload(bytes({0x03, 0xe8, 0xc3})).error == FrameError::close_reason_utf8);
  CHECK(parse_close_payload(bytes({0x03, 0xe8, 'o', 'k', 0xff})).error == FrameError::close_reason_utf8);
  CHECK(close_code(FrameError::close_reason_utf8) == CloseCode::invalid_payload);
}

TEST_CASE("writing a close payload: the code, and the reason cut to whole characters within 123 bytes") {
  char out[kMaxControlPayload];
  CHECK(write_close_payload(CloseCode::no_status, "ignored", out) == 0);
  CHECK(std::string(out, write_close_payload(CloseCode::going_away, "restart", out)) == bytes({0x03, 0xe9}) + "restart");
  // 61 two-byte characters and one more: 122 bytes fit, the next character would end at 124.
  std::string long_reason;
  for (int i = 0; i < 62; ++i) long_reason += "\xc3\xa9";
  std::size_t size = write_close_payload(CloseCode::normal, long_reason, out);
  CHECK(size == 2 + 122);
  CHECK(std::string_view(out + 2, size - 2) == long_reason.substr(0, 122));
  CHECK(write_close_payload(CloseCode::normal, std::string(200, 'a'), out) == kMaxControlPayload);
  // An invalid reason is cut before its first bad byte; what is written always parses.
  size = write_close_payload(CloseCode::policy_violation, "ok\xff" "more", out);
  CHECK(std::string_view(out + 2, size - 2) == "ok");
  CHECK(parse_close_payload(std::string_view(out, size)).code == CloseCode::policy_violation);
}

TEST_CASE("a close code that is not valid on the wire cannot be written") {
  char out[kMaxControlPayload];
  CHECK_THROWS_AS(write_close_payload(CloseCode::abnormal, "", out), std::invalid_argument);
  CHECK_THROWS_AS(write_close_payload(static_cast<CloseCode>(1004), "", out), std::invalid_argument);
  CHECK_THROWS_AS(write_close_payload(static_cast<CloseCode>(1015), "", out), std::invalid_argument);
  CHECK(write_close_payload(static_cast<CloseCode>(4000), "", out) == 2);
}

TEST_CASE("every FrameError has its own description") {
  std::set<std::string> seen;
  for (int e = 0; e <= static_cast<int>(FrameError::close_reason_utf8); ++e)
    CHECK(seen.insert(to_string(static_cast<FrameError>(e))).second);
}
