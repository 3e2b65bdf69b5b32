// timers — the `timers` mode: evwheel::TimerWheel against the two timer structures event loops usually use:
//
//   wheel  evwheel::TimerWheel, its TimerEntry the base of the struct per timer;
//   heap   a binary min-heap of {deadline, timer*} with each timer's heap index stored in the
//          timer, so cancel and update are O(log n) sifts — what libevent and libuv do: the
//          baselines' TimerHeap (baselines/timer_heap.hpp), which `conns` serves from too;
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
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "../modes.hpp"
#include "plan.hpp"
#include "run.hpp"
#include "structures.hpp"

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

namespace timers {
namespace {

constexpr uint64_t kDefaultOps = 1u << 18;  // per column per run

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
  std::vector<uint64_t> parsed;
  for (const std::string& item : split(text)) {
    int64_t size = 0;
    // 16 leaves room for spares and requests in flight; the upper bound keeps indices 32-bit.
    if (!cli::whole_number(item.c_str(), 16, 1'000'000'000, &size)) return false;
    parsed.push_back(static_cast<uint64_t>(size));
  }
  *sizes = parsed;
  return true;
}

bool parse_only(const char* text, bool* only) {
  bool parsed[kStructureCount] = {};
  for (const std::string& item : split(text)) {
    unsigned s = 0;
    while (s < kStructureCount && item != kStructures[s].name) ++s;
    if (s == kStructureCount) return false;
    parsed[s] = true;
  }
  std::copy(parsed, parsed + kStructureCount, only);
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

// Parses the options into *options; nothing when they are good, else the exit status.
std::optional<int> parse_options(int argc, char** argv, Options* options) {
  cli::Parser parser = mode_parser("timers", timers_usage);
  parser.custom("--sizes", [options](const char* value) { return parse_sizes(value, &options->sizes); },
                "comma-separated counts from 16 to 1e9");
  parser.integer("--tick-ns", &options->tick_ns, uint64_t{1}, uint64_t{3'600'000'000'000});
  parser.custom("--seed", [options](const char* value) { return parse_seed(value, &options->seed); },
                "an unsigned 64-bit integer");
  parser.integer("--ops", &options->ops, uint64_t{64}, uint64_t{1'000'000'000});
  std::string owners = "cold";
  parser.choice("--owners", &owners, {"cold", "hot"});
  parser.custom("--only", [options](const char* value) { return parse_only(value, options->only); },
                "a list of wheel, heap, map");
  parser.flag("--full", &options->full);
  if (std::optional<int> status = parser.parse(argc, argv)) return status;
  options->hot = owners == "hot";
  return std::nullopt;
}

void print_ratio(const Row& row, unsigned s, Column column) {
  if (!row.ran[0] || !row.ran[s]) {
    std::printf(" %13s", "-");
  } else {
    std::printf(" %12.1fx", row.best[s][column] / row.best[0][column]);
  }
}

}  // namespace
}  // namespace timers

int run_timers(int argc, char** argv) {
  using namespace timers;
  Options options;
  if (std::optional<int> status = parse_options(argc, argv, &options)) return *status;
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
      if (run == 0) row.floor = measure_memory_floor(plan, options.seed, lines);
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
