// timer_wheel — see the design notes in include/evwheel/timer_wheel.hpp.
//
// Invariant relied on throughout: an entry filed in level L lies in a slot strictly after the
// current tick's slot in that level, in the same revolution.  So the lowest non-empty level
// holds the earliest slot, and within a level the first set occupied bit is that slot.
#include "evwheel/timer_wheel.hpp"

#include <cassert>
#include <stdexcept>

namespace evwheel {

namespace {

constexpr uint16_t kExpiredList = TimerWheel::kMaxLevels * TimerWheel::kSlots;
constexpr uint16_t kOverflowList = kExpiredList + 1;
constexpr uint16_t kRunningList = kExpiredList + 2;  // taken from the expired list, not yet run

// Bits of a tick below level `level`'s slot field plus the field itself, i.e. one revolution.
constexpr uint64_t revolution_mask(unsigned level) {
  unsigned bits = (level + 1) * TimerWheel::kSlotBits;
  return bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
}

// The level at which `due` (> now) must be filed: the 6-bit group holding their highest
// differing bit.
unsigned level_for(uint64_t now, uint64_t due) {
  unsigned highest = 63u - static_cast<unsigned>(__builtin_clzll(now ^ due));
  return highest / TimerWheel::kSlotBits;
}

// Unlinks a node from whatever list it is in.
void unlink_node(detail::ListNode& node) noexcept {
  node.prev->next = node.next;
  node.next->prev = node.prev;
  node.next = node.prev = nullptr;
}

// Moves every node of `from` to the empty list `to` (both heads).
void splice_all(detail::ListNode& from, detail::ListNode& to) noexcept {
  if (from.next == &from) {
    to.next = to.prev = &to;
    return;
  }
  to.next = from.next;
  to.prev = from.prev;
  to.next->prev = &to;
  to.prev->next = &to;
  from.next = from.prev = &from;
}

}  // namespace

void TimerEntry::unlink() noexcept {
  if (next) unlink_node(*this);
}

TimerWheel::TimerWheel(TimePoint start, TimerWheelOptions options)
    : tick_(options.tick), levels_(options.levels) {
  if (tick_.count() <= 0) throw std::invalid_argument("evwheel: timer wheel tick must be > 0");
  if (levels_ < 1 || levels_ > kMaxLevels)
    throw std::invalid_argument("evwheel: timer wheel levels must be within 1..11");
  current_tick_ = floor_tick(start);
  for (auto& list : lists_) list.next = list.prev = &list;
}

TimerWheel::~TimerWheel() {
  // Entries outlive the wheel only as unscheduled ones: their destructors must not touch us.
  for (auto& list : lists_) {
    while (list.next != &list) unlink_node(*list.next);
  }
}

uint64_t TimerWheel::due_tick(TimePoint deadline) const noexcept {
  auto ns = deadline.time_since_epoch().count();
  if (ns <= 0) return 0;
  auto tick = static_cast<uint64_t>(tick_.count());
  auto whole = static_cast<uint64_t>(ns) / tick;
  return whole + (static_cast<uint64_t>(ns) % tick != 0);  // ceil: never before the deadline
}

uint64_t TimerWheel::floor_tick(TimePoint time) const noexcept {
  auto ns = time.time_since_epoch().count();
  return ns <= 0 ? 0 : static_cast<uint64_t>(ns) / static_cast<uint64_t>(tick_.count());
}

TimePoint TimerWheel::from_tick(uint64_t tick) const noexcept {
  auto width = static_cast<uint64_t>(tick_.count());
  if (tick > static_cast<uint64_t>(Duration::max().count()) / width) return TimePoint::max();
  return TimePoint(Duration(static_cast<Duration::rep>(tick * width)));
}

detail::ListNode& TimerWheel::head(uint16_t list) noexcept { return lists_[list]; }

void TimerWheel::link(TimerEntry& entry, uint16_t list) noexcept {
  detail::ListNode& h = head(list);
  entry.list_ = list;
  entry.prev = h.prev;
  entry.next = &h;
  h.prev->next = &entry;
  h.prev = &entry;
}

void TimerWheel::file(TimerEntry& entry) noexcept {
  uint64_t due = due_tick(entry.deadline_);
  if (due <= current_tick_) return link(entry, kExpiredList);
  unsigned level = level_for(current_tick_, due);
  if (level >= levels_) return link(entry, kOverflowList);
  unsigned slot = static_cast<unsigned>(due >> (level * kSlotBits)) & (kSlots - 1);
  occupied_[level] |= uint64_t{1} << slot;
  link(entry, static_cast<uint16_t>(level * kSlots + slot));
}

void TimerWheel::remove(TimerEntry& entry) noexcept {
  uint16_t list = entry.list_;
  unlink_node(entry);
  if (list >= kExpiredList) return;
  detail::ListNode& h = head(list);
  if (h.next == &h) occupied_[list / kSlots] &= ~(uint64_t{1} << (list % kSlots));
}

void TimerWheel::schedule(TimerEntry& entry, TimePoint deadline) noexcept {
  if (entry.scheduled()) remove(entry);
  entry.deadline_ = deadline;
  file(entry);
}

void TimerWheel::touch(TimerEntry& entry, TimePoint deadline) noexcept {
  // A later deadline stays in the current (earlier) slot: run_list() re-files it on arrival.
  // Not so in the expired list: advance() has already passed it and looks at it only once.
  // (Entries being run from it are marked kRunningList: they are looked at once more.)
  if (entry.scheduled() && deadline >= entry.deadline_ && entry.list_ != kExpiredList) {
    entry.deadline_ = deadline;
    return;
  }
  schedule(entry, deadline);
}

void TimerWheel::cancel(TimerEntry& entry) noexcept {
  if (entry.scheduled()) remove(entry);
}

std::optional<uint64_t> TimerWheel::next_list_tick(uint16_t* list) const noexcept {
  for (unsigned level = 0; level < levels_; ++level) {
    uint64_t occupied = occupied_[level];
    if (!occupied) continue;
    unsigned slot = static_cast<unsigned>(__builtin_ctzll(occupied));
    assert(slot >= ((current_tick_ >> (level * kSlotBits)) & (kSlots - 1)));
    *list = static_cast<uint16_t>(level * kSlots + slot);
    uint64_t revolution_start = current_tick_ & ~revolution_mask(level);
    return revolution_start + (uint64_t{slot} << (level * kSlotBits));
  }
  const detail::ListNode& overflow = lists_[kOverflowList];
  if (overflow.next == &overflow) return std::nullopt;
  *list = kOverflowList;
  // Only reachable with levels_ < kMaxLevels, so the mask below is not all ones.
  return (current_tick_ | revolution_mask(levels_ - 1)) + 1;
}

std::optional<TimePoint> TimerWheel::next_due() const noexcept {
  const detail::ListNode& expired = lists_[kExpiredList];
  if (expired.next != &expired) return now();
  uint16_t list;
  auto tick = next_list_tick(&list);
  if (!tick) return std::nullopt;
  return from_tick(*tick);
}

bool TimerWheel::empty() const noexcept {
  uint16_t list;
  const detail::ListNode& expired = lists_[kExpiredList];
  return expired.next == &expired && !next_list_tick(&list);
}

std::size_t TimerWheel::run_list(uint16_t list) {
  // Take the whole list first: callbacks may then schedule, cancel or re-file anything, and an
  // entry cancelled before its turn simply leaves `pending`.
  detail::ListNode pending;
  splice_all(head(list), pending);
  if (list < kExpiredList) occupied_[list / kSlots] &= ~(uint64_t{1} << (list % kSlots));
  if (list == kExpiredList) {
    for (detail::ListNode* node = pending.next; node != &pending; node = node->next)
      static_cast<TimerEntry*>(node)->list_ = kRunningList;
  }

  // If a callback throws, what has not run yet goes back as expired: the wheel stays whole
  // and the next advance() picks it up.
  struct Restore {
    TimerWheel& wheel;
    detail::ListNode& pending;
    ~Restore() {
      while (pending.next != &pending) {
        auto& entry = static_cast<TimerEntry&>(*pending.next);
        unlink_node(entry);
        wheel.file(entry);
      }
    }
  } restore{*this, pending};

  std::size_t fired = 0;
  while (pending.next != &pending) {
    auto& entry = static_cast<TimerEntry&>(*pending.next);
    unlink_node(entry);
    if (due_tick(entry.deadline_) > current_tick_) {
      file(entry);  // touched to a later deadline, or parked in a coarser slot
      continue;
    }
    ++fired;
    if (entry.on_expire_) entry.on_expire_(entry);
  }
  return fired;
}

std::size_t TimerWheel::advance(TimePoint now) {
  if (advancing_) throw std::logic_error("evwheel: TimerWheel::advance called from a callback");
  advancing_ = true;
  struct Done {
    bool& flag;
    ~Done() { flag = false; }
  } done{advancing_};

  uint64_t target = floor_tick(now);  // a tick is reached once its start has passed
  std::size_t fired = run_list(kExpiredList);
  uint16_t list;
  for (auto tick = next_list_tick(&list); tick && *tick <= target; tick = next_list_tick(&list)) {
    if (*tick > current_tick_) current_tick_ = *tick;
    fired += run_list(list);
  }
  if (target > current_tick_) current_tick_ = target;
  return fired;
}

}  // namespace evwheel
