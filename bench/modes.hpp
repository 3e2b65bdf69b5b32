// evwheel-bench modes.  Each mode lives in bench/<name>.cpp or bench/<name>/ and defines
//
//     int run_<name>(int argc, char** argv);   // argv[0] is the mode name, options follow
//     extern const char <name>_usage[];        // its usage lines for --help
//
// Adding a mode is one line in EVWHEEL_BENCH_MODES below (plus its sources: the Makefile
// builds every .cpp under bench/).  `default` is not listed here: main.cpp defines it as what
// `make bench` runs.  What the modes share to talk to their user is here too.
#pragma once

#include <cstdint>
#include <string>

#include "common/cli.hpp"

#define EVWHEEL_BENCH_MODES(X) \
  X(timers) \
  X(conns) \
  X(floor) \
  X(throughput) \
  X(proxy) \
  X(soak) \
  X(send)

namespace bench {

#define EVWHEEL_BENCH_DECLARE(name) \
  int run_##name(int argc, char** argv); \
  extern const char name##_usage[];
EVWHEEL_BENCH_MODES(EVWHEEL_BENCH_DECLARE)
#undef EVWHEEL_BENCH_DECLARE

// The parser of one mode: its errors read "evwheel-bench: <mode>: ...", its --help prints
// the mode's usage.
cli::Parser mode_parser(const char* mode, const char* usage);

// Registers `name` as a CPU this process may run on (checked against its affinity mask).
void cpu_option(cli::Parser& parser, const char* name, int* out);

// The whole command line as typed (argv joined by spaces), set by main().
const std::string& command_line();

// Prints the machine (nproc, CPU model), the compiler and the command line, one per line.
void print_header();

// One figure as printf's `spec` ("%.2f") writes it.
std::string format(const char* spec, double value);

// Formats a count as "1e6" when it is a power of ten times a small mantissa, else in digits.
std::string format_count(uint64_t n);

}  // namespace bench
