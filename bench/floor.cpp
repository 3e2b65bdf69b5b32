// floor — the `floor` mode: prints measure_floor() (floor.hpp), the kernel's CPU cost of one
// heartbeat message on this machine, batched as a heartbeat tick sends them and unbatched.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>

#include "floor.hpp"
#include "json.hpp"
#include "modes.hpp"
#include "run_queue.hpp"
#include "system.hpp"

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

// Parses the options into *options; on a bad one returns usage_error()'s status, else 0.
int parse_options(int argc, char** argv, Options* options) {
  for (int i = 1; i < argc; ++i) {
    bool missing = false;
    const char* value;
    auto bad = [&](const char* option, const std::string& want) {
      return usage_error(std::string("floor: bad ") + option + " '" + value + "' (want " +
                         want + ")");
    };
    if ((value = sys::option("--pairs", argc, argv, &i, &missing))) {
      uint64_t pairs;
      if (!parse_count(value, 1, 1'000'000, &pairs)) return bad("--pairs", "a count from 1 to 1e6");
      options->pairs = static_cast<int>(pairs);
    } else if ((value = sys::option("--seconds", argc, argv, &i, &missing))) {
      if (!sys::parse_real(value, &options->seconds) || options->seconds < 0.01 ||
          options->seconds > 3600)
        return bad("--seconds", "seconds from 0.01 to 3600");
    } else if ((value = sys::option("--cpu", argc, argv, &i, &missing))) {
      long cpu;
      if (!sys::parse_integer(value, &cpu) || !sys::cpu_allowed(cpu))
        return bad("--cpu", "one of the allowed CPUs " + sys::allowed_cpu_list());
      options->cpu = static_cast<int>(cpu);
    } else if ((value = sys::option("--json", argc, argv, &i, &missing))) {
      options->json = value;
    } else if (missing) {
      return usage_error(std::string("floor: option ") + argv[i] + " needs a value");
    } else {
      return usage_error(std::string("floor: unknown option '") + argv[i] + "'");
    }
  }
  std::string error;
  // Found out now, not after the measurement; and only once every option is known good, since
  // this empties the file.
  if (!options->json.empty() && !write_file(options->json, "", &error))
    return usage_error("floor: bad --json: " + error);
  // The default CPU 0 may be outside this process's set (taskset, cgroups).
  if (!sys::cpu_allowed(options->cpu)) options->cpu = sys::nth_allowed_cpu(0);
  return 0;
}

std::string to_json(const FloorResult& result, const Options& options, double waiting) {
  char numbers[640];
  std::snprintf(numbers, sizeof numbers,
                "  \"pairs\": %d,\n  \"seconds\": %g,\n  \"cpu\": %d,\n  \"messages\": %llu,\n"
                "  \"us_per_message\": %.3f,\n  \"send_us\": %.3f,\n  \"recv_us\": %.3f,\n"
                "  \"unbatched_us_per_message\": %.3f,\n  \"waiting_fraction\": %.3f\n",
                result.pairs, options.seconds, options.cpu,
                static_cast<unsigned long long>(result.messages), result.us_per_message,
                result.send_us, result.recv_us, result.unbatched_us_per_message, waiting);
  return "{\n  \"mode\": \"floor\",\n  \"command\": " + json_quote(command_line()) + ",\n" +
         numbers + "}\n";
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
  if (int status = parse_options(argc, argv, &options)) return status;
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
  const CpuTimes before = cpu_times("self");
  const int64_t start = sys::monotonic_ns();
  try {
    result = measure_floor(options.pairs, options.seconds, options.cpu);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "evwheel-bench: %s\n", error.what());
    return 1;
  }
  double on_cpu, waiting;
  cpu_fractions(before, cpu_times("self"), sys::monotonic_ns() - start, &on_cpu, &waiting);
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
