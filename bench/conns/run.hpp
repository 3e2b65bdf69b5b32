// conns — one run of the end-to-end bench against one server (evwheel or a baseline): fork
// the workers and clients, drive them through the phases, and gather what they and /proc
// report into a Result (see protocol.hpp for how the processes talk).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../common/svg.hpp"
#include "evwheel/histogram.hpp"
#include "plan.hpp"
#include "protocol.hpp"

namespace bench {
namespace conns {

struct TimelinePoint {
  double seconds;
  uint64_t held;
  int64_t server_cpu_ns;
  double server_cpu;  // fraction of a core since the previous point
};

struct Result {
  Timers timers = Timers::wheel;
  Codec codec = Codec::framed;
  int workers = 0, clients = 0;
  uint64_t held = 0, failed = 0, false_closes = 0, muted = 0, detected = 0;
  uint64_t server_idle_closes = 0;
  double ramp_s = 0, connects_per_s = 0;
  double steady_s = 0;
  double server_cpu = 0, client_cpu = 0, server_core_busy = 0;
  uint64_t pongs = 0, pings = 0;
  double heartbeats_per_s = 0, us_per_heartbeat = 0;
  evwheel::Histogram rtt, lateness, detection;
  double user_bytes = 0, slab_bytes = 0, tcp_buffer_bytes = 0;
  bool slab_ok = false;
  double extrapolated = 0;
  double client_lag_ms = 0;      // the worst lateness of any client's own loop
  double server_wait = 0, client_wait = 0;  // steady: fraction of the time runnable but not running
  double client_wait_run = 0;    // the same for the clients over the whole run, ramp included
  bool client_saturated = false;
  int leftover_processes = 0;
  std::vector<TimelinePoint> timeline;
  std::vector<SvgMarker> markers;
  std::string per_worker;     // connections held by each server worker
  std::string close_reasons;  // when anything but mutes closed: who closed what, and why
  std::string error;
};

// Runs the whole protocol once against `timers`' server speaking options.codec on `port`
// (whose reservation `reserve_fd` the children close), as run number `number` of the
// invocation; a failure is in Result::error.
Result run(const Options& options, const Plan& plan, Timers timers, int number, uint16_t port, int reserve_fd);

}  // namespace conns
}  // namespace bench
