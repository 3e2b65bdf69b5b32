// timer_heap — the baseline's timer structure: a binary min-heap of timers by deadline, each
// timer knowing its own position, so cancel and reschedule are O(log n) sifts — what libevent
// and libuv keep their timers in (libev's 4-heap is the same idea).  Written here from scratch.
// The deadline sits in the array next to the timer pointer, so a sift compares without
// following pointers into cold timers.  `timers` measures it against the wheel; the `rearm`
// and `lazy` servers of `conns` keep one timer per connection in it.
//
// Invariant: for every scheduled timer t, nodes_[t.heap_index].timer == &t, and no node's
// deadline is earlier than its parent's; an unscheduled timer's heap_index is kNotScheduled.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace bench {

// Derive a timer from this to keep it in a TimerHeap.
struct HeapTimerHook {
  static constexpr uint32_t kNotScheduled = UINT32_MAX;
  uint32_t heap_index = kNotScheduled;
  bool scheduled() const noexcept { return heap_index != kNotScheduled; }
};

template <class Timer>
class TimerHeap {
 public:
  void reserve(std::size_t capacity) { nodes_.reserve(capacity); }
  bool empty() const noexcept { return nodes_.empty(); }
  std::size_t size() const noexcept { return nodes_.size(); }
  // The earliest deadline and its timer; the heap must not be empty.
  int64_t next_due() const noexcept { return nodes_[0].deadline; }
  Timer& top() const noexcept { return *nodes_[0].timer; }

  // Schedules `timer` at `deadline`, or moves it there if it is scheduled already.
  void schedule(Timer& timer, int64_t deadline) {
    if (!timer.scheduled()) {
      nodes_.push_back({deadline, &timer});
      sift_up(nodes_.size() - 1, {deadline, &timer});
    } else if (deadline >= nodes_[timer.heap_index].deadline) {
      sift_down(timer.heap_index, {deadline, &timer});
    } else {
      sift_up(timer.heap_index, {deadline, &timer});
    }
  }

  void cancel(Timer& timer) noexcept {
    if (!timer.scheduled()) return;
    const std::size_t i = timer.heap_index;
    timer.heap_index = HeapTimerHook::kNotScheduled;
    const Node last = nodes_.back();
    nodes_.pop_back();
    if (i == nodes_.size()) return;  // it was the last node
    if (last.deadline < nodes_[i].deadline) {
      sift_up(i, last);
    } else {
      sift_down(i, last);
    }
  }

 private:
  struct Node {
    int64_t deadline;
    Timer* timer;
  };
  void place(std::size_t i, Node node) noexcept {
    nodes_[i] = node;
    node.timer->heap_index = static_cast<uint32_t>(i);
  }
  // Moves `node`, meant for the hole at i, up past every later-due parent.
  void sift_up(std::size_t i, Node node) noexcept {
    while (i > 0) {
      std::size_t parent = (i - 1) / 2;
      if (nodes_[parent].deadline <= node.deadline) break;
      place(i, nodes_[parent]);
      i = parent;
    }
    place(i, node);
  }
  // Moves `node`, meant for the hole at i, down past every earlier-due child.
  void sift_down(std::size_t i, Node node) noexcept {
    const std::size_t size = nodes_.size();
    for (;;) {
      std::size_t child = 2 * i + 1;
      if (child >= size) break;
      if (child + 1 < size && nodes_[child + 1].deadline < nodes_[child].deadline) ++child;
      if (node.deadline <= nodes_[child].deadline) break;
      place(i, nodes_[child]);
      i = child;
    }
    place(i, node);
  }

  std::vector<Node> nodes_;
};

}  // namespace bench
