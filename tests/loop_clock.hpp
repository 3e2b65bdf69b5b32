// loop_clock — when, on the library's own clock, something happened.  A test that drives a
// Reactor notes Reactor::now() after every iteration together with whether the event it waits
// for has happened yet; then it can say "not before the deadline, and in the first iteration
// whose clock reached the deadline's tick" without any wall-clock slack: a loaded machine only
// makes iterations later, it never makes a correct library fail such a check.
//
// What it cannot do is judge an iteration that never ran: a promise like "at most one tick
// late" can only be caught broken if some iteration's clock fell inside the tick in question.
// ran_within() tells whether one did, so a test can count the cases it really judged.
#pragma once

#include <algorithm>
#include <vector>

#include "evwheel/heartbeat.hpp"
#include "evwheel/timer_wheel.hpp"

namespace loop_clock {

using evwheel::Duration;
using evwheel::TimePoint;

// The start of the first tick boundary at or after `t`, on the absolute grid the wheel uses
// (timer_wheel.hpp: a deadline d belongs to tick ceil(d / tick)).
inline TimePoint tick_boundary(TimePoint t, Duration tick) {
  auto ns = t.time_since_epoch().count();
  auto width = tick.count();
  return TimePoint(Duration((ns + width - 1) / width * width));
}

// The start of the tick that `t` falls in.
inline TimePoint tick_start(TimePoint t, Duration tick) {
  auto ns = t.time_since_epoch().count();
  return TimePoint(Duration(ns / tick.count() * tick.count()));
}

// The tick by which a pinging endpoint with `policy` must have closed a peer silent since
// `last_byte`: its ping after that byte was due within P of it and left at most
// `ping_lateness` late (HeartbeatStats::ping_lateness.max()), so that ping's grace ends by
// last byte + I + lateness, and the close comes in the first loop iteration whose clock
// reaches that tick.
inline TimePoint idle_close_due(const evwheel::HeartbeatPolicy& policy, TimePoint last_byte, Duration ping_lateness) {
  return tick_boundary(last_byte + policy.idle_timeout + ping_lateness, policy.effective_tick());
}

class Timeline {
 public:
  // After each iteration: its clock, and whether the event had happened by its end.  Notes
  // after the event are ignored, so a pump predicate may note unconditionally.
  void note(TimePoint now, bool happened) {
    if (happened_) return;
    if (happened) {
      happened_ = true;
      at_ = now;
    } else {
      before_.push_back(now);
    }
  }

  bool happened() const noexcept { return happened_; }
  // The clock of the iteration in which the event had happened.
  TimePoint at() const noexcept { return at_; }
  // The clock of the last iteration by whose end it had not; TimePoint::min() when none ran.
  TimePoint last_before() const noexcept { return before_.empty() ? TimePoint::min() : before_.back(); }
  // Whether an iteration before the event had its clock in [from, to).
  bool ran_within(TimePoint from, TimePoint to) const {
    return std::any_of(before_.begin(), before_.end(), [&](TimePoint t) { return from <= t && t < to; });
  }

 private:
  std::vector<TimePoint> before_;
  TimePoint at_{};
  bool happened_ = false;
};

}  // namespace loop_clock
