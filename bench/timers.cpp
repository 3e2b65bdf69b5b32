// timers — evwheel::TimerWheel against the two timer structures event loops usually use:
//
//   wheel  evwheel::TimerWheel, its TimerEntry the base of the struct per timer;
//   heap   a binary min-heap of {deadline, timer*} with each timer's heap index stored in the
//          timer, so cancel and update are O(log n) sifts — what libevent and libuv do (written
//          here from scratch; the deadline sits in the array so a sift compares without
//          following pointers);
//   map    std::multimap<deadline, timer*> with the iterator stored in the timer — what muduo
//          does with its std::set of pairs; a refresh is erase + insert, nodes are allocated.
//
// Workload, identical for the three structures (one precomputed plan per size and run, so the
// random number generator is never timed).  With n the size:
//   * n + n/8 timer objects live in one std::vector of cache lines (allocated once per size,
//     never while timed), each a 64-byte aligned struct — the cache line of the connection it
//     times — so reaching a timer costs every structure the same one line;
//   * n of them are scheduled first (untimed) in random order, deadlines uniform over 30 s;
//   * the clock creeps 100 ns per operation, like a busy server's;
//   * schedule / cancel: rounds of n/8 inserts of spare timers (deadline now + U(0, 30 s)),
//     then n/8 removals of random scheduled timers, so n to n + n/8 timers are live;
//   * refresh: a random scheduled timer gets deadline now + 30 s (an idle timeout pushed back
//     because its connection received data): TimerWheel::touch, a heap sift, a map erase+insert;
//   * sched+cancel: request timeouts on top of the n timers — each pair schedules a spare timer
//     (now + U(0, 30 s)) and cancels the one scheduled 64 pairs earlier;
//   * expiry: then the clock runs like an event loop's — sleep until the structure's next due
//     time rounded up to a tick, fire everything due — until every timer has fired; the cost is
//     per timer fired and includes the wheel's lazy re-filing of touched and cascading entries.
// Timers are picked at random, so from about 1e5 on their own cache line is usually a miss
// (--owners cold, the default).  --owners hot prefetches each operation's timer a few
// operations ahead, as if the server had just touched the connection: what is left is the cost
// of the structure's own memory.
// Each column is the best of 3 runs (fresh timers, structure and plan each run), except at
// n >= 1e7 where, unless --full, the map is skipped and one run does the operations 3 times
// (best of 3) but expiry once (see kBigSize).  Every run's fired count and checksum of fired
// timer ids must agree across the structures: that both checks the three implementations and
// keeps the compiler from discarding their work.  The memory floor printed last says what one
// random timer line costs on the machine, the part of every column no structure can avoid.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "evwheel/timer_wheel.hpp"
#include "modes.hpp"
#include "system.hpp"

namespace bench {

const char timers_usage[] =
    "evwheel-bench timers [--sizes 1e3,1e4,1e5,1e6,1e7] [--tick-ns 1000000] [--seed 1]\n"
    "                     [--ops 262144] [--owners cold|hot] [--only wheel,heap,map] [--full]\n"
    "    ns per operation of evwheel::TimerWheel, a binary heap (libevent, libuv) and a\n"
    "    std::multimap (muduo) holding n timers, for each n of --sizes: schedule, cancel,\n"
    "    schedule+cancel pair, refresh (idle timeout pushed back), expiry (per timer fired);\n"
    "    best of 3 runs.  --tick-ns: the wheel's tick and the event loop's wake-up granularity.\n"
    "    --ops: operations per column per run.  --owners hot: each timer's cache line is\n"
    "    prefetched before its operation (a server that just touched the connection).\n"
    "    --only: run only these structures.  --full: at n >= 1e7 also run the map and time\n"
    "    expiry in all 3 runs (by default the map is skipped there and expiry timed once).\n";

namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kStart = 1000 * kSecond;  // the clock's origin: any positive time
constexpr uint32_t kSpreadUs = 30'000'000;  // new deadlines: now + U(0, 30 s), in microseconds
constexpr int64_t kIdleTimeout = 30 * kSecond;
constexpr int64_t kStep = 100;  // ns the clock creeps per operation
constexpr uint32_t kWindow = 64;  // sched+cancel: requests in flight
constexpr unsigned kRuns = 3;
constexpr uint64_t kDefaultOps = 1u << 18;  // per column per run

enum Column { kSchedule, kCancel, kPair, kRefresh, kExpiry, kColumns };
const char* const kColumnNames[kColumns] = {"schedule", "cancel", "sched+cancel", "refresh",
                                            "expiry"};

// What fired, summed over every structure's callback: checked and printed.
uint64_t g_fired = 0;
uint64_t g_fired_sum = 0;

Clock::time_point stamp() {
  asm volatile("" ::: "memory");
  auto now = Clock::now();
  asm volatile("" ::: "memory");
  return now;
}

double ns_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::nano>(to - from).count();
}

// ---------------------------------------------------------------------------------------------
// The three structures behind one interface: schedule, cancel, refresh (to a later deadline),
// next_due (nothing when empty) and expire(now) (fire every timer due at now).  Times are ns.

struct alignas(64) WheelTimer : evwheel::TimerEntry {
  WheelTimer() : evwheel::TimerEntry(&fire) {}
  static void fire(evwheel::TimerEntry& entry) {
    ++g_fired;
    g_fired_sum += static_cast<WheelTimer&>(entry).id;
  }
  uint64_t id = 0;
};

evwheel::TimePoint at(int64_t ns) { return evwheel::TimePoint(evwheel::Duration(ns)); }

class WheelTimers {
 public:
  using Timer = WheelTimer;
  static constexpr const char* kName = "wheel";

  WheelTimers(int64_t start, int64_t tick, std::size_t /*capacity*/)
      : wheel_(at(start), evwheel::TimerWheelOptions{evwheel::Duration(tick),
                                                     evwheel::TimerWheel::kDefaultLevels}) {}
  void schedule(Timer& timer, int64_t deadline) { wheel_.schedule(timer, at(deadline)); }
  void cancel(Timer& timer) { wheel_.cancel(timer); }
  void refresh(Timer& timer, int64_t deadline) { wheel_.touch(timer, at(deadline)); }
  std::optional<int64_t> next_due() const {
    auto due = wheel_.next_due();
    if (!due) return std::nullopt;
    return due->time_since_epoch().count();
  }
  void expire(int64_t now) { wheel_.advance(at(now)); }

 private:
  evwheel::TimerWheel wheel_;
};

struct alignas(64) HeapTimer {
  static constexpr std::size_t kNotScheduled = std::numeric_limits<std::size_t>::max();
  static void fire(HeapTimer& timer) {
    ++g_fired;
    g_fired_sum += timer.id;
  }
  std::size_t index = kNotScheduled;  // position in the heap array
  void (*callback)(HeapTimer&) = &fire;
  uint64_t id = 0;
};

class HeapTimers {
 public:
  using Timer = HeapTimer;
  static constexpr const char* kName = "heap";

  HeapTimers(int64_t /*start*/, int64_t /*tick*/, std::size_t capacity) {
    heap_.reserve(capacity);  // growth would be amortised anyway; keep it out of the timings
  }
  void schedule(Timer& timer, int64_t deadline) {
    if (timer.index != Timer::kNotScheduled) cancel(timer);
    heap_.push_back({deadline, &timer});
    sift_up(heap_.size() - 1, {deadline, &timer});
  }
  void cancel(Timer& timer) {
    std::size_t i = timer.index;
    if (i == Timer::kNotScheduled) return;
    timer.index = Timer::kNotScheduled;
    Node last = heap_.back();
    heap_.pop_back();
    if (i == heap_.size()) return;  // it was the last node
    if (last.deadline < heap_[i].deadline) {
      sift_up(i, last);
    } else {
      sift_down(i, last);
    }
  }
  void refresh(Timer& timer, int64_t deadline) {
    std::size_t i = timer.index;
    if (i == Timer::kNotScheduled) return schedule(timer, deadline);
    if (deadline >= heap_[i].deadline) {
      sift_down(i, {deadline, &timer});
    } else {
      sift_up(i, {deadline, &timer});
    }
  }
  std::optional<int64_t> next_due() const {
    if (heap_.empty()) return std::nullopt;
    return heap_[0].deadline;
  }
  void expire(int64_t now) {
    while (!heap_.empty() && heap_[0].deadline <= now) {
      Timer& timer = *heap_[0].timer;
      cancel(timer);
      timer.callback(timer);
    }
  }

 private:
  struct Node {
    int64_t deadline;
    Timer* timer;
  };
  void place(std::size_t i, Node node) {
    heap_[i] = node;
    node.timer->index = i;
  }
  // Moves `node`, meant for the hole at i, up past every later-due parent.
  void sift_up(std::size_t i, Node node) {
    while (i > 0) {
      std::size_t parent = (i - 1) / 2;
      if (heap_[parent].deadline <= node.deadline) break;
      place(i, heap_[parent]);
      i = parent;
    }
    place(i, node);
  }
  // Moves `node`, meant for the hole at i, down past every earlier-due child.
  void sift_down(std::size_t i, Node node) {
    std::size_t size = heap_.size();
    for (;;) {
      std::size_t child = 2 * i + 1;
      if (child >= size) break;
      if (child + 1 < size && heap_[child + 1].deadline < heap_[child].deadline) ++child;
      if (node.deadline <= heap_[child].deadline) break;
      place(i, heap_[child]);
      i = child;
    }
    place(i, node);
  }

  std::vector<Node> heap_;
};

struct MapTimer;
using TimerMap = std::multimap<int64_t, MapTimer*>;

struct alignas(64) MapTimer {
  static void fire(MapTimer& timer) {
    ++g_fired;
    g_fired_sum += timer.id;
  }
  TimerMap::iterator position;  // valid while scheduled
  bool scheduled = false;
  void (*callback)(MapTimer&) = &fire;
  uint64_t id = 0;
};

class MapTimers {
 public:
  using Timer = MapTimer;
  static constexpr const char* kName = "map";

  MapTimers(int64_t /*start*/, int64_t /*tick*/, std::size_t /*capacity*/) {}
  void schedule(Timer& timer, int64_t deadline) {
    if (timer.scheduled) map_.erase(timer.position);
    timer.position = map_.emplace(deadline, &timer);
    timer.scheduled = true;
  }
  void cancel(Timer& timer) {
    if (!timer.scheduled) return;
    map_.erase(timer.position);
    timer.scheduled = false;
  }
  void refresh(Timer& timer, int64_t deadline) { schedule(timer, deadline); }
  std::optional<int64_t> next_due() const {
    if (map_.empty()) return std::nullopt;
    return map_.begin()->first;
  }
  void expire(int64_t now) {
    while (!map_.empty() && map_.begin()->first <= now) {
      Timer& timer = *map_.begin()->second;
      map_.erase(map_.begin());
      timer.scheduled = false;
      timer.callback(timer);
    }
  }

 private:
  TimerMap map_;
};

// ---------------------------------------------------------------------------------------------
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

Plan make_plan(uint32_t n, uint32_t ops, unsigned reps, uint64_t seed, unsigned run) {
  Plan plan;
  plan.live = n;
  plan.batch = std::max<uint32_t>(1, n / 8);
  plan.total = n + plan.batch;
  plan.window = std::min(kWindow, plan.batch);
  const uint32_t batch = plan.batch;
  Rng rng(seed * 0x9E3779B97F4A7C15u ^ (uint64_t{n} << 8) ^ run);
  auto delay = [&rng] { return rng.below(kSpreadUs); };

  // a[0, batch) are the spare (unscheduled) timers, a[batch, total) the scheduled ones.
  std::vector<uint32_t> a(plan.total);
  for (uint32_t i = 0; i < plan.total; ++i) a[i] = i;
  rng.shuffle(a.data(), plan.total);

  plan.populate.reserve(n);
  for (uint32_t k = 0; k < n; ++k) plan.populate.push_back({a[batch + k], delay()});

  const uint32_t rounds = std::max<uint32_t>(1, ops / batch);
  plan.reps.resize(reps);
  for (Rep& rep : plan.reps) {
    rep.schedule.reserve(std::size_t{rounds} * batch);
    rep.cancel.reserve(std::size_t{rounds} * batch);
    for (uint32_t round = 0; round < rounds; ++round) {
      rng.shuffle(a.data(), batch);
      for (uint32_t j = 0; j < batch; ++j) rep.schedule.push_back({a[j], delay()});
      // All `total` are scheduled now: cancel `batch` random ones, which become the spares.
      for (uint32_t j = 0; j < batch; ++j) {
        std::swap(a[j], a[j + rng.below(plan.total - j)]);
        rep.cancel.push_back(a[j]);
      }
    }

    rep.refresh.reserve(ops);
    for (uint32_t k = 0; k < ops; ++k) rep.refresh.push_back(a[batch + rng.below(n)]);

    rng.shuffle(a.data(), batch);
    rep.pair.reserve(ops);
    for (uint32_t k = 0; k < ops; ++k) rep.pair.push_back({a[k % batch], delay()});
  }
  return plan;
}

// ---------------------------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------------------------
// One run of one structure through a plan.

struct Sample {
  double ns[kColumns];  // best over the run's reps (expiry: its drain, if any)
  bool drained;
  uint64_t fired;
  uint64_t fired_sum;
};

int64_t round_up(int64_t time, int64_t tick) { return (time + tick - 1) / tick * tick; }

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

// ---------------------------------------------------------------------------------------------
// The memory floor under every structure: what touching one random timer's cache line costs.
//   touch: a read-modify-write of each line in the refresh order, independent of each other, so
//          the CPU overlaps the misses — no refresh can cost less;
//   chain: one dependent load per line along a random cycle through all of them — one step of
//          a walk down a linked list of cold entries, as when the wheel runs a slot's list.

struct Floor {
  double touch_ns;
  double chain_ns;
};

[[gnu::noinline]] Floor measure_floor(const Plan& plan, uint64_t seed, std::vector<Line>& lines) {
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

// ---------------------------------------------------------------------------------------------

// From this size on, unless --full, the map is not run (inserting its n timers alone takes
// 30-60 s per run) and a size is one run — populate, 3 reps of the timed operations (best of
// 3), one expiry drain — instead of 3 runs: firing all n timers takes seconds.
constexpr uint64_t kBigSize = 10'000'000;

using RunFunction = Sample (*)(const Plan&, int64_t tick, bool drain, std::vector<Line>&);

struct Structure {
  const char* name;
  RunFunction cold;
  RunFunction hot;
  bool slow;  // skipped from kBigSize on unless --full
};

const Structure kStructures[] = {
    {WheelTimers::kName, run_once<WheelTimers, false>, run_once<WheelTimers, true>, false},
    {HeapTimers::kName, run_once<HeapTimers, false>, run_once<HeapTimers, true>, false},
    {MapTimers::kName, run_once<MapTimers, false>, run_once<MapTimers, true>, true},
};
constexpr unsigned kStructureCount = sizeof kStructures / sizeof kStructures[0];

struct Options {
  std::vector<uint64_t> sizes{1'000, 10'000, 100'000, 1'000'000, 10'000'000};
  uint64_t tick_ns = 1'000'000;
  uint64_t seed = 1;
  uint64_t ops = kDefaultOps;
  bool hot = false;
  bool full = false;
  bool only[kStructureCount] = {true, true, true};
};

struct Row {
  bool ran[kStructureCount];
  double best[kStructureCount][kColumns];
  bool single_run;
  Floor floor;
};

std::vector<std::string> split(const char* text) {
  std::vector<std::string> items;
  std::string list(text);
  std::size_t start = 0;
  for (;;) {
    std::size_t comma = list.find(',', start);
    items.push_back(list.substr(start, comma == std::string::npos ? comma : comma - start));
    if (comma == std::string::npos) return items;
    start = comma + 1;
  }
}

bool parse_sizes(const char* text, std::vector<uint64_t>* sizes) {
  sizes->clear();
  for (const std::string& item : split(text)) {
    uint64_t size;
    // 16 leaves room for spares and requests in flight; the upper bound keeps indices 32-bit.
    if (!parse_count(item.c_str(), 16, 1'000'000'000, &size)) return false;
    sizes->push_back(size);
  }
  return true;
}

bool parse_only(const char* text, bool* only) {
  std::fill(only, only + kStructureCount, false);
  for (const std::string& item : split(text)) {
    unsigned s = 0;
    while (s < kStructureCount && item != kStructures[s].name) ++s;
    if (s == kStructureCount) return false;
    only[s] = true;
  }
  return true;
}

bool parse_seed(const char* text, uint64_t* seed) {
  if (*text < '0' || *text > '9') return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long value = std::strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *seed = value;
  return true;
}

// Parses the options into *options; on a bad one returns usage_error()'s status, else 0.
int parse_options(int argc, char** argv, Options* options) {
  for (int i = 1; i < argc; ++i) {
    bool missing = false;
    const char* value;
    auto bad = [&](const char* option, const char* want) {
      return usage_error(std::string("timers: bad ") + option + " '" + value + "' (want " +
                         want + ")");
    };
    if ((value = sys::option("--sizes", argc, argv, &i, &missing))) {
      if (!parse_sizes(value, &options->sizes))
        return bad("--sizes", "comma-separated counts from 16 to 1e9");
    } else if ((value = sys::option("--tick-ns", argc, argv, &i, &missing))) {
      if (!parse_count(value, 1, 3'600'000'000'000, &options->tick_ns))
        return bad("--tick-ns", "ns from 1 to 3.6e12");
    } else if ((value = sys::option("--seed", argc, argv, &i, &missing))) {
      if (!parse_seed(value, &options->seed)) return bad("--seed", "an unsigned 64-bit integer");
    } else if ((value = sys::option("--ops", argc, argv, &i, &missing))) {
      if (!parse_count(value, 64, 1'000'000'000, &options->ops))
        return bad("--ops", "a count from 64 to 1e9");
    } else if ((value = sys::option("--owners", argc, argv, &i, &missing))) {
      if (std::strcmp(value, "cold") != 0 && std::strcmp(value, "hot") != 0)
        return bad("--owners", "cold or hot");
      options->hot = std::strcmp(value, "hot") == 0;
    } else if ((value = sys::option("--only", argc, argv, &i, &missing))) {
      if (!parse_only(value, options->only)) return bad("--only", "a list of wheel, heap, map");
    } else if (missing) {
      return usage_error(std::string("timers: option ") + argv[i] + " needs a value");
    } else if (std::strcmp(argv[i], "--full") == 0) {
      options->full = true;
    } else {
      return usage_error(std::string("timers: unknown option '") + argv[i] + "'");
    }
  }
  return 0;
}

void print_ratio(const Row& row, unsigned s, Column column) {
  if (!row.ran[0] || !row.ran[s]) {
    std::printf(" %13s", "-");
  } else {
    std::printf(" %12.1fx", row.best[s][column] / row.best[0][column]);
  }
}

}  // namespace

int run_timers(int argc, char** argv) {
  Options options;
  if (int status = parse_options(argc, argv, &options)) return status;
  const auto ops = static_cast<uint32_t>(options.ops);
  const auto tick = static_cast<int64_t>(options.tick_ns);

  std::printf("evwheel-bench timers: ns per operation, best of %u runs (lower is better)\n",
              kRuns);
  print_header();
  std::printf(
      "workload: n timers live (n to n+n/8), deadlines uniform over 30 s, idle timeout 30 s,\n"
      "          clock +%" PRId64 " ns per op, tick %" PRIu64 " ns (wheel: %u levels), %" PRIu32
      " ops per column per run,\n"
      "          seed %" PRIu64 ", one 64-byte timer object per timer, owners %s;\n"
      "          sched+cancel = one pair, %u requests in flight; expiry = per timer fired by an\n"
      "          event loop waking at each next due time until all n have fired\n\n",
      kStep, options.tick_ns, evwheel::TimerWheel::kDefaultLevels, ops, options.seed,
      options.hot ? "hot (prefetched ahead)" : "cold (random)", kWindow);
  std::printf("%6s  %-9s", "size", "structure");
  for (const char* name : kColumnNames) std::printf(" %12s", name);
  std::printf("\n");
  std::fflush(stdout);

  auto started = Clock::now();
  std::vector<Row> rows;
  bool footnote = false;
  for (uint64_t size : options.sizes) {
    const auto n = static_cast<uint32_t>(size);
    const bool big = size >= kBigSize && !options.full;
    const unsigned runs = big ? 1 : kRuns;
    const auto size_started = Clock::now();
    Row row{};
    row.single_run = big;
    for (unsigned s = 0; s < kStructureCount; ++s) {
      row.ran[s] = options.only[s] && !(big && kStructures[s].slow);
      for (double& cell : row.best[s]) cell = std::numeric_limits<double>::infinity();
    }
    std::vector<Line> lines(n + std::max<uint32_t>(1, n / 8));
    uint64_t checksum = 0;
    for (unsigned run = 0; run < runs; ++run) {
      const Plan plan = make_plan(n, ops, big ? kRuns : 1, options.seed, run);
      if (run == 0) row.floor = measure_floor(plan, options.seed, lines);
      std::optional<uint64_t> fired_sum;  // the first structure's, which the others must match
      for (unsigned s = 0; s < kStructureCount; ++s) {
        if (!row.ran[s]) continue;
        const Structure& structure = kStructures[s];
        Sample sample = (options.hot ? structure.hot : structure.cold)(plan, tick, true, lines);
        if (sample.fired != n || (fired_sum && sample.fired_sum != *fired_sum)) {
          std::fprintf(stderr,
                       "evwheel-bench: timers: %s fired %" PRIu64 " of %" PRIu32
                       " timers, checksum %" PRIu64 " (expected %" PRIu64 ")\n",
                       structure.name, sample.fired, n, sample.fired_sum,
                       fired_sum ? *fired_sum : sample.fired_sum);
          return 1;
        }
        if (!fired_sum) {
          fired_sum = sample.fired_sum;
          checksum += sample.fired_sum;
        }
        for (unsigned c = 0; c < kColumns; ++c)
          row.best[s][c] = std::min(row.best[s][c], sample.ns[c]);
      }
    }
    for (unsigned s = 0; s < kStructureCount; ++s) {
      if (!options.only[s]) continue;
      std::printf("%6s  %-9s", format_count(size).c_str(), kStructures[s].name);
      if (!row.ran[s]) {
        std::printf("  skipped: inserting %s timers takes too long (--full runs it)\n",
                    format_count(size).c_str());
        continue;
      }
      for (unsigned c = 0; c < kColumns; ++c) std::printf(" %12.1f", row.best[s][c]);
      if (row.single_run) {
        std::printf(" *");
        footnote = true;
      }
      std::printf("\n");
    }
    std::printf("%6s  (all %s timers fired in every run of every structure: id checksum %" PRIu64
                "; %.1f s)\n",
                "", format_count(size).c_str(), checksum,
                std::chrono::duration<double>(Clock::now() - size_started).count());
    std::fflush(stdout);
    rows.push_back(row);
  }
  if (footnote) {
    std::printf("* n >= %s: one run (populate, %u reps of the operations, one drain), so expiry\n"
                "  is timed once; --full runs them as the smaller sizes (and the map)\n",
                format_count(kBigSize).c_str(), kRuns);
  }
  std::printf("\nratios (times slower than the wheel)\n%6s %13s %13s %13s %13s\n", "size",
              "heap refresh", "heap s+c", "map refresh", "map s+c");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::printf("%6s", format_count(options.sizes[i]).c_str());
    for (unsigned s = 1; s < kStructureCount; ++s) {
      print_ratio(rows[i], s, kRefresh);
      print_ratio(rows[i], s, kPair);
    }
    std::printf("\n");
  }
  std::printf("\nmemory floor: ns to reach one random 64-byte timer line of the n + n/8\n"
              "(touch: independent read-modify-writes in the refresh order, the least a refresh\n"
              "can cost; chain: dependent loads, one step of a walk down a list of cold entries)\n"
              "%6s %9s %9s\n", "size", "touch", "chain");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::printf("%6s %9.1f %9.1f\n", format_count(options.sizes[i]).c_str(),
                rows[i].floor.touch_ns, rows[i].floor.chain_ns);
  }
  std::printf("\ntotal %.1f s\n", std::chrono::duration<double>(Clock::now() - started).count());
  return 0;
}

}  // namespace bench
