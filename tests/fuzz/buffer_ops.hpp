// buffer_ops — the buffer fuzz property: Buffer and BufferPool against a model, a std::string
// per buffer in use and a count of the buffers the pool keeps.
//
// Input: [max_kept] [max_kept_capacity / 16] then operations, one byte each (its low 3 bits
// the operation, the rest the buffer slot) followed by their arguments.  After every operation
// each buffer's bytes, size and emptiness equal its model's, and the pool keeps what the model
// says it keeps.  LeakSanitizer checks that every buffer is freed by the end.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "evwheel/buffer.hpp"
#include "fuzz_check.hpp"

namespace fuzz {
namespace buffer_model {

inline constexpr std::size_t kSlots = 4;  // buffers in use at once

// Reads the input front to back; exhausted, it reads zeros.
struct Input {
  const uint8_t* data;
  std::size_t size;
  std::size_t at = 0;
  bool done() const { return at >= size; }
  uint8_t byte() { return at < size ? data[at++] : 0; }
  std::string_view bytes(std::size_t n) {
    n = std::min(n, size - std::min(at, size));
    std::string_view out(reinterpret_cast<const char*>(data) + at, n);
    at += n;
    return out;
  }
};

struct Slot {
  evwheel::Buffer* buffer = nullptr;
  std::string model;
};

inline void check(const Slot& slot) {
  if (!slot.buffer) return;
  const evwheel::Buffer& b = *slot.buffer;
  FUZZ_CHECK(b.size() == slot.model.size());
  FUZZ_CHECK(b.empty() == slot.model.empty());
  FUZZ_CHECK(b.capacity() >= b.size());
  FUZZ_CHECK(std::string_view(b.data(), b.size()) == slot.model);
}

}  // namespace buffer_model

inline void buffer_ops(const uint8_t* data, std::size_t size) {
  using namespace buffer_model;
  Input in{data, size};
  const std::size_t max_kept = in.byte() % 4;
  const std::size_t max_kept_capacity = std::size_t{in.byte()} * 16;
  evwheel::BufferPool pool(max_kept, max_kept_capacity);
  std::size_t kept = 0;  // the model of pool.kept()
  Slot slots[kSlots];

  auto release = [&](Slot& slot) {
    if (!slot.buffer) return;
    bool keeps = kept < max_kept && slot.buffer->capacity() <= max_kept_capacity;
    pool.release(slot.buffer);
    kept += keeps;
    slot = Slot{};
  };

  while (!in.done()) {
    const uint8_t op = in.byte();
    Slot& slot = slots[(op >> 3) % kSlots];
    switch (op & 7) {
      case 0:  // acquire: an empty buffer, taken from the kept ones first
        if (slot.buffer) break;
        slot.buffer = pool.acquire();
        FUZZ_CHECK(slot.buffer && slot.buffer->empty());
        kept -= kept > 0;
        break;
      case 1:
        release(slot);
        break;
      case 2: {  // append bytes of the input
        if (!slot.buffer) break;
        std::string_view bytes = in.bytes(in.byte());
        slot.buffer->append(bytes.data(), bytes.size());
        slot.model += bytes;
        break;
      }
      case 3: {  // append a large run (growth past several doublings)
        if (!slot.buffer) break;
        const std::string run(std::size_t{in.byte()} * 97, static_cast<char>(op));
        slot.buffer->append(run.data(), run.size());
        slot.model += run;
        break;
      }
      case 4: {  // append part of the buffer's own bytes to itself
        if (!slot.buffer || slot.model.empty()) break;
        std::size_t from = in.byte() % slot.model.size();
        std::size_t n = std::min<std::size_t>(in.byte(), slot.model.size() - from);
        slot.buffer->append(slot.buffer->data() + from, n);
        slot.model += slot.model.substr(from, n);
        break;
      }
      case 5:
      case 6: {  // consume up to everything
        if (!slot.buffer) break;
        std::size_t n = slot.model.empty() ? 0 : std::size_t{in.byte()} % (slot.model.size() + 1);
        slot.buffer->consume(n);
        slot.model.erase(0, n);
        break;
      }
      default:
        if (!slot.buffer) break;
        slot.buffer->clear();
        slot.model.clear();
        break;
    }
    check(slot);
    FUZZ_CHECK(pool.kept() == kept);
  }
  for (Slot& slot : slots) release(slot);
  FUZZ_CHECK(pool.kept() == kept);
}

}  // namespace fuzz
