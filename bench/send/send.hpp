// send — what a run of the `send` mode measures and reports: the three phases (heartbeats
// only, send by id from a producer thread, broadcasts from a loop timer) of one server loop
// holding N connections, each phase's figures derived against the heartbeat-only baseline.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "../conns/plan.hpp"
#include "../conns/protocol.hpp"
#include "evwheel/histogram.hpp"

namespace bench {
namespace send {

// Each message the mode sends is this many payload bytes (a push notification's id and a
// little more); the framed codec adds its 4-byte length.
constexpr std::size_t kMessageBytes = 16;

struct Options {
  conns::Options run;  // conns, heartbeat, duration, codec, CPUs, --json (the clients' too)
  std::chrono::milliseconds broadcast_interval{100};
  bool pinned = false;  // the machine has more than one allowed CPU: loop and clients pinned
};

enum Phase : int { kBaseline, kSend, kBroadcast, kPhases };
const char* to_string(Phase phase);

// One phase, from two snapshots of the loop (its start, and once what it sent has arrived).
struct PhaseResult {
  double seconds = 0;         // the window between the snapshots
  double loop_cpu = 0;        // fraction of a core the loop thread was on a CPU
  double loop_wait = -1;      // fraction it was runnable but waiting for one (-1: unknown)
  double client_cpu = 0;      // the client processes', fraction of a core
  uint64_t pongs = 0;
  evwheel::Histogram rtt, lateness;
  uint64_t handled = 0;       // messages the loop handed to connections
  uint64_t delivered = 0;     // data messages the clients counted
  uint64_t delivered_bytes = 0;
  double loop_us_per_message = 0;  // (loop CPU - the baseline's rate over the window) / handled
};

struct Result {
  uint64_t held = 0, connect_failures = 0, false_closes = 0;
  double ramp_s = 0;
  PhaseResult phases[kPhases];
  double us_per_heartbeat = 0;  // the baseline's loop CPU / pongs, as `conns` counts it
  // send by id
  double producer_s = 0;        // how long the producer ran
  uint64_t accepted = 0;        // send() said queued
  uint64_t refused = 0;         // send() said mailbox_full (the producer backed off)
  uint64_t send_failed = 0;     // any other answer
  uint64_t mailbox_refused = 0; // the reactor's own count of refusals, over the phase
  uint64_t mail_dropped = 0;    // accepted, but the connection had closed by delivery
  double producer_cpu = 0;      // fraction of a core
  // broadcast
  uint64_t broadcasts = 0, broadcast_targets = 0, broadcast_skipped = 0;
  double us_per_message_in_broadcast = 0;  // loop CPU inside broadcast() / copies queued
  int leftover_processes = 0;
  std::string error;
};

struct Report {
  const Options& options;
  const conns::Plan& plan;
  int loop_cpu;       // -1: not pinned
  int client_cpu;
  Result result;
};

// The whole run on `port` (whose reservation `reserve_fd` the children close), the loop
// thread pinned to `loop_cpu` (-1: not pinned); a failure is in Result::error.
Result run(const Options& options, const conns::Plan& plan, uint16_t port, int reserve_fd, int loop_cpu);

void print_table(const Report& report);
bool write_json(const Report& report, std::string* error);

}  // namespace send
}  // namespace bench
