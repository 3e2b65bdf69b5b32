// codec_split — the property both codec fuzz targets check: decoding a byte stream gives the
// same frames, and the same error, however the stream is cut into reads.
//
// A fuzz input is  [split count n] [n chunk lengths, one byte each] [the stream ...];
// the stream is fed in chunks of those lengths (a zero-length read included), the rest last.
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
  const std::vector<char> exact(pending.begin(), pending.end());
  const std::string_view input(exact.data(), exact.size());
  evwheel::Frame frame;
  std::ptrdiff_t n = codec.decode(input, frame);
  FUZZ_CHECK(n >= -1 && n <= static_cast<std::ptrdiff_t>(input.size()));
  if (n <= 0) return n;
  FUZZ_CHECK(frame.type == evwheel::FrameType::data || frame.type == evwheel::FrameType::ping ||
             frame.type == evwheel::FrameType::pong);
  // The payload is the tail of the frame, and the frame's header is what encode_header() writes.
  FUZZ_CHECK(frame.payload.empty() || frame.payload.data() + frame.payload.size() == input.data() + n);
  char header[evwheel::Codec::kMaxHeader];
  int header_size = codec.encode_header(frame.type, frame.payload.size(), header);
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
  std::size_t received = 0, taken = 0;
  auto take_frames = [&] {
    for (;;) {
      std::ptrdiff_t n = decode_checked(codec, stream.substr(taken, received - taken), out.frames);
      if (n < 0) out.error = true;
      if (n <= 0) return;
      taken += static_cast<std::size_t>(n);
    }
  };
  for (std::size_t chunk : chunks) {
    received = std::min(stream.size(), received + chunk);
    take_frames();
    if (out.error) return out;  // a connection closes on the first protocol error
  }
  received = stream.size();
  take_frames();
  return out;
}

// The property: chunked decoding equals decoding the whole stream in one read.
inline void check_any_split(const evwheel::Codec& codec, const uint8_t* data, std::size_t size) {
  if (size == 0) return;
  std::size_t n_chunks = data[0];
  if (size < 1 + n_chunks) return;
  std::vector<std::size_t> chunks(data + 1, data + 1 + n_chunks);
  std::string_view stream(reinterpret_cast<const char*>(data) + 1 + n_chunks, size - 1 - n_chunks);
  FUZZ_CHECK(decode_in_chunks(codec, stream, chunks) == decode_in_chunks(codec, stream, {}));
}

}  // namespace codec_split

// The targets.  framed_split: the first byte picks max_frame (1 ..= 255, or 0 for the default
// 1 MiB) so that the length limit is hit as often as whole frames are; the rest is the input
// above.  seed_split: the input above.
inline void framed_split(const uint8_t* data, std::size_t size) {
  if (size == 0) return;
  const uint32_t max_frame = data[0] == 0 ? evwheel::FramedCodec::kDefaultMaxFrame : data[0];
  codec_split::check_any_split(evwheel::FramedCodec(max_frame), data + 1, size - 1);
}
inline void seed_split(const uint8_t* data, std::size_t size) {
  codec_split::check_any_split(evwheel::SeedCodec(), data, size);
}

}  // namespace fuzz
