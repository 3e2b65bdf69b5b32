// Unit tests for evwheel::TimerWheel — the contract is in include/evwheel/timer_wheel.hpp.
//
// Every test drives the wheel with hand-made TimePoints (never the real clock).  Entries are
// TestTimer objects whose static callback appends {id, wheel.now()} to a global log, so a test
// sees exactly which entries fired, in which order, and at which tick of the wheel.
//
// Two randomised tests compare the wheel against reference models (fixed seeds, reproducible):
//   * "the wheel matches a reference model ..."  — schedule / cancel / reschedule / touch /
//     advance from outside callbacks, > 1,000,000 operations over 15 configurations;
//   * "re-entrant callbacks match a reference model ..." — the same, with callbacks that
//     schedule, cancel, touch and destroy entries (and sometimes throw) while advance() runs.
// The named tests after them pin down each rule of the contract on its own.
#include <doctest/doctest.h>

#include "evwheel/timer_wheel.hpp"
#include "wheel_model.hpp"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

using evwheel::Duration;
using evwheel::TimePoint;
using evwheel::TimerEntry;
using evwheel::TimerWheel;
using evwheel::TimerWheelOptions;

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kSec = 1'000'000'000;

using wheel_model::at;
using wheel_model::delay_bits;
using wheel_model::due_tick;
using wheel_model::floor_tick;
using wheel_model::ns_of;
using wheel_model::pow64;

TimerWheelOptions opts(int64_t tick_ns, unsigned levels) {
  TimerWheelOptions o;
  o.tick = Duration(tick_ns);
  o.levels = levels;
  return o;
}

// next_due() in ns, -1 for nullopt (the named tests only use times >= 0).
int64_t next_due_ns(const TimerWheel& wheel) {
  auto nd = wheel.next_due();
  return nd ? ns_of(*nd) : -1;
}

// ------------------------------------------------------------------------------------------
// The recording entry.

struct Fired {
  int id;
  int64_t wheel_now;  // ns_of(wheel.now()) seen by the callback: the tick being processed
};

std::vector<Fired> g_log;
const TimerWheel* g_wheel = nullptr;  // the wheel whose now() the callbacks record

struct TestTimer : TimerEntry {
  int id;
  std::function<void(TestTimer&)> on_fire;  // optional extra behaviour, run after logging

  explicit TestTimer(int id_ = 0) : TimerEntry(&TestTimer::expire), id(id_) {}

  static void expire(TimerEntry& entry) {
    auto& self = static_cast<TestTimer&>(entry);
    g_log.push_back({self.id, g_wheel ? ns_of(g_wheel->now()) : int64_t{-1}});
    if (self.on_fire) self.on_fire(self);
  }
};

// Points the callbacks at `wheel` and empties the log for the duration of a test.
struct Recording {
  explicit Recording(const TimerWheel& wheel) {
    g_wheel = &wheel;
    g_log.clear();
  }
  ~Recording() {
    g_wheel = nullptr;
    g_log.clear();
  }
  Recording(const Recording&) = delete;
  Recording& operator=(const Recording&) = delete;
};

// Entry ids in firing order; and (id, wheel time when it fired) pairs.  Wrapped in types of
// this file so that doctest can print them without specialising it for std types.
struct Ids {
  std::vector<int> v;
  Ids() = default;
  Ids(std::initializer_list<int> ids) : v(ids) {}
  bool operator==(const Ids& o) const { return v == o.v; }
};
struct Timeline {
  std::vector<std::pair<int, int64_t>> v;
  Timeline() = default;
  Timeline(std::initializer_list<std::pair<int, int64_t>> items) : v(items) {}
  void push_back(std::pair<int, int64_t> item) { v.push_back(item); }
  void clear() { v.clear(); }
  bool operator==(const Timeline& o) const { return v == o.v; }
};

}  // namespace

namespace doctest {
template <>
struct StringMaker<Ids> {
  static String convert(const Ids& ids) {
    std::ostringstream os;
    os << '[';
    for (std::size_t i = 0; i < ids.v.size(); ++i) os << (i ? " " : "") << ids.v[i];
    os << ']';
    return os.str().c_str();
  }
};
template <>
struct StringMaker<Timeline> {
  static String convert(const Timeline& t) {  // id@time ...
    std::ostringstream os;
    os << '[';
    for (std::size_t i = 0; i < t.v.size(); ++i) os << (i ? " " : "") << t.v[i].first << '@' << t.v[i].second;
    os << ']';
    return os.str().c_str();
  }
};
}  // namespace doctest

namespace {

// One advance(): how many it reported and what the callbacks logged.
struct Step {
  std::size_t count = 0;
  std::vector<Fired> log;
  Ids ids() const {
    Ids out;
    for (const auto& f : log) out.v.push_back(f.id);
    return out;
  }
  Timeline timeline() const {
    Timeline out;
    for (const auto& f : log) out.push_back({f.id, f.wheel_now});
    return out;
  }
};

Step advance(TimerWheel& wheel, int64_t now_ns) {
  g_log.clear();
  Step step;
  step.count = wheel.advance(at(now_ns));
  step.log = g_log;
  g_log.clear();
  return step;
}

// Random values: log-uniform over [0, 2^max_bits), so small values are as common as big ones.
uint64_t log_uniform(std::mt19937_64& rng, unsigned max_bits) {
  unsigned bits = static_cast<unsigned>(rng() % (max_bits + 1));
  if (bits == 0) return 0;
  uint64_t mask = bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
  return rng() & mask;
}


constexpr int64_t kTimeLimit = int64_t{1} << 61;  // the random tests never go beyond this

// Failure reporting for the randomised tests: a cheap test on the hot path, a doctest failure
// (with context) for the first few mismatches, and a final CHECK that counts them all.
#define MODEL_EXPECT(cond, what)                                                          \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      ++failures;                                                                         \
      if (failures <= 8) FAIL_CHECK("op " << op << ": " << what << "   [" #cond "]");     \
    }                                                                                     \
  } while (0)

// ------------------------------------------------------------------------------------------
// 1. Reference model (tests/wheel_model.hpp), operations from outside callbacks, chosen by a
//    seeded random walk.

struct ModelConfig {
  int64_t tick;
  unsigned levels;
  uint64_t seed;
  long ops;
  int pool;
};

struct ModelStats {
  long failures = 0, ops = 0, advances = 0, fired = 0, overflow = 0, big_stalls = 0;
};

ModelStats run_reference_model(const ModelConfig& cfg) {
  const int64_t T = cfg.tick;
  const unsigned L = cfg.levels;
  std::mt19937_64 rng(cfg.seed);
  long op = -1;

  // Delays reach 2^8 revolutions of the top level (the overflow list), but never so far that
  // times leave int64: with few levels, stepping through the overflow list costs one pass per
  // revolution, so delays of more revolutions would only make the test slow.
  const unsigned max_bits = delay_bits(T, 6 * L + 8);
  const unsigned wheel_bits = std::min(max_bits, 6 * L);
  // Stalls are capped lower (2^52 ns), so that thousands of them stay inside kTimeLimit.
  const unsigned jump_bits = std::min(max_bits, delay_bits(T, 64) - 6);

  const int64_t start = (rng() % 2) ? 0 : static_cast<int64_t>(log_uniform(rng, 40));
  long reported = 0;
  wheel_model::ModelledWheel model(T, L, start, cfg.pool, [&](const std::string& what) {
    if (++reported <= 8) FAIL_CHECK("op " << op << ": " << what);
  });

  auto random_delay_ticks = [&]() -> uint64_t {
    switch (rng() % 8) {
      case 0: case 1: return rng() % 4;                    // this tick or the next few
      case 2: case 3: return log_uniform(rng, 6);          // level 0
      case 4: case 5: return log_uniform(rng, wheel_bits); // anywhere in the levels
      default: return log_uniform(rng, max_bits);          // up to 256 top-level revolutions
    }
  };
  auto random_deadline = [&]() -> int64_t {
    const int64_t clock = model.clock();
    unsigned r = static_cast<unsigned>(rng() % 16);
    if (r == 0) {  // already due, possibly before the epoch
      auto back = static_cast<int64_t>(log_uniform(rng, 40) % static_cast<uint64_t>(clock + 4 * T + 1));
      return clock - back;
    }
    if (r == 1) return static_cast<int64_t>(rng() % 3) - 1;  // -1, 0 or 1 ns
    int64_t base = r < 8 ? clock : (clock / T) * T;           // sometimes tick aligned
    int64_t d = base + static_cast<int64_t>(random_delay_ticks()) * T;
    if (rng() % 2) d += static_cast<int64_t>(rng() % static_cast<uint64_t>(T));
    return d;
  };

  auto random_scheduled = [&]() -> int {
    for (int tries = 0; tries < 8; ++tries) {
      int id = static_cast<int>(rng() % static_cast<uint64_t>(cfg.pool));
      if (model.scheduled(id)) return id;
    }
    return -1;
  };

  auto next_now = [&]() -> int64_t {
    const int64_t clock = model.clock();
    int64_t n = clock;
    const auto uT = static_cast<uint64_t>(T);
    switch (rng() % 20) {
      case 0: case 1: break;                                                   // same time again
      case 2: case 3: case 4: n = clock + static_cast<int64_t>(rng() % uT); break;  // < one tick
      case 5: case 6: n = (clock / T + 1) * T; break;                          // next tick start
      case 7: n = clock + T; break;                                            // one tick
      case 8: case 9: n = clock + static_cast<int64_t>(1 + rng() % 64) * T + static_cast<int64_t>(rng() % uT); break;
      case 10: case 11: {  // exactly when the wheel asks to be woken, or 1 ns before
        auto nd = model.wheel().next_due();
        if (nd && ns_of(*nd) < kTimeLimit) n = ns_of(*nd) - static_cast<int64_t>(rng() % 2);
        break;
      }
      case 12: case 13: {  // exactly at some entry's deadline, or 1 ns either side
        int id = random_scheduled();
        if (id >= 0) n = model.deadline(id) + static_cast<int64_t>(rng() % 3) - 1;
        break;
      }
      case 14: case 15: case 16:
        n = clock + static_cast<int64_t>(log_uniform(rng, std::min(max_bits, 12u))) * T +
            static_cast<int64_t>(rng() % uT);
        break;
      case 17: case 18:  // a stall: up to 256 revolutions of the top level
        n = clock + static_cast<int64_t>(log_uniform(rng, jump_bits)) * T + static_cast<int64_t>(rng() % uT);
        break;
      default:  // a `now` earlier than the wheel's time
        return clock - static_cast<int64_t>(log_uniform(rng, 40) % static_cast<uint64_t>(clock + 2 * T + 1));
    }
    if (n < clock || n > kTimeLimit) n = clock;
    return n;
  };

  for (op = 0; op < cfg.ops && model.failures() < 200; ++op) {
    if (rng() % 10 < 3) {
      model.advance(next_now());
    } else {
      int id = static_cast<int>(rng() % static_cast<uint64_t>(cfg.pool));
      unsigned r = static_cast<unsigned>(rng() % 20);
      if (!model.scheduled(id)) {
        if (r < 16)
          model.schedule(id, random_deadline());
        else if (r < 19)
          model.touch(id, random_deadline());  // touching an unscheduled entry schedules it
        else
          model.cancel(id);  // harmless
      } else if (r < 5) {  // reschedule
        model.schedule(id, random_deadline());
      } else if (r < 9) {
        model.cancel(id);
      } else if (r < 15) {  // touch to a later (or the same) deadline
        int64_t d = model.deadline(id);
        if (rng() % 4 == 0)
          d += static_cast<int64_t>(rng() % static_cast<uint64_t>(T));
        else
          d += static_cast<int64_t>(random_delay_ticks()) * T + static_cast<int64_t>(rng() % static_cast<uint64_t>(T));
        if (d > kTimeLimit + (int64_t{1} << 59)) d = model.deadline(id);
        model.touch(id, d);
      } else {  // touch to an earlier deadline: same tick, an earlier slot, or the past
        int64_t d = rng() % 4 == 0
                        ? model.deadline(id) - 1 - static_cast<int64_t>(rng() % static_cast<uint64_t>(T))
                        : model.deadline(id) - 1 - static_cast<int64_t>(random_delay_ticks()) * T;
        model.touch(id, d);
      }
    }
    if (op % 8192 == 0) model.check_all();
  }

  // Drain: everything still scheduled fires, at its tick and in order.
  model.drain();
  const wheel_model::Stats& st = model.stats();
  return {model.failures(), op, st.advances, st.fired, st.overflow, st.big_stalls};
}

std::vector<ModelConfig> model_configs() {
  // Ticks of 1 ns, ~1 ms (a prime, so deadlines rarely fall on tick starts by accident) and 1 s.
  const int64_t ticks[] = {1, 999'983, kSec};
  const unsigned levels[] = {1, 2, 3, 6, 11};
  std::vector<ModelConfig> out;
  uint64_t seed = 0x5eed0000;
  for (int64_t t : ticks)
    for (unsigned l : levels) out.push_back({t, l, ++seed, 100'000, 3'000});
  return out;
}

}  // namespace

TEST_CASE("the wheel matches a reference model under random schedule/cancel/touch/advance") {
  long total_ops = 0;
  for (const ModelConfig& cfg : model_configs()) {
    CAPTURE(cfg.tick);
    CAPTURE(cfg.levels);
    CAPTURE(cfg.seed);
    ModelStats st = run_reference_model(cfg);
    CHECK(st.failures == 0);
    CHECK(st.ops == cfg.ops);
    // The random walk really covered what it is meant to.
    CHECK(st.advances > cfg.ops / 5);
    CHECK(st.fired > 10'000);
    if (cfg.levels <= 3) {
      CHECK(st.overflow > 1'000);   // deadlines beyond the top level's range
      CHECK(st.big_stalls > 100);   // jumps over several revolutions of the top level
    }
    total_ops += st.ops;
  }
  CHECK(total_ops >= 1'000'000);
}

// ------------------------------------------------------------------------------------------
// 2. Reference model with re-entrant callbacks.
//
// The model is "online": each callback tells it which entry fired at which tick, and it
// checks that this is exactly what the contract allows:
//   * when the wheel reaches tick t it fires every entry due at t (filed before t was reached);
//   * an entry (re)scheduled, or touched to an earlier deadline, for a tick the wheel has
//     already reached is "deferred": it fires at the start of the next advance(), at the tick
//     the wheel had then;
//   * nothing is skipped, nothing fires twice, a cancelled/destroyed entry never fires.
// A callback may throw: advance() then propagates it, stays at the tick it was processing,
// and whatever was due and had not fired yet fires on the next advance().
//

namespace {

struct Boom {};

struct ReentrantModel {
  enum State { Off, Normal, Deferred, Expected };
  struct M {
    State st = Off;
    int64_t deadline = 0;
    uint64_t due = 0;
  };

  int64_t T;
  unsigned L;
  std::mt19937_64 rng;
  long failures = 0;
  long op = -1;
  unsigned max_bits;
  TimerWheel wheel;
  std::vector<std::unique_ptr<TestTimer>> pool;
  std::vector<M> m;
  std::set<std::pair<uint64_t, int>> normal;  // (due tick, id): waiting in the wheel
  std::set<int> deferred;                     // fire at the start of the next advance()
  std::set<int> expected;                     // due at the tick being processed, not yet fired
  uint64_t cur;                               // the tick reached (being processed)
  uint64_t target = 0;                        // the tick the running advance() goes to
  bool in_advance = false;
  std::size_t fired = 0;
  int64_t clock;
  long throws = 0, nested = 0, destroyed = 0, fires = 0;

  ReentrantModel(int64_t tick, unsigned levels, uint64_t seed, int pool_size, int64_t start)
      : T(tick), L(levels), rng(seed), max_bits(delay_bits(tick, 6 * levels + 6)),
        wheel(at(start), opts(tick, levels)), m(static_cast<std::size_t>(pool_size)),
        cur(floor_tick(start, tick)), clock(start) {
    for (int i = 0; i < pool_size; ++i) pool.push_back(make(i));
  }

  std::unique_ptr<TestTimer> make(int id) {
    auto t = std::make_unique<TestTimer>(id);
    t->on_fire = [this](TestTimer& self) { on_fire(self); };
    return t;
  }

  M& of(int id) { return m[static_cast<std::size_t>(id)]; }
  TestTimer& entry(int id) { return *pool[static_cast<std::size_t>(id)]; }

  // --- the model's side of each operation
  void m_remove(int id) {
    M& x = of(id);
    if (x.st == Normal) normal.erase({x.due, id});
    if (x.st == Deferred) deferred.erase(id);
    if (x.st == Expected) expected.erase(id);
    x.st = Off;
  }
  void m_file(int id, int64_t d) {
    m_remove(id);
    M& x = of(id);
    x.deadline = d;
    x.due = due_tick(d, T);
    if (x.due <= cur) {
      x.st = Deferred;
      deferred.insert(id);
    } else {
      x.st = Normal;
      normal.insert({x.due, id});
    }
  }
  void m_touch(int id, int64_t d) {
    M& x = of(id);
    if (x.st == Off || d < x.deadline) return m_file(id, d);
    uint64_t due = due_tick(d, T);
    if (x.st == Normal) {
      normal.erase({x.due, id});
      normal.insert({due, id});
    } else if (due > cur) {  // Deferred or Expected, now due at a tick not reached yet
      m_remove(id);
      x.st = Normal;
      normal.insert({due, id});
    }
    x.deadline = d;
    x.due = due;
  }

  // --- the wheel and the model together
  void schedule(int id, int64_t d) {
    wheel.schedule(entry(id), at(d));
    m_file(id, d);
  }
  void touch(int id, int64_t d) {
    wheel.touch(entry(id), at(d));
    m_touch(id, d);
  }
  void cancel(int id) {
    wheel.cancel(entry(id));
    m_remove(id);
  }
  void destroy(int id) {  // destroying a scheduled entry unlinks it
    pool[static_cast<std::size_t>(id)] = make(id);
    m_remove(id);
    ++destroyed;
  }

  int random_id() { return static_cast<int>(rng() % pool.size()); }

  int64_t random_deadline(int64_t base) {
    switch (rng() % 10) {
      case 0: return base - static_cast<int64_t>(rng() % static_cast<uint64_t>(3 * T));  // already due
      case 1: return base;
      case 2: case 3: return base + static_cast<int64_t>(rng() % static_cast<uint64_t>(3 * T));
      case 4: case 5: return base + static_cast<int64_t>(log_uniform(rng, 6)) * T + static_cast<int64_t>(rng() % static_cast<uint64_t>(T));
      default: return base + static_cast<int64_t>(log_uniform(rng, max_bits)) * T + static_cast<int64_t>(rng() % static_cast<uint64_t>(T));
    }
  }

  void on_fire(TestTimer& self) {
    ++fires;
    ++fired;
    const int id = self.id;
    const int64_t now_ns = ns_of(wheel.now());
    MODEL_EXPECT(in_advance, "entry " << id << " fired outside advance()");
    MODEL_EXPECT(now_ns % T == 0, "now() " << now_ns << " inside a callback is not a tick start");
    const uint64_t t = static_cast<uint64_t>(now_ns / T);
    if (t != cur) {  // the wheel moved on to tick t: everything due before must have fired
      MODEL_EXPECT(t > cur, "the wheel went back from tick " << cur << " to " << t);
      MODEL_EXPECT(t <= target, "entry " << id << " fired at tick " << t << " beyond advance()'s " << target);
      MODEL_EXPECT(expected.empty(), expected.size() << " entries due at tick " << cur << " (first "
                                                     << *expected.begin() << ") were not fired");
      MODEL_EXPECT(normal.empty() || normal.begin()->first >= t,
                   "entry " << normal.begin()->second << " due at tick " << normal.begin()->first
                            << " was skipped: the wheel jumped from " << cur << " to " << t);
      for (int e : expected) of(e).st = Deferred, deferred.insert(e);  // keep the model sane
      expected.clear();
      cur = t;
      while (!normal.empty() && normal.begin()->first <= cur) {
        int e = normal.begin()->second;
        normal.erase(normal.begin());
        of(e).st = Expected;
        expected.insert(e);
      }
    }
    M& x = of(id);
    MODEL_EXPECT(x.st == Expected, "entry " << id << " (state " << x.st << ", deadline " << x.deadline
                                            << ", due tick " << x.due << ") fired at tick " << t);
    MODEL_EXPECT(x.deadline <= clock, "entry " << id << " fired before its deadline");
    MODEL_EXPECT(!self.scheduled(), "entry " << id << " is still scheduled inside its callback");
    m_remove(id);

    // Re-entrant operations, relative to the wheel's time.
    const int64_t base = now_ns;
    int actions = rng() % 3 == 0 ? 2 : 1;
    for (int a = 0; a < actions; ++a) {
      switch (rng() % 16) {
        case 0: case 1: case 2:  // re-arm itself (sometimes for a tick already reached)
          schedule(id, random_deadline(base));
          break;
        case 3: case 4: schedule(random_id(), random_deadline(base)); break;
        case 5: cancel(random_id()); break;
        case 6:  // cancel an entry due in this same tick that has not fired yet
          if (!expected.empty()) cancel(*std::next(expected.begin(), static_cast<long>(rng() % expected.size())));
          break;
        case 7: {  // reschedule or touch an entry due in this same tick that has not fired yet
          if (expected.empty()) break;
          int e = *std::next(expected.begin(), static_cast<long>(rng() % expected.size()));
          int64_t d = rng() % 2 ? of(e).deadline + static_cast<int64_t>(rng() % static_cast<uint64_t>(3 * T))
                                : random_deadline(base);
          if (rng() % 2) touch(e, d); else schedule(e, d);
          break;
        }
        case 8: case 9: {  // touch later (a deferred entry too)
          int e = random_id();
          int64_t d = of(e).st == Off ? random_deadline(base)
                                      : of(e).deadline + static_cast<int64_t>(log_uniform(rng, max_bits)) * T;
          touch(e, d);
          break;
        }
        case 10: {  // touch earlier
          int e = random_id();
          int64_t d = of(e).st == Off ? random_deadline(base)
                                      : of(e).deadline - 1 - static_cast<int64_t>(log_uniform(rng, max_bits)) * T;
          touch(e, d);
          break;
        }
        case 11: {  // destroy another entry (maybe one due in this very tick)
          int e = !expected.empty() && rng() % 2 ? *expected.begin() : random_id();
          if (e != id) destroy(e);
          break;
        }
        case 12:
          if (rng() % 8 == 0) {
            ++nested;
            bool threw = false;
            try {
              wheel.advance(at(base + 10 * T));
            } catch (const std::logic_error&) {
              threw = true;
            }
            MODEL_EXPECT(threw, "advance() from a callback did not throw std::logic_error");
          }
          break;
        default: break;
      }
    }
    if (rng() % 200 == 0) {
      ++throws;
      throw Boom{};
    }
  }

  void do_advance(int64_t arg) {
    target = std::max(cur, floor_tick(arg, T));
    clock = std::max(clock, arg);
    for (int e : deferred) of(e).st = Expected, expected.insert(e);
    deferred.clear();
    in_advance = true;
    fired = 0;
    bool threw = false;
    std::size_t n = 0;
    try {
      n = wheel.advance(at(arg));
    } catch (const Boom&) {
      threw = true;
    }
    in_advance = false;
    MODEL_EXPECT(wheel.now() == at(static_cast<int64_t>(threw ? cur : target) * T),
                 "now() " << ns_of(wheel.now()) << " after advance(" << arg << "), threw " << threw);
    if (threw) {
      // Stopped at tick cur: what was due there and has not fired goes to the next advance().
      for (int e : expected) of(e).st = Deferred, deferred.insert(e);
      expected.clear();
    } else {
      MODEL_EXPECT(n == fired, "advance() returned " << n << " but " << fired << " callbacks ran");
      MODEL_EXPECT(expected.empty(), expected.size() << " entries due at tick " << cur << " (first "
                                                     << *expected.begin() << ") did not fire");
      MODEL_EXPECT(normal.empty() || normal.begin()->first > target,
                   "entry " << normal.begin()->second << " due at tick " << normal.begin()->first
                            << " did not fire by tick " << target);
      for (int e : expected) of(e).st = Deferred, deferred.insert(e);
      expected.clear();
      cur = target;
    }
    // next_due(): now() exactly when something is deferred; never after the earliest entry.
    auto nd = wheel.next_due();
    if (!deferred.empty())
      MODEL_EXPECT(nd && *nd == wheel.now(), "next_due() is not now() with " << deferred.size()
                                                                             << " entries already due");
    if (!normal.empty())
      MODEL_EXPECT(nd && ns_of(*nd) <= static_cast<int64_t>(normal.begin()->first) * T,
                   "next_due() is after the earliest due tick " << normal.begin()->first);
  }

  int64_t next_now() {
    const auto uT = static_cast<uint64_t>(T);
    int64_t n = clock;
    switch (rng() % 10) {
      case 0: break;
      case 1: case 2: n = clock + static_cast<int64_t>(rng() % uT); break;
      case 3: case 4: n = (clock / T + 1) * T; break;
      case 5: case 6: n = clock + static_cast<int64_t>(log_uniform(rng, std::min(max_bits, 8u))) * T; break;
      case 7: {
        auto nd = wheel.next_due();
        if (nd && ns_of(*nd) < kTimeLimit) n = ns_of(*nd);
        break;
      }
      case 8: n = clock + static_cast<int64_t>(log_uniform(rng, max_bits)) * T; break;
      default: return clock - static_cast<int64_t>(rng() % (2 * uT + 1));
    }
    return n > kTimeLimit || n < clock ? clock : n;
  }

  void run(long ops) {
    for (op = 0; op < ops && failures < 200; ++op) {
      unsigned r = static_cast<unsigned>(rng() % 20);
      int id = random_id();
      if (r < 6) {
        do_advance(next_now());
      } else if (r < 11) {
        schedule(id, random_deadline(clock));
      } else if (r < 13) {
        cancel(id);
      } else if (r < 16) {  // touch later (outside callbacks a deferred entry is fine)
        int64_t d = of(id).st == Off ? random_deadline(clock)
                                     : of(id).deadline + static_cast<int64_t>(log_uniform(rng, max_bits)) * T;
        touch(id, d);
      } else if (r < 18) {
        int64_t d = of(id).st == Off ? random_deadline(clock)
                                     : of(id).deadline - 1 - static_cast<int64_t>(log_uniform(rng, max_bits)) * T;
        touch(id, d);
      } else if (r < 19) {
        destroy(id);
      } else {
        do_advance(next_now());
      }
    }
    // Drain.
    for (int i = 0; i < 64 && failures < 200; ++i) {
      if (normal.empty() && deferred.empty()) break;
      int64_t last = normal.empty() ? clock : static_cast<int64_t>(std::prev(normal.end())->first) * T;
      do_advance(std::max(clock, last));
    }
    MODEL_EXPECT(normal.empty() && deferred.empty(), "entries left after draining");
    for (int id = 0; id < static_cast<int>(pool.size()); ++id)
      MODEL_EXPECT(entry(id).scheduled() == (of(id).st != Off), "entry " << id << " scheduled()");
  }
};

}  // namespace

TEST_CASE("re-entrant callbacks match a reference model (schedule, cancel, touch, destroy, throw)") {
  struct Cfg {
    int64_t tick;
    unsigned levels;
    uint64_t seed;
  };
  const Cfg cfgs[] = {{1, 1, 101}, {1, 2, 102}, {999'983, 3, 103}, {kSec, 6, 104}, {7, 11, 105}};
  long throws = 0, nested = 0, destroyed = 0, fires = 0;
  for (const Cfg& c : cfgs) {
    CAPTURE(c.tick);
    CAPTURE(c.levels);
    CAPTURE(c.seed);
    ReentrantModel model(c.tick, c.levels, c.seed, 1'000, c.seed % 2 ? 0 : 123'456'789);
    Recording rec(model.wheel);
    model.run(40'000);
    CHECK(model.failures == 0);
    throws += model.throws;
    nested += model.nested;
    destroyed += model.destroyed;
    fires += model.fires;
  }
  // The random driver really exercised the re-entrant paths.
  CHECK(throws > 10);
  CHECK(nested > 10);
  CHECK(destroyed > 100);
  CHECK(fires > 10'000);
}

// ------------------------------------------------------------------------------------------
// 3. Named cases.

TEST_CASE("invalid options throw std::invalid_argument") {
  CHECK_THROWS_AS(TimerWheel(at(0), opts(0, 6)), std::invalid_argument);
  CHECK_THROWS_AS(TimerWheel(at(0), opts(-1, 6)), std::invalid_argument);
  CHECK_THROWS_AS(TimerWheel(at(0), opts(-kMs, 6)), std::invalid_argument);
  CHECK_THROWS_AS(TimerWheel(at(0), opts(kMs, 0)), std::invalid_argument);
  CHECK_THROWS_AS(TimerWheel(at(0), opts(kMs, 12)), std::invalid_argument);
  CHECK_THROWS_AS(TimerWheel(at(0), opts(kMs, 1000)), std::invalid_argument);

  // The limits themselves are valid.
  TimerWheel one(at(0), opts(1, 1));
  CHECK(one.tick() == Duration(1));
  CHECK(one.levels() == 1u);
  TimerWheel eleven(at(0), opts(kSec, TimerWheel::kMaxLevels));
  CHECK(eleven.levels() == 11u);
  CHECK(eleven.tick() == Duration(kSec));
  TimerWheel defaults(at(0));
  CHECK(defaults.tick() == Duration(kMs));
  CHECK(defaults.levels() == TimerWheel::kDefaultLevels);
}

TEST_CASE("a new wheel starts at its start time rounded down to a tick, empty") {
  TimerWheel wheel(at(5 * kMs + 999'999), opts(kMs, 6));
  CHECK(ns_of(wheel.now()) == 5 * kMs);
  CHECK(wheel.empty());
  CHECK_FALSE(wheel.next_due().has_value());
  CHECK(wheel.advance(at(10 * kMs)) == 0u);
  CHECK(ns_of(wheel.now()) == 10 * kMs);
  CHECK(wheel.empty());
}

TEST_CASE("an entry never fires before its deadline, and fires at the first tick at or after it") {
  // Deadlines inside a tick, on tick starts, and one ns either side of them; time advances 1 ns
  // at a time across each deadline.
  for (int64_t T : {int64_t{1}, int64_t{7}, int64_t{1000}}) {
    CAPTURE(T);
    for (int64_t d : {int64_t{1}, T, T + 1, 2 * T - 1, 5 * T, 5 * T + 1, 64 * T - 1, 64 * T, 64 * T + 1,
                      4096 * T + T / 2, 5000 * T + 3}) {
      CAPTURE(d);
      TimerWheel wheel(at(0), opts(T, 3));
      Recording rec(wheel);
      TestTimer timer(1);
      wheel.schedule(timer, at(d));
      int64_t fired_at = -1;
      int64_t from = std::max(ns_of(wheel.now()), d - 3 * T);
      for (int64_t now = from; now <= d + 2 * T && fired_at < 0; ++now) {
        Step s = advance(wheel, now);
        if (!s.log.empty()) {
          CHECK(s.ids() == Ids{1});
          CHECK(s.count == 1u);
          fired_at = now;
        }
      }
      int64_t tick_start = static_cast<int64_t>(due_tick(d, T)) * T;
      CHECK(fired_at == tick_start);
      CHECK(fired_at >= d);
      CHECK_FALSE(timer.scheduled());
    }
  }
}

TEST_CASE("deadlines the wheel has already reached fire on the next advance, whatever its now") {
  TimerWheel wheel(at(100 * kMs), opts(kMs, 6));
  Recording rec(wheel);
  TestTimer past(1), exact(2), zero(3), negative(4), in_current_tick(5);
  wheel.schedule(past, at(50 * kMs));
  wheel.schedule(exact, at(100 * kMs));
  wheel.schedule(zero, at(0));
  wheel.schedule(negative, at(-5 * kSec));
  wheel.schedule(in_current_tick, at(100 * kMs - 1));
  CHECK_FALSE(wheel.empty());
  CHECK(next_due_ns(wheel) == ns_of(wheel.now()));

  Step s = advance(wheel, 10 * kMs);  // an earlier `now` counts as the wheel's time
  CHECK(s.count == 5u);
  CHECK(s.ids() == Ids{1, 2, 3, 4, 5});  // filing order within the tick
  for (const Fired& f : s.log) CHECK(f.wheel_now == 100 * kMs);
  CHECK(ns_of(wheel.now()) == 100 * kMs);
  CHECK(wheel.empty());
  CHECK_FALSE(wheel.next_due().has_value());

  // A deadline 1 ns into the next tick is not due yet.
  TestTimer next(6);
  wheel.schedule(next, at(100 * kMs + 1));
  CHECK(advance(wheel, 100 * kMs + 999'999).log.empty());
  CHECK(advance(wheel, 101 * kMs).ids() == Ids{6});
}

TEST_CASE("an earlier now is treated as the wheel's time") {
  TimerWheel wheel(at(0), opts(kMs, 2));
  Recording rec(wheel);
  TestTimer a(1);
  wheel.schedule(a, at(30 * kMs));
  CHECK(advance(wheel, 20 * kMs).log.empty());
  CHECK(advance(wheel, 5 * kMs).log.empty());
  CHECK(ns_of(wheel.now()) == 20 * kMs);
  CHECK(advance(wheel, 29 * kMs).log.empty());
  CHECK(advance(wheel, 30 * kMs).ids() == Ids{1});
}

TEST_CASE("long delays beyond one revolution of every level are exact") {
  // For several configurations and start positions, schedule delays just below, at and above
  // 64^l ticks for every level l (and past the top level: the overflow list), then let the
  // wheel be woken exactly when next_due() asks, as the reactor does.  Each entry must fire
  // exactly at its due tick: advancing to 1 ns before next_due() fires nothing, and every
  // entry fires with wheel.now() equal to the start of its due tick.
  struct Cfg {
    int64_t tick;
    unsigned levels;
  };
  const Cfg cfgs[] = {{1, 1}, {1, 2}, {1, 3}, {1, 6}, {kMs, 6}, {999'983, 4}, {kSec, 3}, {kSec, 11}, {3, 11}};
  for (const Cfg& c : cfgs) {
    const int64_t T = c.tick;
    for (uint64_t start_tick : {uint64_t{0}, uint64_t{12'345}, pow64(std::min(c.levels, 5u)) - 3}) {
      CAPTURE(T);
      CAPTURE(c.levels);
      CAPTURE(start_tick);
      const int64_t start = static_cast<int64_t>(start_tick) * T + T / 3;
      TimerWheel wheel(at(start), opts(T, c.levels));
      Recording rec(wheel);

      std::vector<uint64_t> delays;  // in ticks
      const unsigned top = std::min(c.levels + 2, 7u);
      for (unsigned l = 1; l <= top; ++l) {
        uint64_t span = pow64(l);
        if (c.levels < 3 && l > c.levels + 1) break;  // keep the overflow passes few
        for (uint64_t d : {span - 1, span, span + 1, 3 * span + 5, span + span / 2}) delays.push_back(d);
      }
      for (uint64_t d : {uint64_t{1}, uint64_t{2}, uint64_t{63}}) delays.push_back(d);

      std::vector<std::unique_ptr<TestTimer>> timers;
      std::vector<int64_t> deadline;
      for (uint64_t d : delays) {
        if (d > static_cast<uint64_t>((kTimeLimit - start) / T) - 1) continue;  // beyond int64 range
        for (int64_t sub : {int64_t{0}, int64_t{1}, T - 1}) {
          int64_t dl = start + static_cast<int64_t>(d) * T + sub;
          int id = static_cast<int>(timers.size());
          timers.push_back(std::make_unique<TestTimer>(id));
          deadline.push_back(dl);
          wheel.schedule(*timers.back(), at(dl));
        }
      }
      REQUIRE(timers.size() > 20u);

      std::vector<int> fired_count(timers.size(), 0);
      int wakeups = 0;
      while (auto nd = wheel.next_due()) {
        REQUIRE(++wakeups < 100'000);
        REQUIRE(ns_of(*nd) > ns_of(wheel.now()));
        Step early = advance(wheel, ns_of(*nd) - 1);
        CHECK(early.log.empty());
        Step s = advance(wheel, ns_of(*nd));
        CHECK(s.count == s.log.size());
        for (const Fired& f : s.log) {
          ++fired_count[static_cast<std::size_t>(f.id)];
          int64_t dl = deadline[static_cast<std::size_t>(f.id)];
          CAPTURE(dl);
          CHECK(f.wheel_now == static_cast<int64_t>(due_tick(dl, T)) * T);
          CHECK(dl <= ns_of(*nd));
        }
      }
      for (std::size_t i = 0; i < timers.size(); ++i) {
        CAPTURE(deadline[i]);
        CHECK(fired_count[i] == 1);
      }
      CHECK(wheel.empty());
    }
  }
}

TEST_CASE("a long delay does not fire early or late when time jumps straight to it") {
  // No next_due() hops: a single long jump to 1 ns before the due tick, then to the tick.
  for (unsigned levels : {1u, 2u, 3u, 6u}) {
    for (unsigned l = 1; l <= std::min(levels + 2, 6u); ++l) {
      CAPTURE(levels);
      CAPTURE(l);
      TimerWheel wheel(at(777), opts(1, levels));
      Recording rec(wheel);
      TestTimer t(1);
      const int64_t dl = 777 + static_cast<int64_t>(pow64(l)) * 5 / 4 + 3;
      wheel.schedule(t, at(dl));
      CHECK(advance(wheel, dl - 1).log.empty());
      CHECK(t.scheduled());
      Step s = advance(wheel, dl);
      CHECK(s.ids() == Ids{1});
      REQUIRE(s.log.size() == 1u);
      CHECK(s.log[0].wheel_now == dl);
    }
  }
}

TEST_CASE("catch-up after a stall fires everything due once, tick by tick in deadline order") {
  struct Cfg {
    int64_t tick;
    unsigned levels;
  };
  for (const Cfg& c : {Cfg{kMs, 3}, Cfg{kMs, 1}, Cfg{1, 6}, Cfg{kSec, 2}}) {
    CAPTURE(c.tick);
    CAPTURE(c.levels);
    const int64_t T = c.tick;
    std::mt19937_64 rng(42 + c.levels);
    const int64_t start = 1'000 * T + T / 2;
    TimerWheel wheel(at(start), opts(T, c.levels));
    Recording rec(wheel);
    const uint64_t span = std::min<uint64_t>(pow64(c.levels) * 8, pow64(3) * 4);

    const int n = 600;
    std::vector<std::unique_ptr<TestTimer>> timers;
    std::vector<int64_t> deadline;
    for (int i = 0; i < n; ++i) {
      timers.push_back(std::make_unique<TestTimer>(i));
      int64_t dl;
      if (i % 10 == 0)
        dl = start - static_cast<int64_t>(rng() % 5) * T;  // already due
      else if (i % 7 == 0)
        dl = deadline[static_cast<std::size_t>(i - 1)];      // ties
      else
        dl = start + static_cast<int64_t>(log_uniform(rng, 63) % span) * T + static_cast<int64_t>(rng() % static_cast<uint64_t>(T));
      deadline.push_back(dl);
      wheel.schedule(*timers.back(), at(dl));
    }
    const uint64_t cur0 = floor_tick(start, T);
    const int64_t stall_to = start + static_cast<int64_t>(span * 6 / 10) * T;
    const uint64_t target = floor_tick(stall_to, T);

    // Expected: every entry due by `target`, by (fire tick, filing order).
    std::vector<std::pair<uint64_t, int>> expect;
    for (int i = 0; i < n; ++i) {
      uint64_t due = due_tick(deadline[static_cast<std::size_t>(i)], T);
      if (due <= target) expect.push_back({std::max(due, cur0), i});
    }
    std::sort(expect.begin(), expect.end());
    REQUIRE(expect.size() > 100u);
    REQUIRE(expect.size() < static_cast<std::size_t>(n));

    Step s = advance(wheel, stall_to);
    CHECK(s.count == expect.size());
    REQUIRE(s.log.size() == expect.size());
    for (std::size_t k = 0; k < expect.size(); ++k) {
      CAPTURE(k);
      CHECK(s.log[k].id == expect[k].second);
      CHECK(s.log[k].wheel_now == static_cast<int64_t>(expect[k].first) * T);
    }
    CHECK(advance(wheel, stall_to).log.empty());  // each fired once

    // The rest fire in order on a second stall.
    std::vector<std::pair<uint64_t, int>> rest;
    uint64_t last_due = 0;
    for (int i = 0; i < n; ++i) {
      uint64_t due = due_tick(deadline[static_cast<std::size_t>(i)], T);
      if (due > target) rest.push_back({due, i}), last_due = std::max(last_due, due);
    }
    std::sort(rest.begin(), rest.end());
    Step s2 = advance(wheel, static_cast<int64_t>(last_due) * T + 5 * T);
    REQUIRE(s2.log.size() == rest.size());
    for (std::size_t k = 0; k < rest.size(); ++k) {
      CHECK(s2.log[k].id == rest[k].second);
      CHECK(s2.log[k].wheel_now == static_cast<int64_t>(rest[k].first) * T);
    }
    CHECK(wheel.empty());
  }
}

TEST_CASE("reschedule of a scheduled entry moves it: it fires once, at the new deadline") {
  TimerWheel wheel(at(0), opts(kMs, 6));
  Recording rec(wheel);
  TestTimer a(1), b(2);
  wheel.schedule(a, at(10 * kMs));
  wheel.schedule(a, at(5'000 * kMs));  // later, other level
  wheel.schedule(b, at(5'000 * kMs));
  wheel.schedule(b, at(7 * kMs));      // earlier
  CHECK(ns_of(a.deadline()) == 5'000 * kMs);
  CHECK(ns_of(b.deadline()) == 7 * kMs);
  CHECK(advance(wheel, 7 * kMs).ids() == Ids{2});
  CHECK(advance(wheel, 4'999 * kMs).log.empty());
  CHECK(advance(wheel, 5'000 * kMs).ids() == Ids{1});
  CHECK(advance(wheel, 10'000'000 * kMs).log.empty());
}

TEST_CASE("touch to a later deadline does not fire at the old deadline and fires at the new one") {
  SUBCASE("within level 0") {
    TimerWheel wheel(at(0), opts(kMs, 6));
    Recording rec(wheel);
    TestTimer a(1);
    wheel.schedule(a, at(10 * kMs));
    wheel.touch(a, at(20 * kMs));
    CHECK(ns_of(a.deadline()) == 20 * kMs);
    CHECK(advance(wheel, 10 * kMs).log.empty());
    CHECK(a.scheduled());
    CHECK(advance(wheel, 20 * kMs - 1).log.empty());
    Step s = advance(wheel, 20 * kMs);
    CHECK(s.ids() == Ids{1});
    CHECK(s.log.at(0).wheel_now == 20 * kMs);
  }
  SUBCASE("from level 0 to level 2, from level 1 within its own slot, and to the overflow list") {
    for (unsigned levels : {6u, 2u, 1u}) {
      CAPTURE(levels);
      TimerWheel wheel(at(0), opts(1, levels));
      Recording rec(wheel);
      TestTimer a(1), b(2), c(3);
      wheel.schedule(a, at(10));
      wheel.touch(a, at(3 * 4096 + 17));
      wheel.schedule(b, at(100));  // level 1, slot covering 64..127
      wheel.touch(b, at(120));
      wheel.schedule(c, at(30));
      wheel.touch(c, at(64 * 4096 * 3 + 5));
      Timeline fired;
      int wakeups = 0;
      while (auto nd = wheel.next_due()) {  // one level: one wakeup per 64-tick revolution
        REQUIRE(++wakeups < 100'000);
        for (const Fired& f : advance(wheel, ns_of(*nd)).log) fired.push_back({f.id, f.wheel_now});
      }
      CHECK(fired == Timeline{{2, 120}, {1, 3 * 4096 + 17}, {3, 64 * 4096 * 3 + 5}});
    }
  }
  SUBCASE("an entry already due, touched to the future, waits for the new deadline") {
    TimerWheel wheel(at(100 * kMs), opts(kMs, 6));
    Recording rec(wheel);
    TestTimer a(1);
    wheel.schedule(a, at(50 * kMs));
    wheel.touch(a, at(150 * kMs));
    CHECK(advance(wheel, 100 * kMs).log.empty());
    CHECK(advance(wheel, 149 * kMs).log.empty());
    CHECK(advance(wheel, 150 * kMs).ids() == Ids{1});
  }
  SUBCASE("repeated refreshes (a heartbeat's idle timer) never fire until they stop") {
    TimerWheel wheel(at(0), opts(kMs, 3));
    Recording rec(wheel);
    TestTimer a(1);
    wheel.schedule(a, at(100 * kMs));
    int64_t now = 0;
    for (int i = 0; i < 5'000; ++i) {
      now += kMs / 2 + (i % 3) * kMs;
      REQUIRE(advance(wheel, now).log.empty());
      wheel.touch(a, at(now + 100 * kMs));
    }
    const int64_t last = now + 100 * kMs;
    CHECK(advance(wheel, last - 1).log.empty());
    Step s = advance(wheel, last);
    CHECK(s.ids() == Ids{1});
  }
  SUBCASE("a later deadline within the same tick still fires in that tick") {
    TimerWheel wheel(at(0), opts(kMs, 6));
    Recording rec(wheel);
    TestTimer a(1);
    wheel.schedule(a, at(10 * kMs - 500));
    wheel.touch(a, at(10 * kMs));
    CHECK(advance(wheel, 10 * kMs - 1).log.empty());
    CHECK(advance(wheel, 10 * kMs).ids() == Ids{1});
  }
}

TEST_CASE("touch to an earlier deadline fires at the earlier one") {
  SUBCASE("from a high level to level 0") {
    TimerWheel wheel(at(0), opts(kMs, 6));
    Recording rec(wheel);
    TestTimer a(1);
    wheel.schedule(a, at(1'000'000 * kMs));
    wheel.touch(a, at(10 * kMs));
    CHECK(ns_of(a.deadline()) == 10 * kMs);
    REQUIRE(wheel.next_due().has_value());
    CHECK(next_due_ns(wheel) <= 10 * kMs);
    CHECK(advance(wheel, 10 * kMs - 1).log.empty());
    CHECK(advance(wheel, 10 * kMs).ids() == Ids{1});
    CHECK(wheel.empty());
    CHECK(advance(wheel, 2'000'000 * kMs).log.empty());  // not again at the old deadline
  }
  SUBCASE("from the overflow list") {
    TimerWheel wheel(at(0), opts(1, 1));
    Recording rec(wheel);
    TestTimer a(1);
    wheel.schedule(a, at(64 * 64 * 3));
    wheel.touch(a, at(5));
    CHECK(advance(wheel, 4).log.empty());
    CHECK(advance(wheel, 5).ids() == Ids{1});
    CHECK(advance(wheel, 64 * 64 * 4).log.empty());
  }
  SUBCASE("to the past: fires on the next advance") {
    TimerWheel wheel(at(20 * kMs), opts(kMs, 6));
    Recording rec(wheel);
    TestTimer a(1);
    wheel.schedule(a, at(500 * kMs));
    wheel.touch(a, at(3 * kMs));
    CHECK(next_due_ns(wheel) == ns_of(wheel.now()));
    Step s = advance(wheel, 20 * kMs);
    CHECK(s.ids() == Ids{1});
    CHECK(s.log.at(0).wheel_now == 20 * kMs);
  }
  SUBCASE("a touch of an unscheduled entry schedules it") {
    TimerWheel wheel(at(0), opts(kMs, 6));
    Recording rec(wheel);
    TestTimer a(1);
    wheel.touch(a, at(7 * kMs));
    CHECK(a.scheduled());
    CHECK(advance(wheel, 6 * kMs).log.empty());
    CHECK(advance(wheel, 7 * kMs).ids() == Ids{1});
  }
}

TEST_CASE("re-entrancy: a callback cancels another entry due in the same tick; it does not fire") {
  for (int64_t due : {int64_t{10}, int64_t{100}, int64_t{5'000}}) {  // filed in level 0, 1, 2
    CAPTURE(due);
    TimerWheel wheel(at(0), opts(1, 6));
    Recording rec(wheel);
    TestTimer a(1), b(2), c(3);
    a.on_fire = [&](TestTimer&) { wheel.cancel(b); };
    wheel.schedule(a, at(due));
    wheel.schedule(b, at(due));
    wheel.schedule(c, at(due));
    Step s = advance(wheel, due + 1'000);
    CHECK(s.ids() == Ids{1, 3});
    CHECK(s.count == 2u);
    CHECK_FALSE(b.scheduled());
    CHECK(advance(wheel, due + 100'000).log.empty());
  }
  SUBCASE("also among entries already due (fired at the start of advance)") {
    TimerWheel wheel(at(50), opts(1, 6));
    Recording rec(wheel);
    TestTimer a(1), b(2);
    a.on_fire = [&](TestTimer&) { wheel.cancel(b); };
    wheel.schedule(a, at(10));
    wheel.schedule(b, at(20));
    CHECK(advance(wheel, 50).ids() == Ids{1});
    CHECK(wheel.empty());
  }
}

TEST_CASE("re-entrancy: a callback that reschedules itself fires again later, or at the next advance if due now") {
  SUBCASE("later, within the same advance") {
    TimerWheel wheel(at(0), opts(kMs, 6));
    Recording rec(wheel);
    TestTimer a(1);
    int runs = 0;
    a.on_fire = [&](TestTimer& self) {
      if (++runs < 4) wheel.schedule(self, wheel.now() + std::chrono::milliseconds(100));
    };
    wheel.schedule(a, at(10 * kMs));
    Step s = advance(wheel, 1'000 * kMs);
    CHECK(s.count == 4u);
    REQUIRE(s.log.size() == 4u);
    CHECK(s.log[0].wheel_now == 10 * kMs);
    CHECK(s.log[1].wheel_now == 110 * kMs);
    CHECK(s.log[2].wheel_now == 210 * kMs);
    CHECK(s.log[3].wheel_now == 310 * kMs);
    CHECK_FALSE(a.scheduled());
  }
  SUBCASE("for now: once per advance, the loop is never starved") {
    TimerWheel wheel(at(0), opts(kMs, 6));
    Recording rec(wheel);
    TestTimer a(1);
    a.on_fire = [&](TestTimer& self) { wheel.schedule(self, wheel.now()); };
    wheel.schedule(a, at(10 * kMs));
    for (int i = 0; i < 5; ++i) {
      Step s = advance(wheel, 10 * kMs);
      CHECK(s.ids() == Ids{1});
      CHECK(s.count == 1u);
      CHECK(a.scheduled());
      CHECK(next_due_ns(wheel) == ns_of(wheel.now()));
    }
  }
}

TEST_CASE("re-entrancy: a callback reschedules, touches and schedules other entries") {
  TimerWheel wheel(at(0), opts(1, 6));
  Recording rec(wheel);
  TestTimer a(1), b(2), c(3), d(4), e(5), f(6), g(7);
  a.on_fire = [&](TestTimer&) {
    wheel.schedule(b, at(15));    // B was due now (same tick, not yet fired): moves to 15
    wheel.schedule(c, at(12));    // C was due at 500: moves to 12, fires in this advance
    wheel.schedule(d, at(11));    // new entry, fires in this advance
    wheel.schedule(e, at(9'000));  // new entry beyond this advance
    wheel.touch(f, at(30));       // F, due now too, touched later: fires at 30
    wheel.touch(g, at(13));       // G, due at 2'000, touched earlier: fires at 13
  };
  wheel.schedule(a, at(10));
  wheel.schedule(b, at(10));
  wheel.schedule(f, at(10));
  wheel.schedule(c, at(500));
  wheel.schedule(g, at(2'000));
  Step s = advance(wheel, 1'000);
  Timeline got = s.timeline();
  CHECK(got == Timeline{{1, 10}, {4, 11}, {3, 12}, {7, 13}, {2, 15}, {6, 30}});
  CHECK(s.count == 6u);
  CHECK(e.scheduled());
  CHECK(advance(wheel, 8'999).log.empty());
  CHECK(advance(wheel, 9'000).ids() == Ids{5});
  CHECK(wheel.empty());
}

TEST_CASE("an entry scheduled for the current tick from inside a callback fires on the next advance") {
  TimerWheel wheel(at(0), opts(kMs, 6));
  Recording rec(wheel);
  TestTimer a(1), b(2), c(3), d(4);
  a.on_fire = [&](TestTimer&) {
    wheel.schedule(b, wheel.now());                 // the tick being processed
    wheel.schedule(c, at(2 * kMs));                 // a tick already passed
    wheel.touch(d, wheel.now() - Duration(1));      // touch (schedules) into the past
  };
  wheel.schedule(a, at(10 * kMs));
  Step s = advance(wheel, 10 * kMs);
  CHECK(s.ids() == Ids{1});
  CHECK(s.count == 1u);
  CHECK(b.scheduled());
  CHECK(c.scheduled());
  CHECK(d.scheduled());
  CHECK(next_due_ns(wheel) == ns_of(wheel.now()));
  Step next = advance(wheel, 10 * kMs);  // same now: still fires them
  CHECK(next.ids() == Ids{2, 3, 4});
  CHECK(next.count == 3u);
  CHECK(wheel.empty());

  SUBCASE("also during a catch-up: not at the current tick, but not lost either") {
    TestTimer x(5), y(6);
    x.on_fire = [&](TestTimer&) { wheel.schedule(y, wheel.now()); };
    wheel.schedule(x, at(20 * kMs));
    Step s1 = advance(wheel, 500 * kMs);
    CHECK(s1.ids() == Ids{5});
    Step s2 = advance(wheel, 500 * kMs);
    CHECK(s2.ids() == Ids{6});
    REQUIRE(s2.log.size() == 1u);
    CHECK(s2.log[0].wheel_now == 500 * kMs);
  }
}

TEST_CASE("advance called from inside a callback throws std::logic_error") {
  TimerWheel wheel(at(0), opts(kMs, 6));
  Recording rec(wheel);
  TestTimer a(1), b(2);
  SUBCASE("caught inside the callback: the outer advance completes") {
    bool threw = false;
    a.on_fire = [&](TestTimer&) {
      try {
        wheel.advance(at(100 * kMs));
      } catch (const std::logic_error&) {
        threw = true;
      }
    };
    wheel.schedule(a, at(10 * kMs));
    wheel.schedule(b, at(20 * kMs));
    Step s = advance(wheel, 30 * kMs);
    CHECK(threw);
    CHECK(s.ids() == Ids{1, 2});
    CHECK(ns_of(wheel.now()) == 30 * kMs);
  }
  SUBCASE("propagated: the outer advance throws it and the wheel still works") {
    a.on_fire = [&](TestTimer&) { wheel.advance(at(100 * kMs)); };
    wheel.schedule(a, at(10 * kMs));
    wheel.schedule(b, at(20 * kMs));
    CHECK_THROWS_AS(wheel.advance(at(30 * kMs)), std::logic_error);
    g_log.clear();
    Step s = advance(wheel, 30 * kMs);  // not "called from a callback" any more
    CHECK(s.ids() == Ids{2});
  }
}

TEST_CASE("a callback that throws propagates out of advance and the wheel stays consistent") {
  struct Oops : std::runtime_error {
    Oops() : std::runtime_error("oops") {}
  };
  for (unsigned levels : {6u, 1u}) {
    CAPTURE(levels);
    TimerWheel wheel(at(0), opts(1, levels));
    Recording rec(wheel);
    TestTimer a(1), b(2), c(3), d(4), e(5), f(6), g(7);
    a.on_fire = [&](TestTimer&) { throw Oops(); };
    wheel.schedule(a, at(64));     // A, B, C share a tick; F shares A's level-1 slot
    wheel.schedule(b, at(64));
    wheel.schedule(c, at(64));
    wheel.schedule(f, at(100));
    wheel.schedule(d, at(150));    // due within the same advance
    wheel.schedule(g, at(5'000));  // due later (overflow list with one level)
    wheel.schedule(e, at(20'000));  // beyond the advance
    CHECK_THROWS_AS(wheel.advance(at(10'000)), Oops);
    CHECK_FALSE(a.scheduled());
    for (TestTimer* t : {&b, &c, &d, &e, &f, &g}) CHECK(t->scheduled());
    CHECK(g_log.size() == 1u);
    CHECK(next_due_ns(wheel) == ns_of(wheel.now()));  // B and C are due

    // F (due 100) was taken from its slot with A: it must not fire early.
    Step s1 = advance(wheel, 99);
    CHECK(s1.ids() == Ids{2, 3});
    Step s2 = advance(wheel, 10'000);
    Timeline got = s2.timeline();
    CHECK(got == Timeline{{6, 100}, {4, 150}, {7, 5'000}});
    CHECK(e.scheduled());
    CHECK(advance(wheel, 20'000).ids() == Ids{5});
    CHECK(wheel.empty());
  }
  SUBCASE("the next advance picks up the rest, whatever its now") {
    TimerWheel wheel(at(0), opts(kMs, 6));
    Recording rec(wheel);
    TestTimer a(1), b(2);
    a.on_fire = [&](TestTimer&) { throw Oops(); };
    wheel.schedule(a, at(10 * kMs));
    wheel.schedule(b, at(10 * kMs));
    CHECK_THROWS_AS(wheel.advance(at(10 * kMs)), Oops);
    CHECK(advance(wheel, 0).ids() == Ids{2});
  }
}

TEST_CASE("destroying a scheduled entry unlinks it: it never fires and the wheel still works") {
  for (unsigned levels : {6u, 1u}) {
    CAPTURE(levels);
    TimerWheel wheel(at(100), opts(1, levels));
    Recording rec(wheel);
    TestTimer keep1(1), keep2(2);
    {
      // Alone in its slot, sharing a slot, already due, far away (overflow with one level).
      auto alone = std::make_unique<TestTimer>(10);
      auto shared = std::make_unique<TestTimer>(11);
      auto due = std::make_unique<TestTimer>(12);
      auto far = std::make_unique<TestTimer>(13);
      wheel.schedule(*alone, at(110));
      wheel.schedule(*shared, at(120));
      wheel.schedule(keep1, at(120));
      wheel.schedule(*due, at(50));
      wheel.schedule(*far, at(100 + 64 * 64 * 64 + 3));
      wheel.schedule(keep2, at(100 + 64 * 64 * 64 + 3));
    }  // all four destroyed while scheduled
    Timeline got;
    int wakeups = 0;
    while (auto nd = wheel.next_due()) {  // may include one empty wakeup per abandoned slot
      REQUIRE(++wakeups < 10'000);
      for (const Fired& f : advance(wheel, ns_of(*nd)).log) got.push_back({f.id, f.wheel_now});
    }
    CHECK(got == Timeline{{1, 120}, {2, 100 + 64 * 64 * 64 + 3}});
    CHECK(wheel.empty());
    // The slots the destroyed entries used still work.
    TestTimer again(3);
    int64_t t0 = ns_of(wheel.now());
    wheel.schedule(again, at(t0 + 10));
    CHECK(advance(wheel, t0 + 9).log.empty());
    CHECK(advance(wheel, t0 + 10).ids() == Ids{3});
  }
  SUBCASE("destroyed from inside a callback, while due in the same tick") {
    TimerWheel wheel(at(0), opts(1, 6));
    Recording rec(wheel);
    TestTimer a(1), c(3);
    auto b = std::make_unique<TestTimer>(2);
    a.on_fire = [&](TestTimer&) { b.reset(); };
    wheel.schedule(a, at(70));
    wheel.schedule(*b, at(70));
    wheel.schedule(c, at(70));
    Step s = advance(wheel, 100);
    CHECK(s.ids() == Ids{1, 3});
    CHECK(s.count == 2u);
    CHECK(b == nullptr);
  }
}

TEST_CASE("destroying the wheel before its entries is safe") {
  std::vector<std::unique_ptr<TestTimer>> timers;
  for (int i = 0; i < 8; ++i) timers.push_back(std::make_unique<TestTimer>(i));
  {
    TimerWheel wheel(at(1'000), opts(1, 2));
    wheel.schedule(*timers[0], at(500));             // already due
    wheel.schedule(*timers[1], at(1'010));           // level 0
    wheel.schedule(*timers[2], at(1'000 + 300));     // level 1
    wheel.schedule(*timers[3], at(1'000 + 64 * 64 * 9));  // overflow
    wheel.schedule(*timers[4], at(1'010));
    wheel.touch(*timers[4], at(1'020));
    for (int i = 0; i < 5; ++i) CHECK(timers[static_cast<std::size_t>(i)]->scheduled());
  }
  for (const auto& t : timers) CHECK_FALSE(t->scheduled());
  // They can join another wheel, and be destroyed in any order.
  TimerWheel other(at(0), opts(kMs, 6));
  Recording rec(other);
  other.schedule(*timers[1], at(5 * kMs));
  other.schedule(*timers[3], at(6 * kMs));
  timers[0].reset();
  timers[2].reset();
  Step s = advance(other, 10 * kMs);
  CHECK(s.ids() == Ids{1, 3});
  timers.clear();
}

TEST_CASE("next_due() is nullopt on an empty wheel and after cancelling everything") {
  TimerWheel wheel(at(0), opts(1, 2));
  CHECK_FALSE(wheel.next_due().has_value());
  TestTimer due(1), l0(2), l1(3), over(4);
  wheel.advance(at(1'000));
  wheel.schedule(due, at(10));
  wheel.schedule(l0, at(1'005));
  wheel.schedule(l1, at(1'500));
  wheel.schedule(over, at(1'000'000));
  CHECK(next_due_ns(wheel) == ns_of(wheel.now()));
  wheel.cancel(due);
  CHECK(next_due_ns(wheel) == 1'005);
  wheel.cancel(l0);
  auto nd = wheel.next_due();
  REQUIRE(nd.has_value());
  CHECK(ns_of(*nd) > ns_of(wheel.now()));
  CHECK(ns_of(*nd) <= 1'500);
  wheel.cancel(l1);
  nd = wheel.next_due();
  REQUIRE(nd.has_value());  // the overflow entry
  CHECK(ns_of(*nd) > ns_of(wheel.now()));
  CHECK(ns_of(*nd) <= 1'000'000);
  wheel.cancel(over);
  CHECK_FALSE(wheel.next_due().has_value());
  CHECK(wheel.empty());
  for (TestTimer* t : {&due, &l0, &l1, &over}) CHECK_FALSE(t->scheduled());
}

TEST_CASE("empty() is true exactly when no entry is scheduled") {
  TimerWheel wheel(at(0), opts(kMs, 1));
  Recording rec(wheel);
  CHECK(wheel.empty());
  TestTimer a(1), b(2), c(3);
  wheel.schedule(a, at(5 * kMs));  // level 0
  CHECK_FALSE(wheel.empty());
  wheel.cancel(a);
  CHECK(wheel.empty());
  wheel.schedule(b, at(0));  // already due
  CHECK_FALSE(wheel.empty());
  wheel.schedule(c, at(10'000 * kMs));  // overflow list (one level)
  CHECK_FALSE(wheel.empty());
  CHECK(advance(wheel, 0).ids() == Ids{2});
  CHECK_FALSE(wheel.empty());
  CHECK(advance(wheel, 10'000 * kMs).ids() == Ids{3});
  CHECK(wheel.empty());
  wheel.touch(a, at(10'001 * kMs));
  CHECK_FALSE(wheel.empty());
  CHECK(advance(wheel, 10'001 * kMs).ids() == Ids{1});
  CHECK(wheel.empty());
}

TEST_CASE("cancel of an unscheduled entry is harmless") {
  TimerWheel wheel(at(0), opts(kMs, 6));
  Recording rec(wheel);
  TestTimer a(1), b(2);
  wheel.cancel(a);  // never scheduled
  CHECK(wheel.empty());
  wheel.schedule(b, at(5 * kMs));
  wheel.schedule(a, at(3 * kMs));
  wheel.cancel(a);
  wheel.cancel(a);  // twice
  CHECK_FALSE(a.scheduled());
  CHECK(b.scheduled());
  CHECK(advance(wheel, 5 * kMs).ids() == Ids{2});
  wheel.cancel(b);  // after it fired
  CHECK(wheel.empty());
  wheel.schedule(a, at(6 * kMs));
  CHECK(advance(wheel, 6 * kMs).ids() == Ids{1});
}

TEST_CASE("an entry with a null callback is simply unscheduled when due") {
  TimerWheel wheel(at(0), opts(kMs, 6));
  Recording rec(wheel);
  TimerEntry silent;  // no callback
  TestTimer a(1), b(2);
  wheel.schedule(a, at(5 * kMs));
  wheel.schedule(silent, at(5 * kMs));
  wheel.schedule(b, at(5 * kMs));
  CHECK(silent.scheduled());
  Step s = advance(wheel, 5 * kMs);
  CHECK(s.ids() == Ids{1, 2});
  CHECK_FALSE(silent.scheduled());
  CHECK(wheel.empty());
  // A callback set later is used.
  int calls = 0;
  static int* counter = nullptr;
  counter = &calls;
  silent.set_callback([](TimerEntry&) { ++*counter; });
  wheel.schedule(silent, at(7 * kMs));
  advance(wheel, 7 * kMs);
  CHECK(calls == 1);
  counter = nullptr;
}

TEST_CASE("an entry re-armed for now by a callback, then touched later by another callback of the same advance, fires at its new tick") {
  // B is scheduled at tick 10 for tick 5 (already reached: it belongs to the next advance), then
  // at tick 15 touched to tick 20, which this advance() has not reached: it fires at 20, in
  // deadline order.  (Commit 6c28b30 left B in the expired list — touch() to a later deadline
  // only stored it — so B fired on the NEXT advance, at that call's tick, after D.)
  TimerWheel wheel(at(0), opts(1, 6));
  Recording rec(wheel);
  TestTimer a(1), b(2), c(3), d(4);
  a.on_fire = [&](TestTimer&) { wheel.schedule(b, at(5)); };  // tick 10: B due, deferred
  c.on_fire = [&](TestTimer&) { wheel.touch(b, at(20)); };    // tick 15: B now due at 20
  wheel.schedule(a, at(10));
  wheel.schedule(c, at(15));
  wheel.schedule(d, at(25));
  Step s = advance(wheel, 30);
  Timeline got = s.timeline();
  CHECK(got == Timeline{{1, 10}, {3, 15}, {2, 20}, {4, 25}});
  CHECK_FALSE(b.scheduled());

  SUBCASE("outside callbacks: an already due entry touched to the future is no longer due") {
    TestTimer e(5), f(6);
    wheel.schedule(e, at(3));  // due: belongs to the next advance
    wheel.touch(e, at(40));
    wheel.schedule(f, at(35));
    auto nd = wheel.next_due();
    REQUIRE(nd.has_value());
    CHECK(ns_of(*nd) > ns_of(wheel.now()));  // nothing is due: no immediate wakeup
    CHECK(ns_of(*nd) <= 35);
    CHECK(advance(wheel, 30).log.empty());
    CHECK(advance(wheel, 50).timeline() == Timeline{{6, 35}, {5, 40}});
  }
}

TEST_CASE("a due entry touched by a callback to a later deadline that is still due fires in the same tick") {
  // An entry of a slot being run, not fired yet: touch() to a later deadline of the same tick
  // does not move it out of the tick.  (The next test is the same for entries that were
  // already due when advance() was called.)
  TimerWheel wheel(at(0), opts(1000, 6));
  Recording rec(wheel);
  TestTimer a(1), b(2);
  a.on_fire = [&](TestTimer&) { wheel.touch(b, at(10'000)); };
  wheel.schedule(a, at(9'500));
  wheel.schedule(b, at(9'600));
  Step s = advance(wheel, 10'000);
  CHECK(s.ids() == Ids{1, 2});
  CHECK(s.count == 2u);
  CHECK(wheel.empty());
}

TEST_CASE("an already due entry touched by a callback to a later, still due deadline fires in the same advance") {
  // A and B were due when advance() was called; A's callback touches B (not fired yet) to a
  // later deadline that is still due: B still fires in this advance.  Only schedule(), or a
  // touch to an earlier deadline, defers an entry to the next advance.  (An intermediate
  // version of touch(), which re-filed every entry of the expired list, deferred B.)
  TimerWheel wheel(at(100), opts(1, 6));
  Recording rec(wheel);
  TestTimer a(1), b(2), c(3);
  a.on_fire = [&](TestTimer&) {
    wheel.touch(b, at(70));
    wheel.touch(c, at(150));  // ...but one touched to a tick not reached yet waits for it
  };
  wheel.schedule(a, at(50));
  wheel.schedule(b, at(60));
  wheel.schedule(c, at(60));
  Step s = advance(wheel, 100);
  CHECK(s.ids() == Ids{1, 2});
  CHECK(s.count == 2u);
  CHECK_FALSE(b.scheduled());
  CHECK(c.scheduled());
  CHECK(advance(wheel, 149).log.empty());
  CHECK(advance(wheel, 150).ids() == Ids{3});
}
