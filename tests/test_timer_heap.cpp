// bench::TimerHeap (bench/baselines/timer_heap.hpp), the heap the `timers` and `conns` baselines
// keep their timers in: after any sequence of schedule, reschedule and cancel, the top is the
// earliest deadline, and draining it yields every scheduled timer in deadline order.
#include <doctest/doctest.h>

#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "../bench/baselines/timer_heap.hpp"

namespace {

struct Timer : bench::HeapTimerHook {
  int id = 0;
};

}  // namespace

TEST_CASE("timer heap: the top is always the earliest deadline of a model, through random operations") {
  std::vector<Timer> timers(200);
  for (int i = 0; i < 200; ++i) timers[static_cast<std::size_t>(i)].id = i;
  std::map<int, int64_t> model;  // id -> deadline, the scheduled timers
  bench::TimerHeap<Timer> heap;
  std::mt19937 random(7);
  for (int step = 0; step < 20000; ++step) {
    Timer& timer = timers[random() % timers.size()];
    if (random() % 3 == 0) {
      heap.cancel(timer);
      model.erase(timer.id);
    } else {
      int64_t deadline = random() % 1000;  // duplicates on purpose
      heap.schedule(timer, deadline);
      model[timer.id] = deadline;
    }
    REQUIRE(heap.size() == model.size());
    CHECK(timer.scheduled() == (model.count(timer.id) == 1));
    if (model.empty()) continue;
    int64_t earliest = INT64_MAX;
    for (const auto& entry : model) earliest = std::min(earliest, entry.second);
    REQUIRE(heap.next_due() == earliest);
    CHECK(model.at(heap.top().id) == earliest);
  }
  // Draining pops in deadline order, each timer once.
  REQUIRE(!model.empty());
  int64_t previous = INT64_MIN;
  std::size_t drained = 0;
  while (!heap.empty()) {
    Timer& top = heap.top();
    CHECK(heap.next_due() >= previous);
    CHECK(heap.next_due() == model.at(top.id));
    previous = heap.next_due();
    heap.cancel(top);
    CHECK_FALSE(top.scheduled());
    ++drained;
  }
  CHECK(drained == model.size());
}

TEST_CASE("timer heap: cancelling an unscheduled timer does nothing; rescheduling moves, never duplicates") {
  bench::TimerHeap<Timer> heap;
  Timer a, b;
  heap.cancel(a);
  CHECK(heap.empty());
  heap.schedule(a, 50);
  heap.schedule(b, 40);
  heap.schedule(a, 10);  // earlier
  CHECK(heap.size() == 2);
  CHECK(&heap.top() == &a);
  heap.schedule(a, 90);  // later
  CHECK(heap.size() == 2);
  CHECK(&heap.top() == &b);
  CHECK(heap.next_due() == 40);
}
