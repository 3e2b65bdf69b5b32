// send — the `send` mode: its options, the plan (conns' own: descriptor limits, client
// processes, source addresses, the port), the CPUs, one run, and the report.
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <optional>
#include <string>

#include "../common/system.hpp"
#include "../modes.hpp"
#include "send.hpp"

namespace bench {

const char send_usage[] =
    "evwheel-bench send [--conns 19000] [--duration 10] [--broadcast-interval-ms 100] [--json FILE]\n"
    "    One server loop (a Reactor and an Endpoint, framed codec, heartbeat P = 1 s, I = 3 s) on\n"
    "    a thread pinned to the first allowed CPU, holding N loopback connections from client\n"
    "    processes on the next CPU that count what they receive.  Three phases of --duration\n"
    "    seconds each: heartbeats only (loop us per heartbeat, as conns counts it); send by id\n"
    "    (a producer thread calls Endpoint::send(id, 16 bytes) round-robin over the open\n"
    "    connections as fast as the mailbox takes them, backing off when it is full); broadcast\n"
    "    (a loop timer calls Endpoint::broadcast(16 bytes) every --broadcast-interval-ms).\n"
    "    Reports messages/s accepted and delivered, refusals, skips, and the loop's CPU per\n"
    "    message beyond the heartbeat-only baseline.\n";

namespace send {
namespace {

std::optional<int> parse(cli::Parser& parser, int argc, char** argv, Options* o) {
  o->run.conns = 19000;
  o->run.mute_fraction = 0;
  o->run.floor_seconds = 0;
  int64_t interval_ms = o->broadcast_interval.count();
  parser.integer("--conns", &o->run.conns, uint64_t{1}, uint64_t{10'000'000});
  parser.real("--duration", &o->run.duration_s, 0.1, 86400);
  parser.integer("--broadcast-interval-ms", &interval_ms, int64_t{1}, int64_t{86'400'000});
  parser.text("--json", &o->run.json);
  if (std::optional<int> status = parser.parse(argc, argv)) return status;
  o->broadcast_interval = std::chrono::milliseconds(interval_ms);
  return std::nullopt;
}

}  // namespace
}  // namespace send

int run_send(int argc, char** argv) {
  send::Options options;
  cli::Parser parser = mode_parser("send", send_usage);
  if (std::optional<int> status = send::parse(parser, argc, argv, &options)) return *status;
  conns::Plan plan;
  std::string error = conns::make_plan(options.run, &plan);
  // The server is one Endpoint on one loop: all N connections in this process.
  if (error.empty() && plan.workers > 1)
    error = "--conns " + std::to_string(options.run.conns) + " needs more descriptors than one server process may hold (at most " +
            std::to_string(plan.per_process) + ")";
  int reserve = -1;
  uint16_t port = 0;
  if (error.empty()) error = conns::reserve_port(0, &reserve, &port);
  if (!error.empty()) return parser.fail(error);

  cpu_set_t allowed;
  options.pinned = sys::allowed_cpus(&allowed) && CPU_COUNT(&allowed) > 1;
  options.run.server_cpu = sys::nth_allowed_cpu(0);
  options.run.client_cpu = sys::nth_allowed_cpu(options.pinned ? 1 : 0);
  const int loop_cpu = options.pinned ? options.run.server_cpu : -1;

  print_header();
  if (options.pinned) {
    std::printf("plan: descriptor limit %ld, server loop on cpu %d, producer off it, %d client process(es) on cpu %d, port %u\n",
                plan.descriptor_limit, loop_cpu, plan.clients, options.run.client_cpu, port);
  } else {
    std::printf("plan: descriptor limit %ld, one allowed cpu: nothing pinned, %d client process(es), port %u\n",
                plan.descriptor_limit, plan.clients, port);
  }
  send::Report report{options, plan, loop_cpu, options.run.client_cpu, send::run(options, plan, port, reserve, loop_cpu)};
  close(reserve);
  send::print_table(report);
  if (!options.run.json.empty() && !send::write_json(report, &error)) {
    std::fprintf(stderr, "evwheel-bench: send: %s\n", error.c_str());
    return 1;
  }
  return report.result.error.empty() && report.result.leftover_processes == 0 ? 0 : 1;
}

}  // namespace bench
