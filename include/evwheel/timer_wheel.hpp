// timer_wheel — a hierarchical hashed timing wheel with intrusive entries.
//
// Design (read this before picking a configuration)
// ------------------------------------------------
// Time is cut into ticks of `tick` length.  A deadline d belongs to tick ceil(d / tick), so an
// entry can never fire before its deadline; it fires when advance() first sees that tick, which
// is at most one tick after the deadline plus however long the caller was busy.
//
// The wheel has `levels` levels of 64 slots each.  Level L slot s holds entries whose due tick
// differs from the wheel's current tick first in bits [6L, 6L+6) — so level 0 covers the next
// 64 ticks one tick per slot, level 1 the next 64² ticks 64 ticks per slot, and so on:
//
//     level   slot width      range (tick = 1 ms)   range (tick = 1 s)
//       0     1 tick          64 ms                 64 s
//       1     64 ticks        4.1 s                 68 min
//       2     4096 ticks      4.4 min               3.0 days
//       3     262144 ticks    4.7 h                 194 days
//       5     2^30 ticks      2.2 years             —
//
// 64 slots per level because one `uint64_t occupied` mask per level then answers "which slot is
// next non-empty" with one count-trailing-zeros: next_due() never scans empty slots, and the
// reactor sleeps until exactly then instead of waking every tick.
//
// When the wheel reaches a slot it takes the whole list and looks at every entry once: an entry
// that is due fires, any other one is re-filed for its remaining time, into a lower level.  That
// one rule gives three things:
//   * cascading: an entry moves down at most `levels - 1` times in its life (amortised O(1));
//   * cheap refresh: touch() only stores a later deadline and never moves the entry — when the
//     old slot comes round, the entry is re-filed for the remaining time;
//   * any delay is exact: a deadline beyond the top level's range waits in one overflow list
//     that is re-filed each time the top level starts a new revolution (every 64^levels ticks).
//
// Costs: schedule, cancel and reschedule are O(1) (a list splice and a bit); touch() to a later
// deadline is one store; advance() is O(1) per fired or re-filed entry plus O(levels) per
// non-empty slot.  No operation allocates.  Memory: 1 KiB per level; 40 bytes per entry.
//
// Destroying a scheduled entry unlinks it but, having no pointer back to its wheel, leaves its
// slot's occupied bit set if it was the slot's last entry: the wheel then wakes once for an
// empty slot.  cancel() first where that matters.
//
// Catch-up: after a stall (process stopped, loop blocked), advance(now) processes every
// non-empty slot up to `now` in tick order, so entries fire in deadline order (tick by tick;
// within one tick in the order they were filed) and each fires once.
//
// Re-entrancy: callbacks run inside advance() and may schedule, reschedule, touch or cancel any
// entry — themselves, or another entry due in the same tick (a cancelled one then does not
// fire).  An entry scheduled for a tick advance() has already reached fires in the next
// advance() call, never in the current one: a callback that re-arms itself for "now" cannot
// starve the loop.  Inside a callback, next_due() and empty() do not count the entries still
// waiting to fire in the tick being run.
//
// Defaults: heartbeats want a coarse tick (the heartbeat policy picks interval/16, at most 1 s)
// so that one tick sends a burst of pings; general timers want 1 ms.  kDefaultLevels (6) covers
// 2^36 ticks — 2.2 years at 1 ms — before the parking rule above is ever used.
//
// Not thread-safe: a wheel and its entries belong to one thread (the reactor's).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace evwheel {

using Duration = std::chrono::nanoseconds;
// A point on the monotonic clock (CLOCK_MONOTONIC); tests build their own from any origin.
using TimePoint = std::chrono::time_point<std::chrono::steady_clock, Duration>;

class TimerWheel;

namespace detail {
// A link of a circular doubly linked list; a list's head is a bare ListNode.
struct ListNode {
  ListNode* next = nullptr;  // null: not in any list
  ListNode* prev = nullptr;
};
}  // namespace detail

// An intrusive timer: embed it in (or derive from) the object it times, so scheduling never
// allocates.  The callback gets the entry back; recover the owner with static_cast when the
// owner derives from TimerEntry.  Destroying a scheduled entry unlinks it.
class TimerEntry : private detail::ListNode {
 public:
  using Callback = void (*)(TimerEntry&);

  explicit TimerEntry(Callback on_expire = nullptr) noexcept : on_expire_(on_expire) {}
  ~TimerEntry() { unlink(); }
  TimerEntry(const TimerEntry&) = delete;
  TimerEntry& operator=(const TimerEntry&) = delete;

  bool scheduled() const noexcept { return next != nullptr; }
  // The deadline last given to schedule()/touch(); meaningful while scheduled().
  TimePoint deadline() const noexcept { return deadline_; }
  void set_callback(Callback on_expire) noexcept { on_expire_ = on_expire; }

 private:
  friend class TimerWheel;
  void unlink() noexcept;

  TimePoint deadline_{};
  Callback on_expire_;
  uint16_t list_ = 0;  // level * 64 + slot, or TimerWheel's expired/overflow list
};

struct TimerWheelOptions {
  Duration tick = std::chrono::milliseconds(1);
  unsigned levels = 6;  // 1 ..= kMaxLevels
};

class TimerWheel {
 public:
  static constexpr unsigned kSlotBits = 6;
  static constexpr unsigned kSlots = 1u << kSlotBits;  // a power of two: a slot is a bit in a u64
  static constexpr unsigned kMaxLevels = 11;           // 11 * 6 bits covers every 64-bit tick
  static constexpr unsigned kDefaultLevels = 6;

  // `start` is the time the wheel begins at.  Throws std::invalid_argument on a tick <= 0 or a
  // level count outside 1 ..= kMaxLevels.
  explicit TimerWheel(TimePoint start, TimerWheelOptions options = {});
  ~TimerWheel();
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // (Re)arms `entry` to fire at `deadline`.  A deadline the wheel has already reached fires on
  // the next advance().  O(1).
  void schedule(TimerEntry& entry, TimePoint deadline) noexcept;
  // Moves the deadline of a scheduled entry.  A later deadline is one store (the entry is
  // re-filed lazily when its current slot comes round); an earlier one re-files it now.
  // An unscheduled entry is scheduled.  O(1).
  void touch(TimerEntry& entry, TimePoint deadline) noexcept;
  // Disarms `entry`; harmless if it is not scheduled.  O(1).
  void cancel(TimerEntry& entry) noexcept;

  // Fires every entry due at `now` (see "Catch-up" and "Re-entrancy" above) and returns how
  // many fired.  `now` earlier than the wheel's time is treated as the wheel's time.
  std::size_t advance(TimePoint now);

  // When advance() next has work: the start of the next non-empty slot (which may hold only
  // entries to re-file), the wheel's current time if entries are already due, or nothing when
  // no entry is scheduled.  O(levels).
  std::optional<TimePoint> next_due() const noexcept;

  TimePoint now() const noexcept { return from_tick(current_tick_); }
  Duration tick() const noexcept { return tick_; }
  unsigned levels() const noexcept { return levels_; }
  bool empty() const noexcept;

 private:
  uint64_t due_tick(TimePoint deadline) const noexcept;  // ceil(deadline / tick)
  uint64_t floor_tick(TimePoint time) const noexcept;
  TimePoint from_tick(uint64_t tick) const noexcept;
  void file(TimerEntry& entry) noexcept;
  void link(TimerEntry& entry, uint16_t list) noexcept;
  void remove(TimerEntry& entry) noexcept;
  // The tick at which the earliest non-empty list is due, and that list's id.
  std::optional<uint64_t> next_list_tick(uint16_t* list) const noexcept;
  std::size_t run_list(uint16_t list);
  detail::ListNode& head(uint16_t list) noexcept;

  Duration tick_;
  unsigned levels_;
  uint64_t current_tick_;      // every slot up to and including this tick has been processed
  bool advancing_ = false;
  uint64_t occupied_[kMaxLevels] = {};
  // kMaxLevels * kSlots slot heads, then the expired list (due when filed: fired by the next
  // advance()) and the overflow list (beyond the top level: re-filed at each revolution).
  detail::ListNode lists_[kMaxLevels * kSlots + 2];
};

}  // namespace evwheel
