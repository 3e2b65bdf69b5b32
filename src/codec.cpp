// codec — the framed and seed wire formats described in include/evwheel/codec.hpp.
#include "evwheel/codec.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace evwheel {

FramedCodec::FramedCodec(uint32_t max_frame) : max_frame_(max_frame) {
  if (max_frame == 0) throw std::invalid_argument("evwheel: framed codec max_frame must be > 0");
}

std::ptrdiff_t FramedCodec::decode(char* input, std::size_t size, Frame& frame, CodecState&,
                                   std::size_t) const noexcept {
  auto byte = [&](std::size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(input[i])); };
  if (size < 4) return 0;
  // Judged from the length alone, as soon as it is in: an oversized frame is refused before it
  // is buffered, and a peer speaking another protocol (seed's "ping") at once.
  uint32_t length = byte(0) << 24 | byte(1) << 16 | byte(2) << 8 | byte(3);
  if (length > max_frame_) return -1;
  if (size < kHeaderSize) return 0;
  uint32_t type = byte(4);
  if (type > static_cast<uint32_t>(FrameType::pong)) return -1;
  if (size - kHeaderSize < length) return 0;
  frame = Frame{};
  frame.type = static_cast<FrameType>(type);
  frame.payload = std::string_view(input + kHeaderSize, length);
  return static_cast<std::ptrdiff_t>(kHeaderSize + length);
}

int FramedCodec::encode_header(FrameType type, MessageType, std::size_t payload_size, const uint8_t*,
                               char* header) const noexcept {
  if (payload_size > max_frame_ || type == FrameType::close) return -1;
  auto length = static_cast<uint32_t>(payload_size);
  header[0] = static_cast<char>(length >> 24);
  header[1] = static_cast<char>(length >> 16);
  header[2] = static_cast<char>(length >> 8);
  header[3] = static_cast<char>(length);
  header[4] = static_cast<char>(type);
  return static_cast<int>(kHeaderSize);
}

namespace {
constexpr std::string_view kPing = "ping";
constexpr std::string_view kPong = "pong";
constexpr std::size_t kTokenSize = 4;
}  // namespace

std::ptrdiff_t SeedCodec::decode(char* input, std::size_t size, Frame& frame, CodecState&,
                                 std::size_t) const noexcept {
  std::string_view head(input, std::min(size, kTokenSize));
  // A prefix that cannot become either token is garbage now, not after more bytes arrive.
  bool ping = kPing.substr(0, head.size()) == head;
  bool pong = kPong.substr(0, head.size()) == head;
  if (!ping && !pong) return -1;
  if (head.size() < kTokenSize) return 0;
  frame = Frame{};
  frame.type = ping ? FrameType::ping : FrameType::pong;
  return static_cast<std::ptrdiff_t>(kTokenSize);
}

int SeedCodec::encode_header(FrameType type, MessageType, std::size_t payload_size, const uint8_t*,
                             char* header) const noexcept {
  if (type == FrameType::data || type == FrameType::close || payload_size != 0) return -1;
  std::memcpy(header, type == FrameType::ping ? kPing.data() : kPong.data(), kTokenSize);
  return static_cast<int>(kTokenSize);
}

}  // namespace evwheel
