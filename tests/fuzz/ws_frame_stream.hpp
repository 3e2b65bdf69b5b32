// ws_frame_stream — the property the WebSocket frame fuzz target checks: a received stream,
// taken apart the way a connection engine uses src/websocket_frame.hpp (headers parsed at the
// front, payloads unmasked and checked in whatever pieces arrive), gives the same frames and
// the same refusal however it is cut into reads — and those are the frames and the refusal
// RFC 6455 defines, as read by a plain parser here (by_spec) that unmasks byte by byte and
// judges UTF-8 with tests/utf8_reference.hpp.
//
// Along the way: every parse sees an exact-size heap copy of the bytes it may read (a read past
// them is an AddressSanitizer report), a header in its shortest form re-encodes to its own
// bytes, and a valid close payload is re-written byte for byte.
//
// Input: [byte 0: bit 0 the receiver (0 server, 1 client); bits 1-7 the maximum message size,
// 0 for 1 MiB, else that many bytes] [the stream and its reads, chunked_input.hpp].
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../../src/websocket_frame.hpp"
#include "../utf8_reference.hpp"
#include "chunked_input.hpp"
#include "fuzz_check.hpp"

namespace fuzz {
namespace ws_frame_stream {

namespace ws = evwheel::websocket;

struct Frame {
  uint8_t opcode;
  bool fin;
  std::string payload;  // unmasked
  bool operator==(const Frame& o) const { return opcode == o.opcode && fin == o.fin && payload == o.payload; }
};

struct Received {
  std::vector<Frame> frames;  // whole frames accepted
  ws::FrameError error = ws::FrameError::none;
  bool operator==(const Received& o) const { return frames == o.frames && error == o.error; }
};

// Whether `header` (parsed from `bytes`) used the shortest length encoding, and if so that
// encode_frame_header() writes the same bytes.
inline void check_reencodes(const ws::FrameHeader& header, std::string_view bytes) {
  const uint64_t length = header.payload_length;
  const std::size_t shortest = 2 + (length < 126 ? 0 : length <= 0xffff ? 2 : 8) + (header.masked ? 4 : 0);
  if (header.size != shortest) return;
  char out[ws::kMaxFrameHeader];
  const std::size_t size = ws::encode_frame_header(header.opcode, header.fin, length, header.masked ? &header.mask : nullptr, out);
  FUZZ_CHECK(std::string_view(out, size) == bytes.substr(0, header.size));
}

// A valid close payload is what write_close_payload() writes for its code and reason.
inline void check_close_rewrites(const ws::ClosePayload& close, std::string_view payload) {
  if (close.error != ws::FrameError::none) return;
  char out[ws::kMaxControlPayload];
  FUZZ_CHECK(std::string_view(out, ws::write_close_payload(close.code, close.reason, out)) == payload);
}

// A receiving connection, fed the bytes received so far each time more arrive.
class Receiver {
 public:
  Receiver(ws::Role role, uint64_t max_message) : role_(role), max_message_(max_message) {}

  void deliver(std::string_view received) {
    buffer_.append(received.substr(buffer_.size()));
    while (out_.error == ws::FrameError::none && (in_payload_ ? take_payload() : take_header())) {
    }
  }
  const Received& received() const { return out_; }

 private:
  bool fail(ws::FrameError error) {
    out_.error = error;
    return false;
  }

  bool take_header() {
    const std::vector<char> exact(buffer_.begin() + static_cast<std::ptrdiff_t>(taken_), buffer_.end());
    const std::string_view bytes(exact.data(), exact.size());
    const ws::HeaderParse parse = ws::parse_frame_header(bytes, role_, max_message_);
    if (parse.status == ws::HeaderParse::Status::need_more) return false;
    if (parse.status == ws::HeaderParse::Status::error) return fail(parse.error);
    FUZZ_CHECK(parse.header.size <= bytes.size());
    check_reencodes(parse.header, bytes);
    header_ = parse.header;
    taken_ += header_.size;
    const ws::FrameError error = state_.on_header(header_, message_so_far_, max_message_);
    if (error != ws::FrameError::none) return fail(error);
    in_payload_ = true;
    payload_.clear();
    return true;
  }

  // Unmasks and checks what has arrived of the payload, as a piece of its own.
  bool take_payload() {
    const std::size_t n = static_cast<std::size_t>(
        std::min<uint64_t>(buffer_.size() - taken_, header_.payload_length - payload_.size()));
    if (n == 0 && payload_.size() < header_.payload_length) return false;
    std::vector<char> piece(buffer_.begin() + static_cast<std::ptrdiff_t>(taken_),
                            buffer_.begin() + static_cast<std::ptrdiff_t>(taken_ + n));
    if (header_.masked) ws::apply_mask(piece.data(), piece.size(), header_.mask, payload_.size());
    taken_ += n;
    payload_.append(piece.begin(), piece.end());
    ws::FrameError error = state_.on_payload(std::string_view(piece.data(), piece.size()));
    if (error != ws::FrameError::none) return fail(error);
    if (payload_.size() < header_.payload_length) return false;
    in_payload_ = false;
    if ((error = state_.on_frame_end()) != ws::FrameError::none) return fail(error);
    if (header_.opcode == ws::Opcode::close) {
      const ws::ClosePayload close = ws::parse_close_payload(payload_);
      if (close.error != ws::FrameError::none) return fail(close.error);
      check_close_rewrites(close, payload_);
    }
    if (!ws::is_control(header_.opcode)) message_so_far_ = header_.fin ? 0 : message_so_far_ + header_.payload_length;
    out_.frames.push_back(Frame{static_cast<uint8_t>(header_.opcode), header_.fin, payload_});
    return true;
  }

  const ws::Role role_;
  const uint64_t max_message_;
  std::string buffer_;     // received so far
  std::size_t taken_ = 0;  // bytes of buffer_ consumed
  bool in_payload_ = false;
  ws::FrameHeader header_;
  std::string payload_;  // of the current frame, unmasked so far
  ws::MessageState state_;
  uint64_t message_so_far_ = 0;
  Received out_;
};

inline Received receive_in_reads(std::string_view stream, const std::vector<std::size_t>& reads, ws::Role role,
                                 uint64_t max_message) {
  Receiver receiver(role, max_message);
  deliver_in_reads(stream, reads, [&](std::string_view received) { receiver.deliver(received); });
  return receiver.received();
}

// RFC 6455 read straight from the text: §5.2 (framing), §5.3 (masking), §5.4 (fragmentation),
// §5.5 (control frames), §5.6 and §8.1 (UTF-8), §7.4 (close codes).  A rule is judged as soon
// as the bytes it needs are there, in the order the library documents.
inline Received by_spec(std::string_view s, ws::Role role, uint64_t max_message) {
  using E = ws::FrameError;
  Received out;
  auto refuse = [&out](E error) {
    out.error = error;
    return out;
  };
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  std::size_t at = 0;
  unsigned message = 0;  // 0 none, 1 text, 2 binary
  uint64_t so_far = 0;
  std::string text;  // the text message so far
  while (at < s.size()) {
    const unsigned opcode = byte(at) & 0xf;
    const bool fin = byte(at) & 0x80, control = opcode >= 8;
    if (!(opcode <= 2 || (opcode >= 8 && opcode <= 10))) return refuse(E::unknown_opcode);
    if (byte(at) & 0x70) return refuse(E::reserved_bits);
    if (control && !fin) return refuse(E::control_fragmented);
    if (at + 2 > s.size()) break;
    const bool masked = byte(at + 1) & 0x80;
    if (role == ws::Role::server && !masked) return refuse(E::unmasked);
    if (role == ws::Role::client && masked) return refuse(E::masked);
    const unsigned length7 = byte(at + 1) & 0x7f;
    if (control && length7 > 125) return refuse(E::control_too_long);
    const std::size_t extended = length7 == 126 ? 2 : length7 == 127 ? 8 : 0;
    if (at + 2 + extended > s.size()) break;
    uint64_t length = extended ? 0 : length7;
    for (std::size_t i = 0; i < extended; ++i) length = length * 256 + byte(at + 2 + i);
    if (length >= (uint64_t{1} << 63)) return refuse(E::length_top_bit);
    if (length > max_message) return refuse(E::too_big);
    const std::size_t header = 2 + extended + (masked ? 4 : 0);
    if (at + header > s.size()) break;
    if (!control) {
      if (opcode == 0 && message == 0) return refuse(E::continuation_without_message);
      if (opcode != 0 && message != 0) return refuse(E::message_in_progress);
      if (opcode != 0) message = opcode, so_far = 0, text.clear();
      if (so_far + length > max_message) return refuse(E::too_big);
    }
    const std::size_t present = static_cast<std::size_t>(std::min<uint64_t>(length, s.size() - at - header));
    std::string payload(s.substr(at + header, present));
    for (std::size_t i = 0; masked && i < payload.size(); ++i)
      payload[i] = static_cast<char>(payload[i] ^ s[at + 2 + extended + i % 4]);
    const bool text_frame = !control && message == 1;
    if (text_frame) text += payload;
    if (text_frame && utf8_reference::judge(text) == utf8_reference::Verdict::invalid) return refuse(E::invalid_utf8);
    if (present < length) break;
    if (text_frame && fin && utf8_reference::judge(text) != utf8_reference::Verdict::complete)
      return refuse(E::invalid_utf8);
    if (opcode == 8 && payload.size() == 1) return refuse(E::close_payload_length);
    if (opcode == 8 && payload.size() >= 2) {
      const unsigned code = static_cast<unsigned char>(payload[0]) << 8 | static_cast<unsigned char>(payload[1]);
      const bool registered = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014);
      if (!registered && !(code >= 3000 && code <= 4999)) return refuse(E::close_code);
      if (utf8_reference::judge(std::string_view(payload).substr(2)) != utf8_reference::Verdict::complete)
        return refuse(E::close_reason_utf8);
    }
    if (!control) {
      so_far += length;
      if (fin) message = 0, so_far = 0;
    }
    out.frames.push_back(Frame{static_cast<uint8_t>(opcode), fin, payload});
    at += header + present;
  }
  return out;
}

// The target: whole stream, every read pattern and the spec agree.
inline void check(const uint8_t* data, std::size_t size) {
  if (size == 0) return;
  const ws::Role role = data[0] & 1 ? ws::Role::client : ws::Role::server;
  const uint64_t max_message = data[0] >> 1 ? data[0] >> 1 : uint64_t{1} << 20;
  ChunkedInput input;
  if (!read_chunked_input(data + 1, size - 1, &input)) return;
  const Received whole = receive_in_reads(input.stream, {}, role, max_message);
  FUZZ_CHECK(whole == by_spec(input.stream, role, max_message));
  FUZZ_CHECK(receive_in_reads(input.stream, input.reads, role, max_message) == whole);
}

}  // namespace ws_frame_stream
}  // namespace fuzz
