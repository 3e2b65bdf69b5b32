// libFuzzer target: Buffer and BufferPool against a std::string model (buffer_ops.hpp).
#include <cstddef>
#include <cstdint>

#include "buffer_ops.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  fuzz::buffer_ops(data, size);
  return 0;
}
