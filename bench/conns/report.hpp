// conns — what an invocation reports: the table on stdout (one column per run: a server, or
// a server and a codec when the invocation runs several codecs), a timeline chart per run
// (--svg) and one JSON document (--json).  Every figure is derived here from the runs'
// Results, the kernel floor of the same invocation and, for the ratios, the `sweep` run of
// the same codec (the yardstick) and the `framed` run of the same server.
#pragma once

#include <string>
#include <vector>

#include "plan.hpp"
#include "run.hpp"

namespace bench {
namespace conns {

// Below these sizes two derived figures are noise, not measurements, and print as n/a with the
// reason (see report.cpp): kernel slab bytes per connection under kMinConnsForSlab
// connections, connections per core extrapolated under kMinHeartbeatsForExtrapolation
// heartbeats per second asked for (N * 1000 / P).
constexpr uint64_t kMinConnsForSlab = 2000;
constexpr double kMinHeartbeatsForExtrapolation = 5000;

struct Report {
  const Options& options;
  const Plan& plan;
  std::vector<Codec> codecs;  // the invocation's, in the order each server ran them
  double floor_us = 0;  // the kernel floor per message, measured first; 0: not measured
  std::vector<Result> results;
};

void print_table(const Report& report);
// One chart per run: FILE for the first, FILE-<server>.svg for the others.  Prints where each
// went; false (with *error) when one cannot be written.
bool write_timelines(const Report& report, std::string* error);
bool write_json(const Report& report, std::string* error);

}  // namespace conns
}  // namespace bench
