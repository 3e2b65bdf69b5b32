// evwheel-bench modes.  Each mode lives in bench/<name>.cpp and defines
//
//     int run_<name>(int argc, char** argv);   // argv[0] is the mode name, options follow
//     extern const char <name>_usage[];        // its usage lines for --help
//
// Adding a mode is one line in EVWHEEL_BENCH_MODES below (plus its .cpp file: the Makefile
// builds every bench/*.cpp).  `default` is not listed here: main.cpp defines it as what
// `make bench` runs.
#pragma once

#include <cstdint>
#include <string>

#define EVWHEEL_BENCH_MODES(X) \
  X(timers) \
  X(conns) \
  X(floor) \
  X(throughput) \
  X(proxy) \
  X(soak)

namespace bench {

#define EVWHEEL_BENCH_DECLARE(name) \
  int run_##name(int argc, char** argv); \
  extern const char name##_usage[];
EVWHEEL_BENCH_MODES(EVWHEEL_BENCH_DECLARE)
#undef EVWHEEL_BENCH_DECLARE

// Exit status for a bad command line.
constexpr int kUsageError = 2;

// Prints "evwheel-bench: <message>" as one line on stderr and returns kUsageError.
int usage_error(const std::string& message);

// The whole command line as typed (argv joined by spaces), set by main().
const std::string& command_line();

// Prints the machine (nproc, CPU model), the compiler and the command line, one per line.
void print_header();

// Parses a count such as "1000", "1e6" or "2.5e5": a whole number in [min, max].  False when
// `text` is not one.
bool parse_count(const char* text, uint64_t min, uint64_t max, uint64_t* out);

// Formats a count as "1e6" when it is a power of ten times a small mantissa, else in digits.
std::string format_count(uint64_t n);

}  // namespace bench
