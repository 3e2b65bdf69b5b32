// libFuzzer target: WebSocket frames received in arbitrary reads, against RFC 6455 read by a
// plain parser (ws_frame_stream.hpp).
#include <cstddef>
#include <cstdint>

#include "ws_frame_stream.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  fuzz::ws_frame_stream::check(data, size);
  return 0;
}
