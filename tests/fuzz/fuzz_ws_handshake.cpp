// libFuzzer target: the WebSocket opening handshake — finding, parsing and classifying an HTTP
// head that arrives in arbitrary reads, and the client's check of the server's answer
// (ws_handshake_stream.hpp).
#include <cstddef>
#include <cstdint>

#include "ws_handshake_stream.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  fuzz::ws_handshake_stream::check(data, size);
  return 0;
}
