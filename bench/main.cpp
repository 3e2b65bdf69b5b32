// evwheel-bench <mode> [options] — the benchmark driver.  See modes.hpp for how modes plug in.
#include <sched.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "common/system.hpp"
#include "modes.hpp"

namespace bench {
namespace {

std::string g_command_line;

struct Mode {
  const char* name;
  int (*run)(int argc, char** argv);
  const char* usage;
};

const char default_usage[] =
    "evwheel-bench default\n"
    "    What `make bench` runs (under two minutes): `timers` with its default sizes, then\n"
    "    `conns --conns 10000 --ping-interval-ms 1000 --idle-timeout-ms 3000 --duration 10\n"
    "    --mute-fraction 0.1`.  Takes no options.\n";

int run_default(int argc, char** argv) {
  if (std::optional<int> status = mode_parser("default", default_usage).parse(argc, argv)) return *status;
  char timers[] = "timers";
  char* timers_argv[] = {timers, nullptr};
  int status = run_timers(1, timers_argv);
  std::fflush(stdout);
  char conns[] = "conns", n[] = "--conns", n_value[] = "10000", p[] = "--ping-interval-ms",
       p_value[] = "1000", i[] = "--idle-timeout-ms", i_value[] = "3000", s[] = "--duration",
       s_value[] = "10", f[] = "--mute-fraction", f_value[] = "0.1";
  char* conns_argv[] = {conns, n, n_value, p, p_value, i, i_value, s, s_value, f, f_value, nullptr};
  int conns_status = run_conns(11, conns_argv);
  return status != 0 ? status : conns_status;
}

#define EVWHEEL_BENCH_ENTRY(name) {#name, run_##name, name##_usage},
const Mode kModes[] = {
    {"default", run_default, default_usage},
    EVWHEEL_BENCH_MODES(EVWHEEL_BENCH_ENTRY)
};
#undef EVWHEEL_BENCH_ENTRY

void print_usage() {
  std::printf(
      "usage: evwheel-bench <mode> [options]\n"
      "       evwheel-bench --help\n"
      "A bad mode or option prints one line naming it and exits with status 2.\n\nmodes:\n");
  for (const Mode& mode : kModes) std::printf("\n%s", mode.usage);
}

bool is_help(const char* arg) {
  return std::strcmp(arg, "--help") == 0 || std::strcmp(arg, "-h") == 0;
}

int usage_error(const std::string& message) { return cli::Parser("evwheel-bench", "").fail(message); }

std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.compare(0, 10, "model name") != 0) continue;
    auto colon = line.find(':');
    if (colon == std::string::npos) break;
    auto start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? std::string() : line.substr(start);
  }
  return "unknown";
}

// What `nproc` prints: the CPUs this process may run on.
int cpu_count() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
  return -1;
}

}  // namespace

cli::Parser mode_parser(const char* mode, const char* usage) {
  return cli::Parser(std::string("evwheel-bench: ") + mode, usage);
}

void cpu_option(cli::Parser& parser, const char* name, int* out) {
  parser.custom(name, [out](const char* value) {
    int64_t cpu = -1;
    if (!cli::whole_number(value, 0, CPU_SETSIZE - 1, &cpu) || !sys::cpu_allowed(cpu)) return false;
    *out = static_cast<int>(cpu);
    return true;
  }, "one of the allowed CPUs " + sys::allowed_cpu_list());
}

const std::string& command_line() { return g_command_line; }

void print_header() {
#if defined(__clang__)
  const char* compiler = "clang++ " __clang_version__;
#elif defined(__GNUC__)
  const char* compiler = "g++ " __VERSION__;
#else
  const char* compiler = "unknown";
#endif
  std::printf("machine:  nproc %d, %s\n", cpu_count(), cpu_model().c_str());
#if defined(__OPTIMIZE__)
  const char* optimised = "";
#else
  const char* optimised = " (not optimised!)";
#endif
  std::printf("compiler: %s%s\n", compiler, optimised);
  std::printf("command:  %s\n", g_command_line.c_str());
}

std::string format(const char* spec, double value) {
  char text[64];
  std::snprintf(text, sizeof text, spec, value);
  return text;
}

std::string format_count(uint64_t n) {
  if (n >= 1000) {
    unsigned exponent = 0;
    uint64_t mantissa = n;
    while (mantissa % 10 == 0) {
      mantissa /= 10;
      ++exponent;
    }
    if (mantissa < 10) return std::to_string(mantissa) + "e" + std::to_string(exponent);
  }
  return std::to_string(n);
}

}  // namespace bench

int main(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    if (i) bench::g_command_line += ' ';
    bench::g_command_line += argv[i];
  }
  if (argc < 2) return bench::usage_error("no mode given (try evwheel-bench --help)");
  if (bench::is_help(argv[1])) {
    bench::print_usage();
    return 0;
  }
  for (const bench::Mode& mode : bench::kModes) {
    if (std::strcmp(argv[1], mode.name) == 0) return mode.run(argc - 1, argv + 1);
  }
  return bench::usage_error(std::string("unknown mode '") + argv[1] +
                            "' (try evwheel-bench --help)");
}
