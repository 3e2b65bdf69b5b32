// bench::measure_floor (bench/floor/floor.hpp) on a few real loopback pairs: what it reports, that
// it gives back every descriptor and the caller's CPU set, and that it caps the pairs to what
// RLIMIT_NOFILE leaves (in a forked child with a lowered limit, so the runner's stays as it is).
#include <doctest/doctest.h>

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <stdexcept>

#include "../bench/floor/floor.hpp"
#include "child.hpp"
#include "fd_count.hpp"

namespace {

// The CPU the test pins to: the last allowed one, so a runner confined to CPU 0 still passes.
int last_allowed_cpu(const cpu_set_t& set) {
  int last = -1;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) last = cpu;
  return last;
}

}  // namespace

TEST_CASE("measure_floor moves whole rounds over every pair and reports a cost for each phase") {
  const std::size_t fds = open_fd_count();
  cpu_set_t before;
  REQUIRE(sched_getaffinity(0, sizeof before, &before) == 0);

  bench::FloorResult result = bench::measure_floor(4, 0.06, last_allowed_cpu(before));

  CHECK(result.pairs == 4);
  CHECK(result.messages >= 4);
  CHECK(result.messages % 4 == 0);  // a round is one message on every pair
  CHECK(result.us_per_message > 0);
  CHECK(result.send_us > 0);
  CHECK(result.recv_us > 0);
  CHECK(result.unbatched_us_per_message > 0);
  CHECK(open_fd_count() == fds);
  cpu_set_t after;
  REQUIRE(sched_getaffinity(0, sizeof after, &after) == 0);
  CHECK(CPU_EQUAL(&before, &after));
}

TEST_CASE("measure_floor refuses a non-positive pair count or duration") {
  CHECK_THROWS_AS(bench::measure_floor(0, 1, -1), std::invalid_argument);
  CHECK_THROWS_AS(bench::measure_floor(4, 0, -1), std::invalid_argument);
}

TEST_CASE("measure_floor caps the pairs to the descriptors RLIMIT_NOFILE leaves") {
  pid_t pid = child::start([] {
    // 40 descriptors above those open now: 16 stay spare, 24 make 12 pairs.
    rlimit limit;
    limit.rlim_cur = limit.rlim_max = open_fd_count() + 40;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0 || bench::floor_pair_limit() != 12) return 1;
    return bench::measure_floor(1000, 0.03, -1).pairs == 12 ? 0 : 2;
  });
  REQUIRE(pid > 0);
  CHECK(child::wait(pid) == 0);
}
