// Inputs the fuzz targets (tests/fuzz/) once crashed on, replayed through the same properties so
// that a fixed bug stays fixed in every build, sanitized or not.  Each case names the target,
// what the input does and what was wrong; `make test SAN=address` also catches the memory error
// itself, where a plain build may only see its effect on the bytes.
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "fuzz/buffer_ops.hpp"

namespace {

std::vector<uint8_t> bytes(std::initializer_list<uint8_t> list) { return list; }

}  // namespace

TEST_CASE("fuzz_buffer: appending a buffer's own bytes while it grows") {
  // max_kept 1; acquire; append 4 * 97 bytes; append 133 of them (from offset 255) to the
  // same buffer, which must grow: append() read them from the storage it had just freed.
  const auto input = bytes({0x01, 0x00, 0x00, 0x63, 0x04, 0x04, 0xff, 0xfa});
  CHECK_NOTHROW(fuzz::buffer_ops(input.data(), input.size()));
}
