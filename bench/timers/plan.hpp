// timers — the workload of the `timers` mode: its constants, and the plan, every operation of
// one run precomputed (so the random number generator is never timed).  See timers.cpp for
// the workload as a whole.
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace bench {
namespace timers {

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kStart = 1000 * kSecond;  // the clock's origin: any positive time
constexpr uint32_t kSpreadUs = 30'000'000;  // new deadlines: now + U(0, 30 s), in microseconds
constexpr int64_t kIdleTimeout = 30 * kSecond;
constexpr int64_t kStep = 100;  // ns the clock creeps per operation
constexpr uint32_t kWindow = 64;  // sched+cancel: requests in flight
constexpr unsigned kRuns = 3;

// The plan: every operation of one run, precomputed.  A run populates the structure, does one
// or more rounds ("reps") of the timed operations — each rep leaves the same n timers
// scheduled and the same spares free — and may end with the expiry drain.

struct Op {
  uint32_t timer;     // index into the timer objects
  uint32_t delay_us;  // deadline = now + delay
};

struct Rep {
  std::vector<Op> schedule;       // rounds * batch
  std::vector<uint32_t> cancel;   // rounds * batch
  std::vector<uint32_t> refresh;  // ops
  std::vector<Op> pair;           // ops
};

struct Plan {
  uint32_t live = 0;   // n
  uint32_t batch = 0;  // n / 8: spare timers, schedule and cancel batch size
  uint32_t total = 0;  // n + batch timer objects
  uint32_t window = 0;
  std::vector<Op> populate;  // n
  std::vector<Rep> reps;
};

// mt19937_64's bits (specified exactly by the standard) reduced by multiply-shift: the same
// sequence with every standard library, unlike std::uniform_int_distribution.
class Rng {
 public:
  explicit Rng(uint64_t seed) : bits_(seed) {}
  uint32_t below(uint32_t bound) { return static_cast<uint32_t>(((bits_() >> 32) * bound) >> 32); }
  template <class T>
  void shuffle(T* first, uint32_t count) {
    for (uint32_t i = count; i > 1; --i) std::swap(first[i - 1], first[below(i)]);
  }

 private:
  std::mt19937_64 bits_;
};

// The plan of run number `run` for n timers: `ops` operations per column in each of `reps`
// reps.  Every structure gets the same plan for the same arguments.
Plan make_plan(uint32_t n, uint32_t ops, unsigned reps, uint64_t seed, unsigned run);

}  // namespace timers
}  // namespace bench
