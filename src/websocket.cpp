// websocket — the codec of include/evwheel/websocket.hpp over the frame rules of
// src/websocket_frame.hpp.  A frame is decoded only once it is whole (its size is bounded by
// max_message from its header on), then unmasked in place and checked, so a connection's
// two-byte MessageState is all that lives between frames.
#include "evwheel/websocket.hpp"

#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "websocket_frame.hpp"
#include "websocket_handshake.hpp"

namespace evwheel {

using websocket::FrameError;
using websocket::MessageState;
using websocket::Opcode;

static_assert(sizeof(MessageState) <= sizeof(CodecState::bytes) && std::is_trivially_copyable_v<MessageState>,
              "a WebSocket connection's receive state lives in its CodecState");

// --- WebSocketRequest

std::string_view WebSocketRequest::method() const noexcept { return request_.head.method; }
std::string_view WebSocketRequest::target() const noexcept { return request_.head.target; }
std::string_view WebSocketRequest::path() const noexcept { return request_.path; }
std::string_view WebSocketRequest::origin() const noexcept { return request_.origin; }

std::string_view WebSocketRequest::field(std::string_view name) const noexcept {
  const http::Field* found = request_.head.fields.find(name);
  return found ? found->value : std::string_view();
}

std::vector<std::string_view> WebSocketRequest::subprotocols() const {
  std::vector<std::string_view> offered;
  http::TokenCursor cursor = request_.subprotocols();
  for (std::string_view element; cursor.next(&element);) offered.push_back(element);
  return offered;
}

bool WebSocketRequest::offers(std::string_view subprotocol) const noexcept { return request_.offers(subprotocol); }

// --- options

void WebSocketOptions::validate() const {
  if (max_message == 0) throw std::invalid_argument("evwheel: websocket max_message must be > 0");
  if (handshake_timeout <= Duration::zero())
    throw std::invalid_argument("evwheel: websocket handshake_timeout must be > 0");
  if (max_request < 256) throw std::invalid_argument("evwheel: websocket max_request must be >= 256");
  if (path.empty() || path[0] != '/') throw std::invalid_argument("evwheel: websocket path must start with '/'");
}

// --- the codec

namespace {
const WebSocketOptions& validated(const WebSocketOptions& options) {
  options.validate();
  return options;
}

// Records a refusal: the close code to answer with, and -1 for the connection.
std::ptrdiff_t refuse(FrameError error, Frame& frame) noexcept {
  frame.code = static_cast<uint16_t>(websocket::close_code(error));
  return -1;
}
}  // namespace

WebSocketCodec::WebSocketCodec(WebSocketOptions options) : options_(validated(options)) {}

std::ptrdiff_t WebSocketCodec::decode(char* input, std::size_t size, Frame& frame, CodecState& state,
                                      std::size_t assembled) const noexcept {
  frame = Frame{};
  // Frames are received by the other role: a server reads clients' (masked) frames.
  websocket::Role receiver = options_.role == WebSocketRole::server ? websocket::Role::server : websocket::Role::client;
  websocket::HeaderParse parse = parse_frame_header(std::string_view(input, size), receiver, options_.max_message);
  if (parse.status == websocket::HeaderParse::Status::need_more) return 0;
  if (parse.status == websocket::HeaderParse::Status::error) return refuse(parse.error, frame);
  const websocket::FrameHeader& header = parse.header;
  // parse_frame_header bounded the length by max_message, so waiting for it is bounded too.
  std::size_t length = static_cast<std::size_t>(header.payload_length);
  if (size - header.size < length) return 0;

  MessageState message;
  std::memcpy(&message, state.bytes, sizeof message);
  if (FrameError error = message.on_header(header, assembled, options_.max_message); error != FrameError::none)
    return refuse(error, frame);
  Opcode kind = message.message();  // a data frame's message type, fragments included
  char* payload = input + header.size;
  if (header.masked) websocket::apply_mask(payload, length, header.mask, 0);
  if (FrameError error = message.on_payload(std::string_view(payload, length)); error != FrameError::none)
    return refuse(error, frame);
  if (FrameError error = message.on_frame_end(); error != FrameError::none) return refuse(error, frame);

  switch (header.opcode) {
    case Opcode::ping:
      frame.type = FrameType::ping;
      frame.payload = std::string_view(payload, length);
      break;
    case Opcode::pong:
      frame.type = FrameType::pong;
      frame.payload = std::string_view(payload, length);
      break;
    case Opcode::close: {
      websocket::ClosePayload close = websocket::parse_close_payload(std::string_view(payload, length));
      if (close.error != FrameError::none) return refuse(close.error, frame);
      frame.type = FrameType::close;
      frame.code = close.code == websocket::CloseCode::no_status ? 0 : static_cast<uint16_t>(close.code);
      frame.payload = close.reason;
      break;
    }
    default:
      frame.type = FrameType::data;
      frame.message = kind == Opcode::text ? MessageType::text : MessageType::binary;
      frame.final = header.fin;
      frame.payload = std::string_view(payload, length);
      break;
  }
  std::memcpy(state.bytes, &message, sizeof message);
  return static_cast<std::ptrdiff_t>(header.size + length);
}

int WebSocketCodec::encode_header(FrameType type, MessageType message, std::size_t payload_size,
                                  const uint8_t* mask, char* header) const noexcept {
  Opcode opcode = Opcode::binary;
  switch (type) {
    case FrameType::data: opcode = message == MessageType::text ? Opcode::text : Opcode::binary; break;
    case FrameType::ping: opcode = Opcode::ping; break;
    case FrameType::pong: opcode = Opcode::pong; break;
    case FrameType::close: opcode = Opcode::close; break;
  }
  if (websocket::is_control(opcode) ? payload_size > websocket::kMaxControlPayload : payload_size > options_.max_message)
    return -1;
  // A client masks every frame (RFC 6455 §5.3), a server none.
  if ((mask != nullptr) != masks_payload()) return -1;
  websocket::MaskKey key{};
  if (mask) std::memcpy(key.data(), mask, key.size());
  return static_cast<int>(websocket::encode_frame_header(opcode, true, payload_size, mask ? &key : nullptr, header));
}

void WebSocketCodec::mask(char* payload, std::size_t size, const uint8_t* key) const noexcept {
  websocket::MaskKey mask_key;
  std::memcpy(mask_key.data(), key, mask_key.size());
  websocket::apply_mask(payload, size, mask_key, 0);
}

int WebSocketCodec::close_payload(uint16_t code, char* out) const noexcept {
  // Only codes valid on the wire reach the writer, so it has nothing to throw for.
  if (!websocket::close_code_valid_on_wire(code)) code = static_cast<uint16_t>(websocket::CloseCode::normal);
  return static_cast<int>(websocket::write_close_payload(static_cast<websocket::CloseCode>(code), {}, out));
}

}  // namespace evwheel
