// soak — a long run of everything at once, with its invariants checked as it goes.
//
// A heartbeat server runs in a forked child process (its own loop, descriptors and RSS, driven
// over common/command_pipe.hpp); this process keeps --conns client connections to it and, at
// the same time:
//   churn   closes some connections (FIN) and opens new ones;
//   resets  closes some with SO_LINGER 0 (the server sees ECONNRESET);
//   mutes   pauses reading on some (they stay open but never answer a ping again);
//   heartbeats  every connection answers the server's pings (short P and I).
// A closed slot is connected again on the next driver tick, so about --conns stay open.
//
// Invariants, checked on every event and on the server's report once a second:
//   * no false close: a connection we did not close and did not mute is never closed (by
//     either side, for any reason), and the server's idle_closes never exceeds the mutes;
//   * every mute is detected: the server resets a muted connection within I + tick + margin
//     of the mute (I + tick is the heartbeat's own bound; the margin is for a loaded machine);
//   * the server keeps talking: no live connection hears nothing from it for longer than that
//     same bound (it pings every P after a pong, so the longest silence is about P + tick);
//   * the server's descriptors are exactly its base set plus its open connections;
//   * after warm-up (a fifth of the run, at most 60 s) the server's RSS grows less than
//     --rss-growth-kib, and connects never fail.
// Both processes also measure their loop's longest stall (the worst lateness of a 10 ms timer),
// printed with the figures, so a failure caused by the machine not running a process for about
// I can be told from one caused by the library.  The clients bear a silent server for
// --client-idle-timeout-ms (5 s), not I: see endpoint_options().
// A line of figures every ~10 s; the last line is "soak: PASS ..." (exit 0) or
// "soak: FAIL <reason>" (exit 1).
#include <dirent.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "../common/system.hpp"
#include "../modes.hpp"
#include "evwheel/listener.hpp"
#include "soak.hpp"

namespace bench {

const char soak_usage[] =
    "evwheel-bench soak [--minutes 1] [--conns 200] [--ping-interval-ms 200]\n"
    "                   [--idle-timeout-ms 600] [--churn-per-s 20] [--resets-per-s 10]\n"
    "                   [--mutes-per-s 2] [--margin-ms 300] [--rss-growth-kib 2048]\n"
    "                   [--client-idle-timeout-ms 5000]\n"
    "    A heartbeat server in a child process, --conns clients here, for --minutes: churn\n"
    "    (FIN closes), resets (SO_LINGER 0), mutes (pause_reading) and heartbeats at once.\n"
    "    Checks as it runs: no false closes, every mute closed by the server within\n"
    "    I + tick + --margin-ms, server descriptors = base + open, server RSS growth after\n"
    "    warm-up below --rss-growth-kib.  Prints figures every ~10 s and ends with\n"
    "    'soak: PASS ...' (exit 0) or 'soak: FAIL <reason>' (exit 1).  The clients only answer\n"
    "    pings; they bear a silent server for --client-idle-timeout-ms.\n";

namespace soak {
namespace {

// Parses the options into *o; nothing when they are good, else the exit status.
std::optional<int> parse_options(int argc, char** argv, Options* o) {
  cli::Parser parser = mode_parser("soak", soak_usage);
  parser.real("--minutes", &o->minutes, 1e-3, 10080);
  parser.integer("--conns", &o->conns, 1L, 10000L);
  parser.integer("--ping-interval-ms", &o->interval_ms, 10L, 3'600'000L);
  parser.integer("--idle-timeout-ms", &o->idle_ms, 20L, 3'600'000L);
  parser.integer("--client-idle-timeout-ms", &o->client_idle_ms, 20L, 3'600'000L);
  parser.integer("--churn-per-s", &o->churn_per_s, 0L, 100000L);
  parser.integer("--resets-per-s", &o->resets_per_s, 0L, 100000L);
  parser.integer("--mutes-per-s", &o->mutes_per_s, 0L, 100000L);
  parser.integer("--margin-ms", &o->margin_ms, 0L, 3'600'000L);
  parser.integer("--rss-growth-kib", &o->rss_growth_kib, 0L, 1L << 30);
  if (std::optional<int> status = parser.parse(argc, argv)) return status;
  if (o->idle_ms <= o->interval_ms) return parser.fail("--idle-timeout-ms must be longer than --ping-interval-ms");
  if (o->client_idle_ms <= o->interval_ms)
    return parser.fail("--client-idle-timeout-ms must be longer than --ping-interval-ms");
  return std::nullopt;
}

// Descriptors this process has open: /proc/self/fd, minus the one listing it.
uint64_t count_fds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return 0;
  uint64_t n = 0;
  while (dirent* entry = ::readdir(dir))
    if (entry->d_name[0] != '.' && std::atoi(entry->d_name) != ::dirfd(dir)) ++n;
  ::closedir(dir);
  return n;
}

ServerReport report(const evwheel::Endpoint& endpoint, const evwheel::Listener& listener, const StallMeter& stalls) {
  ServerReport r;
  r.port = listener.port();
  r.open = endpoint.size();
  r.accepted = listener.stats().accepted;
  const auto& hb = endpoint.heartbeat_stats();
  r.idle_closes = hb.idle_closes;
  r.pings_sent = hb.pings_sent;
  r.pongs_received = hb.pongs_received;
  std::copy(std::begin(endpoint.stats().closes), std::end(endpoint.stats().closes), r.closes);
  r.fds = count_fds();
  r.rss_kib = sys::status_kib("VmRSS");
  r.stall_ms = stalls.max_ms();
  return r;
}

// The server child: a heartbeat server that reports as soon as it listens, then on every 'r'.
int serve(const Options& o, int in, int out) {
  try {
    evwheel::Reactor reactor;
    evwheel::ConnectionHandler quiet;
    evwheel::Endpoint endpoint(reactor, quiet, endpoint_options(evwheel::Side::server, o));
    evwheel::Listener listener(endpoint, evwheel::ListenerOptions{});
    StallMeter stalls(reactor);
    command_pipe::CommandReader commands(reactor, in, [&](char command) {
      if (command == 'r') command_pipe::send(out, report(endpoint, listener, stalls));
    });
    command_pipe::send(out, report(endpoint, listener, stalls));
    reactor.run();
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "soak: server child: %s\n", error.what());
    return 1;
  }
}

}  // namespace
}  // namespace soak

int run_soak(int argc, char** argv) {
  soak::Options o;
  if (std::optional<int> status = soak::parse_options(argc, argv, &o)) return *status;
  print_header();
  sys::raise_nofile();
  soak::ServerProcess server([&o](int in, int out) { return soak::serve(o, in, out); });
  soak::ServerReport first;
  if (!server.started() || !server.next(first, std::chrono::seconds(5))) {
    std::printf("soak: FAIL the server child did not start\n");
    return 1;
  }
  std::printf("soak: %.1f min, %ld connections, P %ld ms, I %ld ms (clients bear %ld ms); per second %ld churned, "
              "%ld reset, %ld muted\n",
              o.minutes, o.conns, o.interval_ms, o.idle_ms, o.client_idle_ms, o.churn_per_s, o.resets_per_s,
              o.mutes_per_s);
  std::fflush(stdout);
  soak::Soak soak(o, server);
  soak.run(first);
  const int child_status = server.finish();
  if (child_status != 0) soak.fail("the server child exited with status " + std::to_string(child_status));
  return soak.verdict();
}

}  // namespace bench
