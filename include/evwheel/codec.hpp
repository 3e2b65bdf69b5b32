// codec — how frames look on the wire.  A connection asks its codec to find whole frames at
// the front of the received bytes and to write the header that goes before a payload.
//
// Three codecs ship (websocket in websocket.hpp); a user can write their own by implementing
// Codec:
//
// framed (the default) — every frame is a 5-byte header and a payload:
//     offset 0  uint32, big-endian  payload length in bytes (not counting the header)
//     offset 4  uint8               type: 0 = data, 1 = ping, 2 = pong
//     offset 5  payload
//   A ping's payload is opaque (evwheel sends 8 bytes); the pong answering it echoes the same
//   bytes.  A length above the codec's max_frame or an unknown type is a protocol error, found
//   as soon as the 4 length bytes are in (a peer speaking another protocol is refused at once,
//   not after it sent max_frame bytes).  Text and binary data travel alike (type 0).
//   Example, a ping with payload 01..08:  00 00 00 08 01 01 02 03 04 05 06 07 08
//
// seed — what clients written like the well-known Go heartbeat article speak: the 4 ASCII
//   bytes "ping" and "pong", nothing else, no framing.  Tokens may arrive coalesced
//   ("pingping") or split ("pi" "ng"); both are handled.  Having no framing, seed cannot carry
//   data: any other byte sequence is a protocol error, and sending data on it is refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace evwheel {

enum class FrameType : uint8_t { data = 0, ping = 1, pong = 2, close = 3 };
enum class MessageType : uint8_t { binary, text };  // what a data frame's payload is

struct Frame {
  FrameType type = FrameType::data;
  MessageType message = MessageType::binary;  // data frames (every fragment carries its message's)
  bool final = true;         // data frames: the last (or only) fragment of its message
  uint16_t code = 0;         // close frames: the peer's close code (0: none given); after a
                             // protocol error: the close code to answer with (0: none)
  std::string_view payload;  // points into the bytes given to decode(); a close's reason
};

// What a codec remembers of one connection between frames (a WebSocket message in fragments,
// its UTF-8 so far): two bytes in the Connection, zero for a new one.
struct CodecState {
  uint8_t bytes[2] = {};
};

class Codec {
 public:
  static constexpr std::size_t kMaxHeader = 16;  // the most bytes encode_header() writes

  virtual ~Codec() = default;
  virtual std::string_view name() const noexcept = 0;

  // Looks for one whole frame at the front of the `size` bytes at `input`.  Returns its length
  // in bytes (header and payload) and fills `frame`; 0 when more bytes are needed; -1 on a
  // protocol error (the stream cannot be a valid one, whatever follows; frame.code then says
  // the close code to answer with, if the protocol has close frames).  The bytes are writable:
  // a codec may rewrite a frame in place (WebSocket unmasks payloads).  `state` is the
  // connection's; `assembled` is how many payload bytes of a fragmented message the connection
  // holds so far (the codec bounds a message's size).
  virtual std::ptrdiff_t decode(char* input, std::size_t size, Frame& frame, CodecState& state,
                                std::size_t assembled) const noexcept = 0;

  // Writes the header for one whole frame of `type` (`message` for data) with `payload_size`
  // payload bytes into `header` (kMaxHeader bytes available) and returns its length, or -1
  // when this codec cannot carry such a frame (seed: data frames; any codec: a payload above
  // its maximum).  `mask` is the key the payload will be masked with (masks_payload()), else null.
  virtual int encode_header(FrameType type, MessageType message, std::size_t payload_size, const uint8_t* mask,
                            char* header) const noexcept = 0;

  // How many payload bytes a ping carries (the pong echoes them, at most 8 are used); 0 for
  // tokens without one.
  virtual std::size_t ping_payload_size() const noexcept = 0;

  // Whether every payload sent is masked with a fresh random 4-byte key (a WebSocket client,
  // RFC 6455 §5.3); mask() then applies it.
  virtual bool masks_payload() const noexcept { return false; }
  virtual void mask(char* /*payload*/, std::size_t /*size*/, const uint8_t* /*key*/) const noexcept {}

  // For a protocol with close frames: writes the payload of a close frame carrying `code` to
  // `out` (125 bytes available) and returns its size; -1 when the protocol has none (then a
  // connection just closes).
  virtual int close_payload(uint16_t /*code*/, char* /*out*/) const noexcept { return -1; }
};

class FramedCodec final : public Codec {
 public:
  static constexpr std::size_t kHeaderSize = 5;
  static constexpr uint32_t kDefaultMaxFrame = 1u << 20;

  // `max_frame`: the largest payload accepted or sent; throws std::invalid_argument on 0.
  explicit FramedCodec(uint32_t max_frame = kDefaultMaxFrame);
  std::string_view name() const noexcept override { return "framed"; }
  std::ptrdiff_t decode(char* input, std::size_t size, Frame& frame, CodecState& state,
                        std::size_t assembled) const noexcept override;
  int encode_header(FrameType type, MessageType message, std::size_t payload_size, const uint8_t* mask,
                    char* header) const noexcept override;
  std::size_t ping_payload_size() const noexcept override { return 8; }
  uint32_t max_frame() const noexcept { return max_frame_; }

 private:
  uint32_t max_frame_;
};

class SeedCodec final : public Codec {
 public:
  std::string_view name() const noexcept override { return "seed"; }
  std::ptrdiff_t decode(char* input, std::size_t size, Frame& frame, CodecState& state,
                        std::size_t assembled) const noexcept override;
  int encode_header(FrameType type, MessageType message, std::size_t payload_size, const uint8_t* mask,
                    char* header) const noexcept override;
  std::size_t ping_payload_size() const noexcept override { return 0; }
};

}  // namespace evwheel
