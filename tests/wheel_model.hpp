// wheel_model — a reference model of TimerWheel's contract (include/evwheel/timer_wheel.hpp)
// for operations made from outside callbacks, and a harness that applies each operation to a
// real wheel and to the model and reports every difference.
//
// Used by the randomised test in tests/test_timer_wheel.cpp (a seeded random walk) and by the
// wheel fuzz target (tests/fuzz/wheel_ops.hpp, a walk the fuzzer chooses).  Times are int64
// nanoseconds; the model keeps, per entry, its deadline and due tick, and a multimap from due
// tick to entry that says what each advance() must fire:
//   * advance(now) reaches tick max(current, floor(now / tick)) and fires every entry due at
//     or before it, each at its own tick or — if that tick was reached before the call — at the
//     tick the wheel had when the call started, in tick order;
//   * next_due() is the wheel's time when something is due, else a tick start after it and no
//     later than the earliest due tick; nothing scheduled, nothing.
// The caller keeps times within int64 (the harness multiplies ticks by the tick length).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "evwheel/timer_wheel.hpp"

namespace wheel_model {

// The contract's tick arithmetic: a deadline d is due at tick ceil(d / T) (0 for d <= 0) and
// a time t is in tick floor(t / T).
inline uint64_t due_tick(int64_t d, int64_t T) {
  if (d <= 0) return 0;
  auto u = static_cast<uint64_t>(d), t = static_cast<uint64_t>(T);
  return u / t + (u % t != 0);
}
inline uint64_t floor_tick(int64_t n, int64_t T) {
  return n <= 0 ? 0 : static_cast<uint64_t>(n) / static_cast<uint64_t>(T);
}

// 64^n, saturated.
inline uint64_t pow64(unsigned n) { return n >= 11 ? ~uint64_t{0} : uint64_t{1} << (6 * n); }

// The largest b <= want such that tick << b stays <= 2^58 ns: delays of up to 2^b ticks keep
// every time far inside int64 even after many big jumps.
inline unsigned delay_bits(int64_t tick, unsigned want) {
  unsigned b = 0;
  while (b < want && b + 1 < 63 && static_cast<uint64_t>(tick) <= (uint64_t{1} << 58) >> (b + 1)) ++b;
  return b;
}

inline evwheel::TimePoint at(int64_t ns) { return evwheel::TimePoint(evwheel::Duration(ns)); }
inline int64_t ns_of(evwheel::TimePoint t) { return t.time_since_epoch().count(); }

struct Stats {
  long advances = 0, fired = 0, overflow = 0, big_stalls = 0;
};

// Builds a failure message only when a check fails (the random walks run millions of checks).
#define WHEEL_MODEL_EXPECT(cond, what)       \
  do {                                       \
    if (!(cond)) {                           \
      std::ostringstream message_;           \
      message_ << what << "   [" #cond "]";  \
      fail(message_.str());                  \
    }                                        \
  } while (0)

class ModelledWheel {
 public:
  // Called with a description of each difference between the wheel and the model.
  using Report = std::function<void(const std::string&)>;

  ModelledWheel(int64_t tick, unsigned levels, int64_t start, int entries, Report report)
      : T_(tick), L_(levels), wheel_(at(start), options(tick, levels)), report_(std::move(report)),
        model_(static_cast<std::size_t>(entries)), cur_(floor_tick(start, tick)), clock_(start) {
    for (int id = 0; id < entries; ++id) entries_.push_back(std::make_unique<Timer>(id, *this));
  }
  ModelledWheel(const ModelledWheel&) = delete;
  ModelledWheel& operator=(const ModelledWheel&) = delete;

  // --- operations: each goes to the wheel and the model, then the entry and next_due() are checked
  void schedule(int id, int64_t deadline) {
    wheel_.schedule(timer(id), at(deadline));
    file(id, deadline);
    check_after(id);
  }
  void touch(int id, int64_t deadline) {
    wheel_.touch(timer(id), at(deadline));
    const Entry& m = entry(id);
    if (m.scheduled && deadline >= m.deadline)
      rekey(id, deadline);  // a later deadline: observably the same as schedule()
    else
      file(id, deadline);
    check_after(id);
  }
  void cancel(int id) {
    wheel_.cancel(timer(id));
    unfile(id);
    check_after(id);
  }
  void advance(int64_t now);
  // Fires everything still scheduled and checks the wheel is then empty.
  void drain() {
    if (!by_due_.empty()) advance(static_cast<int64_t>(std::prev(by_due_.end())->first) * T_);
    WHEEL_MODEL_EXPECT(by_due_.empty(), "model not drained");
    WHEEL_MODEL_EXPECT(wheel_.empty(), "the wheel is not empty after every entry fired");
    WHEEL_MODEL_EXPECT(!wheel_.next_due(), "next_due() is set after every entry fired");
    check_all();
  }
  void check_all() {
    for (std::size_t id = 0; id < model_.size(); ++id) check_entry(static_cast<int>(id));
  }

  // --- what a driver may look at to choose its next operation
  bool scheduled(int id) const { return entry(id).scheduled; }
  int64_t deadline(int id) const { return entry(id).deadline; }
  int64_t clock() const { return clock_; }  // the latest `now` given to advance()
  int64_t tick() const { return T_; }
  unsigned levels() const { return L_; }
  int entries() const { return static_cast<int>(model_.size()); }
  const evwheel::TimerWheel& wheel() const { return wheel_; }
  long failures() const { return failures_; }
  const Stats& stats() const { return stats_; }

 private:
  struct Timer : evwheel::TimerEntry {
    Timer(int id_, ModelledWheel& owner_) : TimerEntry(&Timer::expire), id(id_), owner(owner_) {}
    static void expire(evwheel::TimerEntry& e) {
      auto& self = static_cast<Timer&>(e);
      self.owner.fired_.push_back({self.id, ns_of(self.owner.wheel_.now())});
    }
    int id;
    ModelledWheel& owner;
  };
  struct Fired {
    int id;
    int64_t wheel_now;  // the wheel's now() seen by the callback: the tick being processed
  };
  struct Entry {
    bool scheduled = false;
    int64_t deadline = 0;
    uint64_t due = 0;
    std::multimap<uint64_t, int>::iterator it;
  };

  static evwheel::TimerWheelOptions options(int64_t tick, unsigned levels) {
    evwheel::TimerWheelOptions o;
    o.tick = evwheel::Duration(tick);
    o.levels = levels;
    return o;
  }
  Timer& timer(int id) { return *entries_[static_cast<std::size_t>(id)]; }
  Entry& entry(int id) { return model_[static_cast<std::size_t>(id)]; }
  const Entry& entry(int id) const { return model_[static_cast<std::size_t>(id)]; }
  void fail(const std::string& what) {
    ++failures_;
    report_(what);
  }

  void unfile(int id) {
    Entry& m = entry(id);
    if (m.scheduled) by_due_.erase(m.it);
    m.scheduled = false;
  }
  void rekey(int id, int64_t d) {
    Entry& m = entry(id);
    if (m.scheduled) by_due_.erase(m.it);
    m.deadline = d;
    m.due = due_tick(d, T_);
    m.it = by_due_.emplace(m.due, id);
    m.scheduled = true;
  }
  void file(int id, int64_t d) {  // schedule(), or touch() to an earlier deadline
    unfile(id);
    rekey(id, d);
    if (L_ < 11 && ((entry(id).due ^ cur_) >> (6 * L_)) != 0) ++stats_.overflow;  // beyond the top level
  }

  void check_after(int id) {
    check_entry(id);
    check_next_due();
  }
  void check_entry(int id);
  void check_next_due();
  static std::string ids_str(const std::vector<int>& ids) {
    std::ostringstream os;
    os << '[';
    for (std::size_t i = 0; i < ids.size(); ++i) os << (i ? " " : "") << ids[i];
    os << ']';
    return os.str();
  }

  const int64_t T_;
  const unsigned L_;
  evwheel::TimerWheel wheel_;
  Report report_;
  std::vector<std::unique_ptr<Timer>> entries_;
  std::vector<Entry> model_;
  std::multimap<uint64_t, int> by_due_;  // due tick -> id, every scheduled entry
  uint64_t cur_;                         // the model's current tick
  int64_t clock_;
  std::vector<Fired> fired_;  // what the callbacks saw during one advance()
  long failures_ = 0;
  Stats stats_;
};

inline void ModelledWheel::check_entry(int id) {
  const Entry& m = entry(id);
  const Timer& e = timer(id);
  WHEEL_MODEL_EXPECT(e.scheduled() == m.scheduled, "entry " << id << " scheduled() is " << e.scheduled());
  if (m.scheduled && e.scheduled())
    WHEEL_MODEL_EXPECT(ns_of(e.deadline()) == m.deadline, "entry " << id << " deadline()");
}

inline void ModelledWheel::check_next_due() {
  auto nd = wheel_.next_due();
  if (by_due_.empty()) {
    WHEEL_MODEL_EXPECT(!nd, "next_due() on a wheel with nothing scheduled is " << ns_of(*nd));
    WHEEL_MODEL_EXPECT(wheel_.empty(), "empty() with nothing scheduled");
    return;
  }
  WHEEL_MODEL_EXPECT(!wheel_.empty(), "empty() with " << by_due_.size() << " entries scheduled");
  WHEEL_MODEL_EXPECT(nd.has_value(), "next_due() is nullopt with " << by_due_.size() << " scheduled");
  if (!nd) return;
  uint64_t first = by_due_.begin()->first;
  if (first <= cur_) {
    WHEEL_MODEL_EXPECT(*nd == wheel_.now(), "an entry is due (tick " << first << " <= " << cur_
                                                << ") but next_due() is " << ns_of(*nd));
  } else {
    WHEEL_MODEL_EXPECT(*nd > wheel_.now(), "next_due() " << ns_of(*nd) << " <= now() " << ns_of(wheel_.now())
                                                         << " with nothing due");
    WHEEL_MODEL_EXPECT(ns_of(*nd) <= static_cast<int64_t>(first) * T_,
                       "next_due() " << ns_of(*nd) << " is after the earliest due tick " << first);
    WHEEL_MODEL_EXPECT(ns_of(*nd) % T_ == 0, "next_due() " << ns_of(*nd) << " is not a tick start");
  }
}

inline void ModelledWheel::advance(int64_t arg) {
  const uint64_t before = cur_;
  const uint64_t after = std::max(cur_, floor_tick(arg, T_));
  clock_ = std::max(clock_, arg);
  std::vector<int> expect;
  for (auto it = by_due_.begin(); it != by_due_.end() && it->first <= after; ++it) expect.push_back(it->second);

  fired_.clear();
  ++stats_.advances;
  stats_.fired += static_cast<long>(expect.size());
  if (L_ < 11 && after - before >= pow64(L_) * 2) ++stats_.big_stalls;  // several top-level revolutions
  std::size_t n = wheel_.advance(at(arg));
  WHEEL_MODEL_EXPECT(n == fired_.size(), "advance() returned " << n << " but " << fired_.size() << " callbacks ran");

  std::vector<int> got;
  uint64_t last_tick = 0;
  for (const Fired& f : fired_) {
    got.push_back(f.id);
    const Entry& m = entry(f.id);
    if (!m.scheduled) {
      WHEEL_MODEL_EXPECT(m.scheduled, "entry " << f.id << " fired but was not scheduled");
      continue;
    }
    // It fires at its own tick, or — if that tick was already reached before this call — at
    // the wheel's tick when the call started.
    uint64_t fire_tick = std::max(m.due, before);
    WHEEL_MODEL_EXPECT(f.wheel_now == static_cast<int64_t>(fire_tick) * T_,
                       "entry " << f.id << " (deadline " << m.deadline << ", due tick " << m.due << ") fired at "
                                << f.wheel_now << ", expected tick " << fire_tick);
    WHEEL_MODEL_EXPECT(fire_tick >= last_tick, "entry " << f.id << " due tick " << fire_tick
                                                        << " fired after an entry due at tick " << last_tick);
    last_tick = std::max(last_tick, fire_tick);
    WHEEL_MODEL_EXPECT(m.deadline <= clock_, "entry " << f.id << " fired before its deadline " << m.deadline
                                                      << " (now " << clock_ << ")");
    WHEEL_MODEL_EXPECT(!timer(f.id).scheduled(), "entry " << f.id << " still scheduled in its callback");
  }
  std::sort(got.begin(), got.end());
  std::sort(expect.begin(), expect.end());
  WHEEL_MODEL_EXPECT(got == expect, "advance(" << arg << ") from tick " << before << " to " << after << " fired "
                                               << got.size() << " entries, the model " << expect.size()
                                               << (got.size() + expect.size() < 40
                                                       ? ": got " + ids_str(got) + " expected " + ids_str(expect)
                                                       : std::string()));
  for (int id : expect) unfile(id);
  cur_ = after;
  WHEEL_MODEL_EXPECT(wheel_.now() == at(static_cast<int64_t>(cur_) * T_),
                     "now() is " << ns_of(wheel_.now()) << ", expected tick " << cur_);
  fired_.clear();
  check_next_due();
}

#undef WHEEL_MODEL_EXPECT

}  // namespace wheel_model
