// websocket_frame — RFC 6455 frames (§5) and close payloads (§5.5.1, §7.4), as pure functions
// and one two-byte state machine, for a connection engine that owns the bytes.
//
// Receiving, per frame:
//   1. parse_frame_header() on the bytes at the front: need_more, a header, or an error.  The
//      stateless rules are checked as soon as the bytes they need are in, in a fixed order, so
//      any prefix of the input answers need_more or the error the whole input answers.
//   2. MessageState::on_header(): the rules that depend on earlier frames (fragmentation, the
//      size of a reassembled message).
//   3. apply_mask() on the payload in place, in as many pieces as it arrives (the offset keeps
//      the key's rotation), and MessageState::on_payload() on each unmasked piece: a text
//      message's UTF-8 is checked as it comes and fails at the first impossible byte.
//   4. MessageState::on_frame_end() when the payload is complete: the last frame of a text
//      message must end on a character boundary.  A close frame's payload goes through
//      parse_close_payload().
// Every refusal is a FrameError; close_code() gives the close code to send for it (1002, 1007
// or 1009).  Nothing here allocates.
//
// Sending: encode_frame_header() writes the minimal length encoding; a server's frames are
// unmasked, a client's masked with a key it passes (a fresh one per frame, RFC 6455 §5.3).
// No extension is ever negotiated (permessage-deflate would need zlib), so RSV bits are
// always a protocol error.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "utf8.hpp"

namespace evwheel {
namespace websocket {

enum class Opcode : uint8_t { continuation = 0x0, text = 0x1, binary = 0x2, close = 0x8, ping = 0x9, pong = 0xa };

// Close, ping and pong: at most kMaxControlPayload bytes, never fragmented, and allowed
// between the frames of a fragmented message.
constexpr bool is_control(Opcode opcode) noexcept { return (static_cast<uint8_t>(opcode) & 0x8) != 0; }
inline constexpr std::size_t kMaxControlPayload = 125;

// Which end of the connection a frame is received or sent by: a client masks what it sends.
enum class Role : uint8_t { server, client };

// Close status codes (§7.4.1 and the IANA registry).  no_status and abnormal are never sent:
// they tell the application that a close frame had no code, or that none came at all.
enum class CloseCode : uint16_t {
  normal = 1000,
  going_away = 1001,
  protocol_error = 1002,
  unsupported_data = 1003,
  no_status = 1005,
  abnormal = 1006,
  invalid_payload = 1007,  // e.g. a text message that is not UTF-8
  policy_violation = 1008,
  message_too_big = 1009,
  mandatory_extension = 1010,
  internal_error = 1011,
  service_restart = 1012,
  try_again_later = 1013,
  bad_gateway = 1014,
};

// Whether `code` may be sent in a close frame, so whether a received one is acceptable:
// 1000-1003, 1007-1014 and 3000-4999 (registered and private use).  Not 1004 (reserved),
// 1005, 1006, 1015 (never sent), nor other codes below 3000 (unassigned, or not status codes).
constexpr bool close_code_valid_on_wire(uint16_t code) noexcept {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

// Why a received frame is refused.
enum class FrameError : uint8_t {
  none,
  unmasked,                      // a client's frame without a mask
  masked,                        // a server's frame with a mask
  reserved_bits,                 // RSV1-3 set, with no extension negotiated
  unknown_opcode,                // 3-7, 0xB-0xF
  control_too_long,              // a control frame with more than 125 payload bytes
  control_fragmented,            // a control frame without FIN
  length_top_bit,                // a 64-bit length with its most significant bit set
  continuation_without_message,  // a continuation frame with no fragmented message in progress
  message_in_progress,           // a text or binary frame while a fragmented message is unfinished
  too_big,                       // the message would exceed the maximum message size
  invalid_utf8,                  // a text message that is not UTF-8
  close_payload_length,          // a close payload of 1 byte (a code needs 2)
  close_code,                    // a close code not valid on the wire
  close_reason_utf8,             // a close reason that is not UTF-8
};
const char* to_string(FrameError error) noexcept;
// The close code to send for `error` (1002, 1007 or 1009); not for FrameError::none.
CloseCode close_code(FrameError error) noexcept;

using MaskKey = std::array<uint8_t, 4>;

struct FrameHeader {
  bool fin = false;
  Opcode opcode = Opcode::continuation;
  bool masked = false;
  MaskKey mask{};               // when masked
  uint8_t size = 0;             // the header's own length: 2 to 14 bytes
  uint64_t payload_length = 0;  // < 2^63
};

struct HeaderParse {
  enum class Status : uint8_t { need_more, header, error };
  Status status = Status::need_more;
  FrameError error = FrameError::none;  // when status == error
  FrameHeader header;                   // when status == header
};

// Parses the frame header at the front of `bytes`, received by `receiver`.  Length encodings
// longer than needed are accepted (senders must use the shortest, receivers need not insist).
// A payload above `max_message` is too_big as soon as the length is in.
HeaderParse parse_frame_header(std::string_view bytes, Role receiver, uint64_t max_message) noexcept;

// The receive side's state between frames: whether a fragmented text or binary message is in
// progress, its UTF-8 validator, and what the frame being received is.  Two bytes, so a
// connection keeps it inline.  After an error the state is spent: the connection closes.
class MessageState {
 public:
  // The rules for the next frame, given its parsed header and `message_so_far`, the payload
  // bytes already received of the message it continues (0 unless a continuation): fragments
  // come in order, and a message's payload stays within `max_message`.
  FrameError on_header(const FrameHeader& header, uint64_t message_so_far, uint64_t max_message) noexcept;
  // The next unmasked piece of the current frame's payload; checked when it is text.
  FrameError on_payload(std::string_view piece) noexcept;
  // The current frame's payload is complete; the message too when it was its last frame.
  FrameError on_frame_end() noexcept;

  // The type of the message in progress (text or binary), or continuation when there is none.
  Opcode message() const noexcept { return static_cast<Opcode>(flags_ & kPhase); }

 private:
  static constexpr uint8_t kPhase = 0x3;          // Opcode::continuation, text or binary
  static constexpr uint8_t kFrameIsText = 0x4;    // the current frame's payload is text
  static constexpr uint8_t kFrameEndsMessage = 0x8;

  uint8_t flags_ = 0;
  Utf8State utf8_ = kUtf8Boundary;
};

// The longest header: 2 bytes, a 64-bit length, a masking key.
inline constexpr std::size_t kMaxFrameHeader = 14;

// Writes the header of a frame with `payload_length` (< 2^63) bytes to `out` (kMaxFrameHeader
// bytes available) and returns its size: the shortest length encoding, masked with `*mask` when
// given (a client), unmasked when null (a server).
std::size_t encode_frame_header(Opcode opcode, bool fin, uint64_t payload_length, const MaskKey* mask,
                                char* out) noexcept;

// Writes a whole frame — header and payload, the payload masked when `mask` is given — to `out`
// (kMaxFrameHeader + payload.size() bytes available) and returns its size.
std::size_t write_frame(Opcode opcode, bool fin, std::string_view payload, const MaskKey* mask, char* out) noexcept;

// XORs `size` bytes at `data` with `key`, where data[0] is byte `offset` of the payload, so a
// payload can be (un)masked in pieces.  Works a word at a time.
void apply_mask(char* data, std::size_t size, MaskKey key, uint64_t offset) noexcept;

struct ClosePayload {
  FrameError error = FrameError::none;
  CloseCode code = CloseCode::no_status;  // no_status when the payload is empty
  std::string_view reason;                // UTF-8, into the payload
};

// Reads a received close frame's (unmasked) payload: empty, or a 2-byte code valid on the wire
// and a UTF-8 reason.
ClosePayload parse_close_payload(std::string_view payload) noexcept;

// The longest reason a close frame carries (its payload is at most 125 bytes).
inline constexpr std::size_t kMaxCloseReason = kMaxControlPayload - 2;

// Writes the payload of a close frame to `out` (kMaxControlPayload bytes available) and returns
// its size: nothing for no_status; else `code` and the longest prefix of `reason` that is
// whole UTF-8 characters and at most kMaxCloseReason bytes.  Throws std::invalid_argument for
// another code that is not valid on the wire (abnormal, 1004, 1015, ...).
std::size_t write_close_payload(CloseCode code, std::string_view reason, char* out);

}  // namespace websocket
}  // namespace evwheel
