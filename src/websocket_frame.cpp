// websocket_frame — see websocket_frame.hpp.
#include "websocket_frame.hpp"

#include <cstring>
#include <stdexcept>
#include <string>

namespace evwheel {
namespace websocket {

const char* to_string(FrameError error) noexcept {
  switch (error) {
    case FrameError::none: return "none";
    case FrameError::unmasked: return "a client frame is not masked";
    case FrameError::masked: return "a server frame is masked";
    case FrameError::reserved_bits: return "reserved bits set without an extension";
    case FrameError::unknown_opcode: return "unknown opcode";
    case FrameError::control_too_long: return "control frame longer than 125 bytes";
    case FrameError::control_fragmented: return "fragmented control frame";
    case FrameError::length_top_bit: return "64-bit length with the top bit set";
    case FrameError::continuation_without_message: return "continuation frame without a message in progress";
    case FrameError::message_in_progress: return "new data frame while a fragmented message is in progress";
    case FrameError::too_big: return "message larger than the maximum message size";
    case FrameError::invalid_utf8: return "text message is not valid UTF-8";
    case FrameError::close_payload_length: return "close payload of 1 byte";
    case FrameError::close_code: return "close code not valid on the wire";
    case FrameError::close_reason_utf8: return "close reason is not valid UTF-8";
  }
  return "?";
}

CloseCode close_code(FrameError error) noexcept {
  switch (error) {
    case FrameError::too_big: return CloseCode::message_too_big;
    case FrameError::invalid_utf8:
    case FrameError::close_reason_utf8: return CloseCode::invalid_payload;
    default: return CloseCode::protocol_error;
  }
}

namespace {

constexpr uint8_t kFin = 0x80;
constexpr uint8_t kReservedBits = 0x70;
constexpr uint8_t kOpcodeBits = 0x0f;
constexpr uint8_t kMaskBit = 0x80;
constexpr uint8_t kLengthBits = 0x7f;
constexpr uint8_t kLength16 = 126;  // the 7-bit length field's escapes to a 16-bit and a 64-bit length
constexpr uint8_t kLength64 = 127;

bool known_opcode(unsigned opcode) { return opcode <= 0x2 || (opcode >= 0x8 && opcode <= 0xa); }

HeaderParse refuse(FrameError error) {
  HeaderParse parse;
  parse.status = HeaderParse::Status::error;
  parse.error = error;
  return parse;
}

}  // namespace

HeaderParse parse_frame_header(std::string_view bytes, Role receiver, uint64_t max_message) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.empty()) return HeaderParse{};
  // The first byte alone decides these.
  const unsigned opcode = p[0] & kOpcodeBits;
  const bool fin = (p[0] & kFin) != 0;
  if (!known_opcode(opcode)) return refuse(FrameError::unknown_opcode);
  if (p[0] & kReservedBits) return refuse(FrameError::reserved_bits);
  const bool control = is_control(static_cast<Opcode>(opcode));
  if (control && !fin) return refuse(FrameError::control_fragmented);
  if (bytes.size() < 2) return HeaderParse{};
  // The second byte: the mask bit and the 7-bit length (or which longer length follows).
  const bool masked = (p[1] & kMaskBit) != 0;
  if (masked != (receiver == Role::server)) return refuse(receiver == Role::server ? FrameError::unmasked : FrameError::masked);
  const unsigned length7 = p[1] & kLengthBits;
  if (control && length7 > kMaxControlPayload) return refuse(FrameError::control_too_long);
  const std::size_t length_size = length7 == kLength16 ? 2 : length7 == kLength64 ? 8 : 0;
  if (bytes.size() < 2 + length_size) return HeaderParse{};
  uint64_t length = length_size == 0 ? length7 : 0;
  for (std::size_t i = 0; i < length_size; ++i) length = length << 8 | p[2 + i];
  if (length >> 63) return refuse(FrameError::length_top_bit);
  if (length > max_message) return refuse(FrameError::too_big);
  const std::size_t size = 2 + length_size + (masked ? 4 : 0);
  if (bytes.size() < size) return HeaderParse{};
  HeaderParse parse;
  parse.status = HeaderParse::Status::header;
  parse.header.fin = fin;
  parse.header.opcode = static_cast<Opcode>(opcode);
  parse.header.masked = masked;
  if (masked) std::memcpy(parse.header.mask.data(), p + 2 + length_size, 4);
  parse.header.size = static_cast<uint8_t>(size);
  parse.header.payload_length = length;
  return parse;
}

static_assert(sizeof(MessageState) == 2, "a connection keeps its MessageState inline");

FrameError MessageState::on_header(const FrameHeader& header, uint64_t message_so_far, uint64_t max_message) noexcept {
  if (is_control(header.opcode)) {
    flags_ &= kPhase;  // a control frame between fragments leaves the message as it is
    return FrameError::none;
  }
  const bool in_message = message() != Opcode::continuation;
  if (header.opcode == Opcode::continuation) {
    if (!in_message) return FrameError::continuation_without_message;
  } else {
    if (in_message) return FrameError::message_in_progress;
    message_so_far = 0;
    flags_ = static_cast<uint8_t>(header.opcode);
    utf8_ = kUtf8Boundary;
  }
  if (message_so_far > max_message || header.payload_length > max_message - message_so_far) return FrameError::too_big;
  flags_ &= kPhase;
  if (message() == Opcode::text) flags_ |= kFrameIsText;
  if (header.fin) flags_ |= kFrameEndsMessage;
  return FrameError::none;
}

FrameError MessageState::on_payload(std::string_view piece) noexcept {
  if (!(flags_ & kFrameIsText)) return FrameError::none;
  utf8_ = utf8_feed(utf8_, piece);
  return utf8_ == kUtf8Invalid ? FrameError::invalid_utf8 : FrameError::none;
}

FrameError MessageState::on_frame_end() noexcept {
  const bool ends_message = (flags_ & kFrameEndsMessage) != 0;
  const bool text = (flags_ & kFrameIsText) != 0;
  flags_ &= kPhase;
  if (!ends_message) return FrameError::none;
  flags_ = 0;
  return text && !utf8_complete(utf8_) ? FrameError::invalid_utf8 : FrameError::none;
}

std::size_t encode_frame_header(Opcode opcode, bool fin, uint64_t payload_length, const MaskKey* mask,
                                char* out) noexcept {
  auto* p = reinterpret_cast<unsigned char*>(out);
  p[0] = static_cast<unsigned char>((fin ? kFin : 0) | static_cast<uint8_t>(opcode));
  const unsigned char mask_bit = mask ? kMaskBit : 0;
  std::size_t size = 2;
  if (payload_length < kLength16) {
    p[1] = static_cast<unsigned char>(mask_bit | payload_length);
  } else {
    const std::size_t length_size = payload_length <= 0xffff ? 2 : 8;
    p[1] = static_cast<unsigned char>(mask_bit | (length_size == 2 ? kLength16 : kLength64));
    for (std::size_t i = 0; i < length_size; ++i)
      p[2 + i] = static_cast<unsigned char>(payload_length >> (8 * (length_size - 1 - i)));
    size += length_size;
  }
  if (mask) {
    std::memcpy(p + size, mask->data(), 4);
    size += 4;
  }
  return size;
}

std::size_t write_frame(Opcode opcode, bool fin, std::string_view payload, const MaskKey* mask, char* out) noexcept {
  const std::size_t header = encode_frame_header(opcode, fin, payload.size(), mask, out);
  if (!payload.empty()) std::memcpy(out + header, payload.data(), payload.size());
  if (mask) apply_mask(out + header, payload.size(), *mask, 0);
  return header + payload.size();
}

void apply_mask(char* data, std::size_t size, MaskKey key, uint64_t offset) noexcept {
  // The key as it stands at data[0], repeated over a 64-bit word in memory order (so the same
  // on either byte order).
  unsigned char rotated[8];
  for (std::size_t i = 0; i < 8; ++i) rotated[i] = key[(offset + i) & 3];
  uint64_t word_key;
  std::memcpy(&word_key, rotated, 8);
  std::size_t i = 0;
  for (; size - i >= 8; i += 8) {
    uint64_t word;
    std::memcpy(&word, data + i, 8);
    word ^= word_key;
    std::memcpy(data + i, &word, 8);
  }
  for (; i < size; ++i) data[i] = static_cast<char>(data[i] ^ rotated[i & 7]);
}

ClosePayload parse_close_payload(std::string_view payload) noexcept {
  ClosePayload close;
  if (payload.empty()) return close;
  if (payload.size() > kMaxControlPayload) {
    close.error = FrameError::control_too_long;
  } else if (payload.size() == 1) {
    close.error = FrameError::close_payload_length;
  } else {
    const auto code = static_cast<uint16_t>(static_cast<unsigned char>(payload[0]) << 8 | static_cast<unsigned char>(payload[1]));
    close.code = static_cast<CloseCode>(code);
    close.reason = payload.substr(2);
    if (!close_code_valid_on_wire(code)) {
      close.error = FrameError::close_code;
    } else if (!utf8_valid(close.reason)) {
      close.error = FrameError::close_reason_utf8;
    }
  }
  return close;
}

std::size_t write_close_payload(CloseCode code, std::string_view reason, char* out) {
  if (code == CloseCode::no_status) return 0;
  const auto value = static_cast<uint16_t>(code);
  if (!close_code_valid_on_wire(value))
    throw std::invalid_argument("websocket: close code " + std::to_string(value) + " cannot be sent");
  out[0] = static_cast<char>(value >> 8);
  out[1] = static_cast<char>(value & 0xff);
  // The reason's longest prefix of whole characters that fits.
  std::size_t kept = 0;
  Utf8State state = kUtf8Boundary;
  for (std::size_t i = 0; i < reason.size() && i < kMaxCloseReason; ++i) {
    state = utf8_feed(state, reason.substr(i, 1));
    if (state == kUtf8Invalid) break;
    if (utf8_complete(state)) kept = i + 1;
  }
  // An empty reason may have a null data(): memcpy's arguments must not be null even for 0 bytes.
  if (kept > 0) std::memcpy(out + 2, reason.data(), kept);
  return 2 + kept;
}

}  // namespace websocket
}  // namespace evwheel
