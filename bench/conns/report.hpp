// conns — what an invocation reports: the table on stdout (one column per server), a
// timeline chart per run (--svg) and one JSON document (--json).  Every figure is derived
// here from the runs' Results, the kernel floor of the same invocation and, for the ratio to
// the yardstick, the `sweep` run of the same invocation.
#pragma once

#include <string>
#include <vector>

#include "plan.hpp"
#include "run.hpp"

namespace bench {
namespace conns {

// Below this many connections the per-connection figures derived from machine-wide or fixed
// costs (kernel slab bytes per connection, connections per core extrapolated) are noise, not
// measurements: they print as n/a with the reason (see report.cpp).
constexpr uint64_t kMinConnsPerConnectionFigures = 2000;

struct Report {
  const Options& options;
  const Plan& plan;
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
