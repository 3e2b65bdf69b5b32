// codec — how frames look on the wire.  A connection asks its codec to find whole frames at
// the front of the received bytes and to write the header that goes before a payload.
//
// Two codecs ship; a user can write their own by implementing Codec:
//
// framed (the default) — every frame is a 5-byte header and a payload:
//     offset 0  uint32, big-endian  payload length in bytes (not counting the header)
//     offset 4  uint8               type: 0 = data, 1 = ping, 2 = pong
//     offset 5  payload
//   A ping's payload is opaque (evwheel sends 8 bytes); the pong answering it echoes the same
//   bytes.  A length above the codec's max_frame or an unknown type is a protocol error, known
//   as soon as those bytes are in (a seed peer's "ping" is refused on its 4th byte).
//   Example, a ping with payload 01..08:  00 00 00 08 01 01 02 03 04 05 06 07 08
//
// seed — what clients written like the well-known Go heartbeat article speak: the 4 ASCII
//   bytes "ping" and "pong", nothing else, no framing.  Tokens may arrive coalesced
//   ("pingping") or split ("pi" "ng"); both are handled.  Having no framing, seed cannot carry
//   data: any other byte sequence is a protocol error, and sending data on it is refused.  The
//   error is known at the first byte that no token continues with (a framed peer's first byte
//   is a length byte, 0 for any frame under 16 MiB: refused at once).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace evwheel {

enum class FrameType : uint8_t { data = 0, ping = 1, pong = 2 };

struct Frame {
  FrameType type = FrameType::data;
  std::string_view payload;  // points into the bytes given to decode()
};

class Codec {
 public:
  static constexpr std::size_t kMaxHeader = 16;  // the most bytes encode_header() writes

  virtual ~Codec() = default;
  virtual std::string_view name() const noexcept = 0;

  // Looks for one whole frame at the front of `input`.  Returns its length in bytes (header
  // and payload) and fills `frame`; 0 when more bytes are needed; -1 on a protocol error
  // (the stream cannot be a valid one, whatever follows).
  virtual std::ptrdiff_t decode(std::string_view input, Frame& frame) const noexcept = 0;

  // Writes the header for a frame of `type` with `payload_size` payload bytes into `header`
  // (kMaxHeader bytes available) and returns its length, or -1 when this codec cannot carry
  // such a frame (seed: data frames; any codec: a payload above its maximum).
  virtual int encode_header(FrameType type, std::size_t payload_size, char* header) const noexcept = 0;

  // How many payload bytes a ping carries (the pong echoes them); 0 for tokens without one.
  virtual std::size_t ping_payload_size() const noexcept = 0;
};

class FramedCodec final : public Codec {
 public:
  static constexpr std::size_t kHeaderSize = 5;
  static constexpr uint32_t kDefaultMaxFrame = 1u << 20;

  // `max_frame`: the largest payload accepted or sent; throws std::invalid_argument on 0.
  explicit FramedCodec(uint32_t max_frame = kDefaultMaxFrame);
  std::string_view name() const noexcept override { return "framed"; }
  std::ptrdiff_t decode(std::string_view input, Frame& frame) const noexcept override;
  int encode_header(FrameType type, std::size_t payload_size, char* header) const noexcept override;
  std::size_t ping_payload_size() const noexcept override { return 8; }
  uint32_t max_frame() const noexcept { return max_frame_; }

 private:
  uint32_t max_frame_;
};

class SeedCodec final : public Codec {
 public:
  std::string_view name() const noexcept override { return "seed"; }
  std::ptrdiff_t decode(std::string_view input, Frame& frame) const noexcept override;
  int encode_header(FrameType type, std::size_t payload_size, char* header) const noexcept override;
  std::size_t ping_payload_size() const noexcept override { return 0; }
};

}  // namespace evwheel
