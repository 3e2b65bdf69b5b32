// libFuzzer target: TimerWheel driven by arbitrary operation sequences against the reference
// model (wheel_ops.hpp, tests/wheel_model.hpp).
#include <cstddef>
#include <cstdint>

#include "wheel_ops.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  fuzz::wheel_ops(data, size);
  return 0;
}
