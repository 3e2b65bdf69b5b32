// floor — the `floor` mode: prints measure_floor() (floor.hpp), the kernel's CPU cost of one
// heartbeat message on this machine, batched as a heartbeat tick sends them and unbatched.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>

#include "../common/json.hpp"
#include "../common/system.hpp"
#include "../modes.hpp"
#include "floor.hpp"

namespace bench {

const char floor_usage[] =
    "evwheel-bench floor [--pairs 1000] [--seconds 3] [--cpu 0] [--json FILE]\n"
    "    CPU microseconds the kernel takes per heartbeat message: --pairs loopback TCP\n"
    "    connection pairs (TCP_NODELAY) in one process pinned to --cpu.  Batched rounds (a\n"
    "    4-byte send on every pair, then epoll_wait batches of 1024 events + recv until all\n"
    "    arrived) for 2/3 of --seconds, split into send and receive phase; then unbatched\n"
    "    (send one, epoll_wait for it, recv it) for 1/3, the cost of a wake-up per message.\n"
    "    --pairs is capped by the open-file limit.  --json: the figures as a JSON object.\n";

namespace {

struct Options {
  int pairs = 1000;
  double seconds = 3;
  int cpu = 0;
  std::string json;
};

// Parses the options into *options; nothing when they are good, else the exit status.
std::optional<int> parse_options(int argc, char** argv, Options* options) {
  cli::Parser parser = mode_parser("floor", floor_usage);
  parser.integer("--pairs", &options->pairs, 1, 1'000'000);
  parser.real("--seconds", &options->seconds, 0.01, 3600);
  cpu_option(parser, "--cpu", &options->cpu);
  parser.text("--json", &options->json);
  if (std::optional<int> status = parser.parse(argc, argv)) return status;
  std::string error;
  // Found out now, not after the measurement; and only once every option is known good, since
  // this empties the file.
  if (!options->json.empty() && !write_file(options->json, "", &error)) return parser.fail("bad --json: " + error);
  // The default CPU 0 may be outside this process's set (taskset, cgroups).
  if (!sys::cpu_allowed(options->cpu)) options->cpu = sys::nth_allowed_cpu(0);
  return std::nullopt;
}

std::string to_json(const FloorResult& result, const Options& options, double waiting) {
  Json json;
  json.open()
      .text("mode", "floor")
      .text("command", command_line())
      .integer("pairs", result.pairs)
      .number("seconds", options.seconds)
      .integer("cpu", options.cpu)
      .integer("messages", static_cast<int64_t>(result.messages))
      .number("us_per_message", result.us_per_message)
      .number("send_us", result.send_us)
      .number("recv_us", result.recv_us)
      .number("unbatched_us_per_message", result.unbatched_us_per_message)
      .number("waiting_fraction", waiting)
      .close();
  return json.str();
}

void print(const FloorResult& result, double waiting) {
  std::printf(
      "\nbatched: a 4-byte send on every pair, then epoll_wait (up to 1024 events) + recv until\n"
      "all %d arrived; %llu messages\n"
      "  %7.2f us CPU per message (process user + sys)\n"
      "  %7.2f us   send phase (thread CPU; includes loopback delivery to the receiver)\n"
      "  %7.2f us   receive phase (epoll_wait + recv)\n",
      result.pairs, static_cast<unsigned long long>(result.messages), result.us_per_message,
      result.send_us, result.recv_us);
  std::printf(
      "unbatched: send one, epoll_wait for it, recv it\n"
      "  %7.2f us CPU per message (%+.2f us: one epoll_wait per message instead of per batch)\n",
      result.unbatched_us_per_message, result.unbatched_us_per_message - result.us_per_message);
  // CPU time is not wall time, but a shared CPU still costs it caches and frequency.
  if (waiting >= 0)
    std::printf("waited for a CPU %.0f %% of the run%s\n", waiting * 100,
                waiting > 0.05 ? " (a busy machine: the figures are noisy)" : "");
}

}  // namespace

int run_floor(int argc, char** argv) {
  Options options;
  if (std::optional<int> status = parse_options(argc, argv, &options)) return *status;
  std::printf("evwheel-bench floor: kernel CPU per heartbeat message (lower is better)\n");
  print_header();
  const int limit = floor_pair_limit();
  std::printf("workload: %d loopback TCP pairs (TCP_NODELAY), one process pinned to CPU %d,\n"
              "          %.3g s (2/3 batched, 1/3 unbatched)\n",
              std::min(options.pairs, limit), options.cpu, options.seconds);
  if (options.pairs > limit)
    std::printf("          (--pairs %d capped to %d by the open-file limit)\n", options.pairs, limit);
  std::fflush(stdout);
  FloorResult result;
  const sys::CpuTimes before = sys::cpu_times("self");
  const int64_t start = sys::monotonic_ns();
  try {
    result = measure_floor(options.pairs, options.seconds, options.cpu);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "evwheel-bench: %s\n", error.what());
    return 1;
  }
  double on_cpu, waiting;
  sys::cpu_fractions(before, sys::cpu_times("self"), sys::monotonic_ns() - start, &on_cpu, &waiting);
  print(result, waiting);
  if (!options.json.empty()) {
    std::string error;
    if (!write_file(options.json, to_json(result, options, waiting), &error)) {
      std::fprintf(stderr, "evwheel-bench: floor: %s\n", error.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace bench
