// timers — the three timer structures the `timers` mode compares, behind one interface:
// schedule, cancel, refresh (to a later deadline), next_due (nothing when empty) and
// expire(now) (fire every timer due at now).  Times are nanoseconds on a simulated clock.
//
//   wheel  evwheel::TimerWheel, its TimerEntry the base of the struct per timer;
//   heap   the baselines' TimerHeap (baselines/timer_heap.hpp) — what libevent and libuv do;
//   map    std::multimap<deadline, timer*> with the iterator stored in the timer — what muduo
//          does with its std::set of pairs; a refresh is erase + insert, nodes are allocated.
//
// Each timer is one 64-byte object (the cache line of the connection it times); what fires is
// summed into fired() and fired_sum(), which every structure must agree on.
#pragma once

#include <cstdint>
#include <map>
#include <optional>

#include "../baselines/timer_heap.hpp"
#include "evwheel/timer_wheel.hpp"

namespace bench {
namespace timers {

// What fired, summed over every structure's callback: checked and printed.
inline uint64_t g_fired = 0;
inline uint64_t g_fired_sum = 0;

struct alignas(64) WheelTimer : evwheel::TimerEntry {
  WheelTimer() : evwheel::TimerEntry(&fire) {}
  static void fire(evwheel::TimerEntry& entry) {
    ++g_fired;
    g_fired_sum += static_cast<WheelTimer&>(entry).id;
  }
  uint64_t id = 0;
};

inline evwheel::TimePoint at(int64_t ns) { return evwheel::TimePoint(evwheel::Duration(ns)); }

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

struct alignas(64) HeapTimer : HeapTimerHook {
  static void fire(HeapTimer& timer) {
    ++g_fired;
    g_fired_sum += timer.id;
  }
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
  void schedule(Timer& timer, int64_t deadline) { heap_.schedule(timer, deadline); }
  void cancel(Timer& timer) { heap_.cancel(timer); }
  void refresh(Timer& timer, int64_t deadline) { heap_.schedule(timer, deadline); }
  std::optional<int64_t> next_due() const {
    if (heap_.empty()) return std::nullopt;
    return heap_.next_due();
  }
  void expire(int64_t now) {
    while (!heap_.empty() && heap_.next_due() <= now) {
      Timer& timer = heap_.top();
      heap_.cancel(timer);
      timer.callback(timer);
    }
  }

 private:
  TimerHeap<HeapTimer> heap_;
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

}  // namespace timers
}  // namespace bench
