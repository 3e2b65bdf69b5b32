// chunked_input — how the stream fuzz targets read their input: a byte stream and the reads it
// arrives in.  The input is  [read count n] [n read lengths, one byte each] [the stream ...];
// the stream is delivered in reads of those lengths (a zero-length read included), the rest
// in a last read.  Deliveries are the prefixes received so far.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace fuzz {

struct ChunkedInput {
  std::vector<std::size_t> reads;
  std::string_view stream;
};

// False when the input is too short to hold its own read lengths.
inline bool read_chunked_input(const uint8_t* data, std::size_t size, ChunkedInput* out) {
  if (size == 0 || size < 1 + std::size_t{data[0]}) return false;
  out->reads.assign(data + 1, data + 1 + data[0]);
  out->stream = std::string_view(reinterpret_cast<const char*>(data) + 1 + data[0], size - 1 - data[0]);
  return true;
}

// Calls deliver(received) with the growing prefix of `stream` after each read of `reads`, and
// once more with the whole stream.
template <typename Deliver>
void deliver_in_reads(std::string_view stream, const std::vector<std::size_t>& reads, Deliver deliver) {
  std::size_t received = 0;
  for (std::size_t read : reads) {
    received = std::min(stream.size(), received + read);
    deliver(stream.substr(0, received));
  }
  deliver(stream);
}

}  // namespace fuzz
