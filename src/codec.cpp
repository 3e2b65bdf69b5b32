// codec — the framed and seed wire formats described in include/evwheel/codec.hpp.
#include "evwheel/codec.hpp"

#include <cstring>
#include <stdexcept>

namespace evwheel {

FramedCodec::FramedCodec(uint32_t max_frame) : max_frame_(max_frame) {
  if (max_frame == 0) throw std::invalid_argument("evwheel: framed codec max_frame must be > 0");
}

std::ptrdiff_t FramedCodec::decode(std::string_view input, Frame& frame) const noexcept {
  constexpr std::size_t kLengthSize = 4;
  if (input.size() < kLengthSize) return 0;
  auto byte = [&](std::size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(input[i])); };
  uint32_t length = byte(0) << 24 | byte(1) << 16 | byte(2) << 8 | byte(3);
  // Judged as soon as the length is in, so an oversized frame is refused before it is
  // buffered, and a peer speaking another protocol is refused at once: the seed's "ping" read
  // as a length is 1.9 GB, and no fifth byte may ever come.
  if (length > max_frame_) return -1;
  if (input.size() < kHeaderSize) return 0;
  if (byte(4) > static_cast<uint32_t>(FrameType::pong)) return -1;
  if (input.size() - kHeaderSize < length) return 0;
  frame.type = static_cast<FrameType>(byte(4));
  frame.payload = input.substr(kHeaderSize, length);
  return static_cast<std::ptrdiff_t>(kHeaderSize + length);
}

int FramedCodec::encode_header(FrameType type, std::size_t payload_size, char* header) const noexcept {
  if (payload_size > max_frame_) return -1;
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

std::ptrdiff_t SeedCodec::decode(std::string_view input, Frame& frame) const noexcept {
  std::string_view head = input.substr(0, kTokenSize);
  // A prefix that cannot become either token is garbage now, not after more bytes arrive.
  bool ping = kPing.substr(0, head.size()) == head;
  bool pong = kPong.substr(0, head.size()) == head;
  if (!ping && !pong) return -1;
  if (head.size() < kTokenSize) return 0;
  frame.type = ping ? FrameType::ping : FrameType::pong;
  frame.payload = {};
  return static_cast<std::ptrdiff_t>(kTokenSize);
}

int SeedCodec::encode_header(FrameType type, std::size_t payload_size, char* header) const noexcept {
  if (type == FrameType::data || payload_size != 0) return -1;
  std::memcpy(header, type == FrameType::ping ? kPing.data() : kPong.data(), kTokenSize);
  return static_cast<int>(kTokenSize);
}

}  // namespace evwheel
