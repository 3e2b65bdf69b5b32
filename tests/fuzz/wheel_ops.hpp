// wheel_ops — the timer wheel fuzz property: any sequence of schedule / touch / cancel /
// advance, with any tick and level count, does what the reference model in
// tests/wheel_model.hpp says (which entries fire, at which tick, in which order; scheduled(),
// deadline(), next_due(), empty()), and a final drain fires everything left.
//
// Input: [tick choice] [levels] [start] then operations of three bytes each:
//     [op] [a] [b]   op & 3: 0 schedule, 1 touch, 2 cancel, 3 advance;  (op >> 2) % 16: the entry
//                    a, b: a time (see time_from) — a deadline, or advance()'s `now`
// Times are bounded as in the randomised test: a delay is at most 2^(6 * levels + 8) ticks
// (256 revolutions of the top level: entries beyond it are re-filed once per revolution, so
// longer delays only cost time) and no time passes 2^61 ns.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "../wheel_model.hpp"
#include "fuzz_check.hpp"

namespace fuzz {
namespace wheel_fuzz {

inline constexpr int kEntries = 16;
inline constexpr int64_t kTimeLimit = int64_t{1} << 61;
// 1 ns, tiny odd ticks, 1 µs, a prime near 1 ms (deadlines rarely on tick starts), 1 s.
inline constexpr int64_t kTicks[] = {1, 3, 1'000, 999'983, 1'000'000'000};

// A time near the model's clock: a delay of (b << bits) >> 8 ticks, bits = a % (max_bits + 1)
// — so small and huge delays are equally easy to reach — plus a sub-tick offset picked by
// a's top bits (0, 1 ns, half a tick, a tick less 1 ns), forward or (op's bit 7) backward.
inline int64_t time_from(const wheel_model::ModelledWheel& model, uint8_t op, uint8_t a, uint8_t b) {
  const int64_t tick = model.tick();
  const unsigned max_bits = wheel_model::delay_bits(tick, 6 * model.levels() + 8);
  const unsigned bits = a % (max_bits + 1);
  const auto ticks = static_cast<int64_t>((uint64_t{b} << bits) >> 8);
  const int64_t offsets[] = {0, 1, tick / 2, tick - 1};
  const int64_t delay = ticks * tick + offsets[a >> 6];
  const int64_t time = op & 0x80 ? model.clock() - delay : model.clock() + delay;
  return std::min(time, kTimeLimit);
}

}  // namespace wheel_fuzz

inline void wheel_ops(const uint8_t* data, std::size_t size) {
  using namespace wheel_fuzz;
  if (size < 3) return;
  const int64_t tick = kTicks[data[0] % 5];
  const unsigned levels = 1 + data[1] % evwheel::TimerWheel::kMaxLevels;
  const int64_t start = int64_t{data[2]} * 1'000'003;
  wheel_model::ModelledWheel model(tick, levels, start, kEntries, [](const std::string& what) { failed(what); });
  for (std::size_t at = 3; at + 3 <= size; at += 3) {
    const uint8_t op = data[at], a = data[at + 1], b = data[at + 2];
    const int id = (op >> 2) % kEntries;
    switch (op & 3) {
      case 0: model.schedule(id, time_from(model, op, a, b)); break;
      case 1: model.touch(id, time_from(model, op, a, b)); break;
      case 2: model.cancel(id); break;
      default: model.advance(time_from(model, op, a, b)); break;
    }
  }
  model.drain();
}

}  // namespace fuzz
