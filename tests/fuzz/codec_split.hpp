// codec_split — the property both codec fuzz targets check: decoding a byte stream gives the
// same frames, and the same error, however the stream is cut into reads — and those are the
// frames and the error that the wire format in include/evwheel/codec.hpp defines, as read by
// a plain parser here (framed_by_spec, seed_by_spec) that knows nothing of the codec's code.
//
// A fuzz input is a stream and the reads it arrives in (chunked_input.hpp).
// Each decode() sees an exact-size heap copy of the pending bytes, so a read past them is an
// AddressSanitizer report, not a silent success.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chunked_input.hpp"
#include "evwheel/codec.hpp"
#include "fuzz_check.hpp"

namespace fuzz {
namespace codec_split {

using Frames = std::vector<std::pair<evwheel::FrameType, std::string>>;  // type and payload

struct Decoded {
  Frames frames;
  bool error = false;
  bool operator==(const Decoded& o) const { return frames == o.frames && error == o.error; }
};

// One decode() of `pending`, its result checked against the codec contract; a frame found is
// appended to `frames` (copied: the exact-size copy it points into dies here).
inline std::ptrdiff_t decode_checked(const evwheel::Codec& codec, std::string_view pending, Frames& frames) {
  std::vector<char> exact(pending.begin(), pending.end());
  const std::string_view input(exact.data(), exact.size());
  evwheel::Frame frame;
  evwheel::CodecState state;
  std::ptrdiff_t n = codec.decode(exact.data(), exact.size(), frame, state, 0);
  FUZZ_CHECK(n >= -1 && n <= static_cast<std::ptrdiff_t>(input.size()));
  if (n <= 0) return n;
  FUZZ_CHECK(frame.type == evwheel::FrameType::data || frame.type == evwheel::FrameType::ping ||
             frame.type == evwheel::FrameType::pong);
  // The payload is the tail of the frame, and the frame's header is what encode_header() writes.
  FUZZ_CHECK(frame.payload.empty() || frame.payload.data() + frame.payload.size() == input.data() + n);
  char header[evwheel::Codec::kMaxHeader];
  int header_size = codec.encode_header(frame.type, frame.message, frame.payload.size(), nullptr, header);
  FUZZ_CHECK(header_size >= 0 && static_cast<std::size_t>(header_size) + frame.payload.size() ==
                                     static_cast<std::size_t>(n));
  FUZZ_CHECK(input.substr(0, static_cast<std::size_t>(header_size)) ==
             std::string_view(header, static_cast<std::size_t>(header_size)));
  frames.emplace_back(frame.type, std::string(frame.payload));
  return n;
}

// Feeds `stream` to `codec` in reads of `chunks` lengths (the remainder as a last read), the
// way a connection does: whole frames are taken from the front, a partial one waits.
inline Decoded decode_in_chunks(const evwheel::Codec& codec, std::string_view stream,
                                const std::vector<std::size_t>& chunks) {
  Decoded out;
  std::size_t taken = 0;
  deliver_in_reads(stream, chunks, [&](std::string_view received) {
    while (!out.error) {  // a connection closes on the first protocol error
      std::ptrdiff_t n = decode_checked(codec, received.substr(taken), out.frames);
      if (n < 0) out.error = true;
      if (n <= 0) return;
      taken += static_cast<std::size_t>(n);
    }
  });
  return out;
}

// The framed format: a 4-byte big-endian length, a type byte (0..2), the payload; a length
// above max_frame is an error as soon as the length is there, another type as soon as the
// type byte is.
inline Decoded framed_by_spec(std::string_view stream, uint32_t max_frame) {
  Decoded out;
  while (stream.size() >= 4) {
    uint32_t length = 0;
    for (int i = 0; i < 4; ++i) length = length << 8 | static_cast<unsigned char>(stream[static_cast<std::size_t>(i)]);
    if (length > max_frame || (stream.size() >= 5 && static_cast<unsigned char>(stream[4]) > 2)) {
      out.error = true;
      break;
    }
    if (stream.size() < 5 || stream.size() - 5 < length) break;
    const auto type = static_cast<unsigned char>(stream[4]);
    out.frames.emplace_back(static_cast<evwheel::FrameType>(type), std::string(stream.substr(5, length)));
    stream.remove_prefix(5 + length);
  }
  return out;
}

// The seed format: "ping" and "pong" back to back; bytes that cannot begin either are an error.
inline Decoded seed_by_spec(std::string_view stream) {
  Decoded out;
  while (!stream.empty()) {
    const std::string_view head = stream.substr(0, 4);
    const bool ping = std::string_view("ping").substr(0, head.size()) == head;
    const bool pong = std::string_view("pong").substr(0, head.size()) == head;
    if (!ping && !pong) {
      out.error = true;
      break;
    }
    if (head.size() < 4) break;
    out.frames.emplace_back(ping ? evwheel::FrameType::ping : evwheel::FrameType::pong, std::string());
    stream.remove_prefix(4);
  }
  return out;
}

// The property: chunked decoding, decoding the whole stream in one read, and `by_spec` agree.
template <typename BySpec>
void check_any_split(const evwheel::Codec& codec, const uint8_t* data, std::size_t size, BySpec by_spec) {
  ChunkedInput input;
  if (!read_chunked_input(data, size, &input)) return;
  const Decoded whole = decode_in_chunks(codec, input.stream, {});
  FUZZ_CHECK(whole == by_spec(input.stream));
  FUZZ_CHECK(decode_in_chunks(codec, input.stream, input.reads) == whole);
}

}  // namespace codec_split

// The targets.  framed_split: the first byte picks max_frame (1 ..= 255, or 0 for the default
// 1 MiB) so that the length limit is hit as often as whole frames are; the rest is the input
// above.  seed_split: the input above.
inline void framed_split(const uint8_t* data, std::size_t size) {
  if (size == 0) return;
  const uint32_t max_frame = data[0] == 0 ? evwheel::FramedCodec::kDefaultMaxFrame : data[0];
  codec_split::check_any_split(evwheel::FramedCodec(max_frame), data + 1, size - 1, [&](std::string_view stream) {
    return codec_split::framed_by_spec(stream, max_frame);
  });
}
inline void seed_split(const uint8_t* data, std::size_t size) {
  codec_split::check_any_split(evwheel::SeedCodec(), data, size, codec_split::seed_by_spec);
}

}  // namespace fuzz
