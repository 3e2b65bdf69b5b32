// conns — the `conns` mode: its options, the plan, the kernel floor measured first, one run per
// server asked for (the same load each time), and the report.
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "../floor/floor.hpp"
#include "../modes.hpp"
#include "plan.hpp"
#include "report.hpp"
#include "run.hpp"

namespace bench {

const char conns_usage[] =
    "evwheel-bench conns [--conns 10000] [--ping-interval-ms 1000] [--idle-timeout-ms 3000]\n"
    "                    [--duration 10] [--mute-fraction 0.1] [--codec framed|seed|websocket,...]\n"
    "                    [--timers wheel|lazy|sweep|rearm|all] [--tick-ms 0] [--server-cpu 0]\n"
    "                    [--client-cpu 1] [--port 0] [--floor-seconds 2] [--json FILE]\n"
    "                    [--svg FILE] [--reactors 1]\n"
    "    N real loopback connections held by server worker processes pinned to one core\n"
    "    (SO_REUSEPORT, as many as the descriptor limit needs), driven by client processes\n"
    "    pinned to another (source addresses 127.0.0.2, 127.0.0.3, ...): ramp, a steady state\n"
    "    of --duration seconds, then a fraction of the connections muted (open, not answering)\n"
    "    until the idle timeout has passed, then teardown.  Reports false closes, detection\n"
    "    latency, server CPU per heartbeat, ping RTT and lateness, bytes per connection.\n"
    "    --timers: the server measured.  wheel: evwheel's; lazy: one heap timer per connection\n"
    "    re-armed only when it fires (libev's \"be smart about timeouts\"); sweep: no timers, a\n"
    "    tick pings a slice and scans for silence (the yardstick); rearm: the heap timer\n"
    "    restarted on every read (what a naive libuv user writes); all: wheel, lazy and sweep,\n"
    "    one after the other on the same load.  Server CPU per heartbeat is reported against\n"
    "    the sweep run of the same invocation and against the kernel's floor per message,\n"
    "    measured first on the server core (see `floor`) for --floor-seconds.\n"
    "    --codec: what the connections speak; a list (framed,websocket) runs each server once per\n"
    "    codec on the same load and reports each codec's server CPU per heartbeat against\n"
    "    framed's.  websocket clients handshake during the ramp; the baselines speak framed and\n"
    "    seed only, so websocket needs --timers wheel.\n"
    "    --svg: connections held and server CPU over time (FILE-<server>.svg after the first;\n"
    "    FILE-<server>-<codec>.svg with several codecs).\n"
    "    --reactors R: the wheel server as one process with a ReactorPool of R threads, pinned\n"
    "    to the server CPU and the allowed CPUs after it (server CPU % is then of R cores).\n";

namespace conns {
namespace {

// A comma-separated list of codec names, each once, into *codecs; false if it is not one.
bool parse_codecs(const char* text, std::vector<Codec>* codecs) {
  std::vector<Codec> parsed;
  std::string list = text;
  for (std::size_t start = 0; start <= list.size();) {
    std::size_t end = std::min(list.find(',', start), list.size());
    const std::string name = list.substr(start, end - start);
    int kind = 0;
    while (kind < kCodecs && name != to_string(static_cast<Codec>(kind))) ++kind;
    if (kind == kCodecs || std::find(parsed.begin(), parsed.end(), static_cast<Codec>(kind)) != parsed.end())
      return false;
    parsed.push_back(static_cast<Codec>(kind));
    start = end + 1;
  }
  *codecs = parsed;
  return true;
}

// Parses and checks everything; nothing when all is good, else the exit status.
std::optional<int> parse(cli::Parser& parser, int argc, char** argv, Options* o, std::vector<Timers>* servers,
                         std::vector<Codec>* codecs) {
  std::string timers = "wheel";
  *codecs = {Codec::framed};
  parser.integer("--conns", &o->conns, uint64_t{1}, uint64_t{100'000'000});
  parser.integer("--ping-interval-ms", &o->ping_ms, int64_t{1}, int64_t{86'400'000});
  parser.integer("--idle-timeout-ms", &o->idle_ms, int64_t{1}, int64_t{86'400'000});
  parser.integer("--tick-ms", &o->tick_ms, int64_t{0}, int64_t{86'400'000});
  parser.real("--duration", &o->duration_s, 0.001, 86400);
  parser.real("--mute-fraction", &o->mute_fraction, 0, 1);
  parser.custom("--codec", [codecs](const char* value) { return parse_codecs(value, codecs); },
                "framed, seed or websocket, or a comma-separated list of them, each once");
  parser.choice("--timers", &timers, {"wheel", "lazy", "sweep", "rearm", "all"});
  cpu_option(parser, "--server-cpu", &o->server_cpu);
  cpu_option(parser, "--client-cpu", &o->client_cpu);
  parser.integer("--port", &o->port, uint16_t{0}, uint16_t{65535});
  parser.integer("--reactors", &o->reactors, 1, 64);
  parser.text("--json", &o->json);
  parser.text("--svg", &o->svg);
  parser.real("--floor-seconds", &o->floor_seconds, 0, 600);
  if (std::optional<int> status = parser.parse(argc, argv)) return status;
  if (timers == "all") {
    *servers = {Timers::wheel, Timers::lazy, Timers::sweep};
  } else {
    for (int kind = 0; kind < kTimersKinds; ++kind)
      if (timers == to_string(static_cast<Timers>(kind))) *servers = {static_cast<Timers>(kind)};
  }
  if (o->idle_ms <= o->ping_ms)
    return parser.fail("--idle-timeout-ms (" + std::to_string(o->idle_ms) + ") must be longer than --ping-interval-ms (" +
                       std::to_string(o->ping_ms) + ")");
  if (o->tick_ms > o->ping_ms) return parser.fail("--tick-ms must not exceed --ping-interval-ms");
  if (o->reactors > 1 && timers != "wheel")
    return parser.fail("--reactors applies to the wheel server only (use --timers wheel)");
  if (timers != "wheel" && std::find(codecs->begin(), codecs->end(), Codec::websocket) != codecs->end())
    return parser.fail("--codec websocket runs on the wheel server only (the baselines speak framed and seed):"
                       " use --timers wheel");
  return std::nullopt;
}

// The kernel's floor per message on the server core, over as many pairs as the run has
// connections where the descriptor limit allows (its cost grows with the sockets touched).
double measure_kernel_floor(const Options& options) {
  if (options.floor_seconds <= 0) return 0;
  int pairs = static_cast<int>(std::min<uint64_t>(options.conns, static_cast<uint64_t>(floor_pair_limit())));
  try {
    FloorResult floor = measure_floor(pairs, options.floor_seconds, options.server_cpu);
    std::printf("floor: %.2f us of CPU per 4-byte message (send + batched epoll_wait + recv, %d pairs on cpu %d;"
                " unbatched %.2f us)\n",
                floor.us_per_message, floor.pairs, options.server_cpu, floor.unbatched_us_per_message);
    return floor.us_per_message;
  } catch (const std::exception& error) {
    std::printf("floor: not measured (%s)\n", error.what());
    return 0;
  }
}

}  // namespace
}  // namespace conns

int run_conns(int argc, char** argv) {
  conns::Options options;
  std::vector<conns::Timers> servers;
  std::vector<conns::Codec> codecs;
  cli::Parser parser = mode_parser("conns", conns_usage);
  if (std::optional<int> status = conns::parse(parser, argc, argv, &options, &servers, &codecs)) return *status;
  conns::Plan plan;
  int reserve = -1;
  uint16_t port = 0;
  std::string error = conns::make_plan(options, &plan);
  if (error.empty()) error = conns::reserve_port(options.port, &reserve, &port);
  if (!error.empty()) return parser.fail(error);

  print_header();
  std::printf("plan: descriptor limit %ld, up to %" PRIu64 " connections per process: %d server worker(s) on cpu %d, %d client process(es) on cpu %d, port %u\n",
              plan.descriptor_limit, plan.per_process, plan.workers, options.server_cpu, plan.clients,
              options.client_cpu, port);
  conns::Report report{options, plan, codecs, conns::measure_kernel_floor(options), {}};
  std::string warning = conns::tcp_memory_warning(options.conns);
  if (!warning.empty()) std::printf("%s\n", warning.c_str());
  // Each server once per codec, on the same load; every run connects from addresses of its own.
  int number = 0;
  for (conns::Timers server : servers) {
    for (conns::Codec codec : codecs) {
      conns::Options run_options = options;
      run_options.codec = codec;
      report.results.push_back(conns::run(run_options, plan, server, number++, port, reserve));
    }
  }
  close(reserve);
  conns::print_table(report);
  if ((!options.svg.empty() && !conns::write_timelines(report, &error)) ||
      (!options.json.empty() && !conns::write_json(report, &error))) {
    std::fprintf(stderr, "evwheel-bench: conns: %s\n", error.c_str());
    return 1;
  }
  bool ok = true;
  for (const conns::Result& r : report.results) ok &= r.error.empty() && r.leftover_processes == 0;
  return ok ? 0 : 1;
}

}  // namespace bench
