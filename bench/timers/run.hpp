// timers — one run of one structure through a plan (Run, run_once), and the memory floor
// under every structure (measure_memory_floor).  Templates on the structure, so each is
// compiled with its own calls inlined, as an event loop would use it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <new>
#include <vector>

#include "plan.hpp"
#include "structures.hpp"

namespace bench {
namespace timers {

using Clock = std::chrono::steady_clock;

enum Column { kSchedule, kCancel, kPair, kRefresh, kExpiry, kColumns };
inline const char* const kColumnNames[kColumns] = {"schedule", "cancel", "sched+cancel", "refresh",
                                            "expiry"};

inline Clock::time_point stamp() {
  asm volatile("" ::: "memory");
  auto now = Clock::now();
  asm volatile("" ::: "memory");
  return now;
}

inline double ns_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::nano>(to - from).count();
}

// Where the timer objects live: one vector of cache lines per size, allocated (and its pages
// faulted in) once and reused by every run of every structure — at 1e7 that is 720 MB, which
// this VM takes about 2 s to fault in.  Each run constructs its structure's timers in it.

struct alignas(64) Line {
  unsigned char bytes[64];
};

template <class Timer>
class TimerArray {
  static_assert(sizeof(Timer) == sizeof(Line) && alignof(Timer) == alignof(Line),
                "a timer object is one cache line");

 public:
  TimerArray(std::vector<Line>& lines, uint32_t count) : lines_(lines), count_(count) {
    for (uint32_t i = 0; i < count; ++i) new (&lines_[i]) Timer();
    for (uint32_t i = 0; i < count; ++i) (*this)[i].id = i + 1;
  }
  ~TimerArray() {
    for (uint32_t i = 0; i < count_; ++i) (*this)[i].~Timer();
  }
  TimerArray(const TimerArray&) = delete;
  TimerArray& operator=(const TimerArray&) = delete;

  Timer& operator[](uint32_t i) { return *std::launder(reinterpret_cast<Timer*>(&lines_[i])); }
  const void* address(uint32_t i) const { return &lines_[i]; }

 private:
  std::vector<Line>& lines_;
  uint32_t count_;
};

// One run of one structure through a plan.

struct Sample {
  double ns[kColumns];  // best over the run's reps (expiry: its drain, if any)
  bool drained;
  uint64_t fired;
  uint64_t fired_sum;
};

inline int64_t round_up(int64_t time, int64_t tick) { return (time + tick - 1) / tick * tick; }

constexpr std::size_t kPrefetchDistance = 64;  // operations (--owners hot)

// The phases of a run, each a function of its own so that profilers (callgrind, perf) show
// them apart.  `now` is the simulated clock, carried from phase to phase.
template <class Timers, bool Hot>
class Run {
 public:
  using Timer = typename Timers::Timer;

  Run(const Plan& plan, int64_t tick, std::vector<Line>& lines)
      : plan_(plan),
        tick_(tick),
        structure_(kStart, tick, plan.total),
        timers_(lines, plan.total) {}

  [[gnu::noinline]] void populate() {
    for (const Op& op : plan_.populate) structure_.schedule(timers_[op.timer], after(op));
  }

  [[gnu::noinline]] void schedule_and_cancel(const Rep& rep, double* schedule_out,
                                             double* cancel_out) {
    double schedule_ns = 0, cancel_ns = 0;
    const std::size_t batch = plan_.batch;
    for (std::size_t first = 0; first < rep.schedule.size(); first += batch) {
      const std::size_t last = first + batch;
      warm_first(&rep.schedule[first], batch);
      auto t0 = stamp();
      for (std::size_t k = first; k < last; ++k) {
        if (k + kPrefetchDistance < last) warm(rep.schedule[k + kPrefetchDistance].timer);
        now_ += kStep;
        const Op& op = rep.schedule[k];
        structure_.schedule(timers_[op.timer], after(op));
      }
      auto t1 = stamp();
      warm_first(&rep.cancel[first], batch);
      auto t2 = stamp();
      for (std::size_t k = first; k < last; ++k) {
        if (k + kPrefetchDistance < last) warm(rep.cancel[k + kPrefetchDistance]);
        structure_.cancel(timers_[rep.cancel[k]]);
      }
      auto t3 = stamp();
      now_ += kStep * static_cast<int64_t>(batch);
      schedule_ns += ns_between(t0, t1);
      cancel_ns += ns_between(t2, t3);
    }
    *schedule_out = schedule_ns / static_cast<double>(rep.schedule.size());
    *cancel_out = cancel_ns / static_cast<double>(rep.cancel.size());
  }

  [[gnu::noinline]] double refresh(const Rep& rep) {
    const std::size_t ops = rep.refresh.size();
    warm_first(rep.refresh.data(), ops);
    auto t0 = stamp();
    for (std::size_t k = 0; k < ops; ++k) {
      if (k + kPrefetchDistance < ops) warm(rep.refresh[k + kPrefetchDistance]);
      now_ += kStep;
      structure_.refresh(timers_[rep.refresh[k]], now_ + kIdleTimeout);
    }
    auto t1 = stamp();
    return ns_between(t0, t1) / static_cast<double>(ops);
  }

  [[gnu::noinline]] double pairs(const Rep& rep) {
    const std::size_t ops = rep.pair.size();
    const std::size_t window = plan_.window;
    warm_first(rep.pair.data(), ops);
    auto t0 = stamp();
    for (std::size_t k = 0; k < ops; ++k) {
      if (k + kPrefetchDistance < ops) warm(rep.pair[k + kPrefetchDistance].timer);
      now_ += kStep;
      const Op& op = rep.pair[k];
      structure_.schedule(timers_[op.timer], after(op));
      if (k >= window) structure_.cancel(timers_[rep.pair[k - window].timer]);
    }
    for (std::size_t k = ops - std::min(ops, window); k < ops; ++k) {
      structure_.cancel(timers_[rep.pair[k].timer]);
    }
    auto t1 = stamp();
    return ns_between(t0, t1) / static_cast<double>(ops);
  }

  [[gnu::noinline]] void expiry(Sample* sample) {
    g_fired = 0;
    g_fired_sum = 0;
    auto t0 = stamp();
    while (auto due = structure_.next_due()) {
      now_ = std::max(now_, round_up(*due, tick_));
      structure_.expire(now_);
    }
    auto t1 = stamp();
    sample->drained = true;
    sample->fired = g_fired;
    sample->fired_sum = g_fired_sum;
    sample->ns[kExpiry] = g_fired ? ns_between(t0, t1) / static_cast<double>(g_fired) : 0;
  }

 private:
  int64_t after(const Op& op) const { return now_ + int64_t{op.delay_us} * 1000; }

  // With Hot, the owner of the operation kPrefetchDistance operations ahead is prefetched,
  // and the first ones of each timed loop before its clock starts: the structure then runs as
  // in a server that has just touched the connection it (re)arms; only the structure's own
  // memory (list neighbours, heap array, tree nodes, other timers it moves) can still be cold.
  void warm(uint32_t index) const {
    if (Hot) __builtin_prefetch(timers_.address(index), 1);
  }
  void warm_first(const uint32_t* indices, std::size_t count) const {
    for (std::size_t k = 0; k < std::min(count, kPrefetchDistance); ++k) warm(indices[k]);
  }
  void warm_first(const Op* ops, std::size_t count) const {
    for (std::size_t k = 0; k < std::min(count, kPrefetchDistance); ++k) warm(ops[k].timer);
  }

  const Plan& plan_;
  const int64_t tick_;
  int64_t now_ = kStart;
  // The structure is declared first so that the timers go first: a scheduled TimerEntry
  // unlinks itself, which is far quicker than the wheel walking its lists.
  Timers structure_;
  TimerArray<Timer> timers_;
};

template <class Timers, bool Hot>
Sample run_once(const Plan& plan, int64_t tick, bool drain, std::vector<Line>& lines) {
  Sample sample{};
  for (double& cell : sample.ns) cell = std::numeric_limits<double>::infinity();
  Run<Timers, Hot> run(plan, tick, lines);
  run.populate();
  for (const Rep& rep : plan.reps) {
    double schedule_ns, cancel_ns;
    run.schedule_and_cancel(rep, &schedule_ns, &cancel_ns);
    sample.ns[kSchedule] = std::min(sample.ns[kSchedule], schedule_ns);
    sample.ns[kCancel] = std::min(sample.ns[kCancel], cancel_ns);
    sample.ns[kRefresh] = std::min(sample.ns[kRefresh], run.refresh(rep));
    sample.ns[kPair] = std::min(sample.ns[kPair], run.pairs(rep));
  }
  if (drain) run.expiry(&sample);
  return sample;
}

// The memory floor under every structure: what touching one random timer's cache line costs.
//   touch: a read-modify-write of each line in the refresh order, independent of each other, so
//          the CPU overlaps the misses — no refresh can cost less;
//   chain: one dependent load per line along a random cycle through all of them — one step of
//          a walk down a linked list of cold entries, as when the wheel runs a slot's list.

struct Floor {
  double touch_ns;
  double chain_ns;
};

[[gnu::noinline]] inline Floor measure_memory_floor(const Plan& plan, uint64_t seed, std::vector<Line>& lines) {
  struct alignas(64) Link {
    uint64_t next;
    uint64_t stamp;
  };
  static_assert(sizeof(Link) == sizeof(Line), "one link per line");
  auto link = [&lines](uint64_t i) -> Link& {
    return *std::launder(reinterpret_cast<Link*>(&lines[i]));
  };
  for (uint32_t i = 0; i < plan.total; ++i) new (&lines[i]) Link{i, 0};
  Rng rng(seed);
  for (uint32_t i = plan.total - 1; i > 0; --i)  // Sattolo: one cycle through every line
    std::swap(link(i).next, link(rng.below(i)).next);

  Floor best{std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity()};
  const std::vector<uint32_t>& order = plan.reps[0].refresh;
  const std::size_t ops = order.size();
  uint64_t position = 0;
  for (unsigned run = 0; run < kRuns; ++run) {
    auto t0 = stamp();
    for (std::size_t k = 0; k < ops; ++k) link(order[k]).stamp += k;  // a store, like touch()
    auto t1 = stamp();
    for (std::size_t k = 0; k < ops; ++k) position = link(position).next;
    auto t2 = stamp();
    best.touch_ns = std::min(best.touch_ns, ns_between(t0, t1) / static_cast<double>(ops));
    best.chain_ns = std::min(best.chain_ns, ns_between(t1, t2) / static_cast<double>(ops));
  }
  asm volatile("" : : "r"(position) : "memory");
  return best;
}


}  // namespace timers
}  // namespace bench
