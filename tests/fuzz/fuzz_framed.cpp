// libFuzzer target: FramedCodec's decoder over streams cut at arbitrary points (codec_split.hpp).
#include <cstddef>
#include <cstdint>

#include "codec_split.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  fuzz::framed_split(data, size);
  return 0;
}
