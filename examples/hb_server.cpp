// hb_server — a heartbeat server: pings every connection, closes the silent ones, and prints
// its counters once a second.  The way to embed evwheel in a Linux service, in one file:
// a Reactor, an Endpoint with a handler, a Listener, and a graceful shutdown on SIGTERM.
// (pool_server.cpp runs the same service on several cores.)
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "cli.hpp"
#include "evwheel/codec.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/metrics.hpp"
#include "evwheel/metrics_http.hpp"
#include "evwheel/reactor.hpp"
#include "evwheel/shutdown.hpp"
#include "evwheel/signals.hpp"
#include "evwheel/websocket.hpp"

namespace {

const char kUsage[] =
    "usage: hb_server --listen HOST:PORT [--codec seed|framed|websocket] [--ping-interval-ms P]\n"
    "                 [--idle-timeout-ms I] [--tick-ms T] [--max-conns N] [--reuse-port 0|1]\n"
    "                 [--metrics-port M]\n"
    "Pings every connection each P ms and closes a peer silent for I ms (defaults: the\n"
    "seed's 15000 and 30000, codec framed; websocket takes an upgrade to any path).  Prints\n"
    "counters to stderr once a second; with --metrics-port, serves them to Prometheus at\n"
    "http://127.0.0.1:M/metrics (0: a free port, printed).  SIGINT/SIGTERM stop accepting,\n"
    "give queued output up to 5 s to drain, close every connection and exit 0.\n";

class Quiet final : public evwheel::ConnectionHandler {};

void print_stats(const evwheel::Endpoint& endpoint) {
  const auto& hb = endpoint.heartbeat_stats();
  std::fprintf(stderr, "open %zu  pings %llu  pongs %llu  idle-closes %llu  rtt p50 %lld us p99 %lld us\n",
               endpoint.size(), static_cast<unsigned long long>(hb.pings_sent),
               static_cast<unsigned long long>(hb.pongs_received),
               static_cast<unsigned long long>(hb.idle_closes),
               static_cast<long long>(hb.rtt.percentile(0.5).count() / 1000),
               static_cast<long long>(hb.rtt.percentile(0.99).count() / 1000));
}

}  // namespace

int main(int argc, char** argv) {
  cli::Parser flags("hb_server", kUsage);
  std::string listen, codec = "framed", reuse = "0";
  std::chrono::milliseconds interval(15000), idle(30000), tick(0);
  long max_conns = 0, metrics_port = -1;
  flags.text("--listen", &listen);
  flags.choice("--codec", &codec, {"seed", "framed", "websocket"});
  flags.duration_ms("--ping-interval-ms", &interval, 1, 86'400'000);
  flags.duration_ms("--idle-timeout-ms", &idle, 1, 86'400'000);
  flags.duration_ms("--tick-ms", &tick, 0, 86'400'000);
  flags.integer("--max-conns", &max_conns, 0L, 100'000'000L);
  flags.choice("--reuse-port", &reuse, {"0", "1"});
  flags.integer("--metrics-port", &metrics_port, 0L, 65535L);
  if (std::optional<int> status = flags.parse(argc, argv)) return *status;
  if (listen.empty()) return flags.fail("--listen HOST:PORT is required");

  evwheel::EndpointOptions options;
  options.side = evwheel::Side::server;
  if (codec == "seed") options.codec = std::make_shared<evwheel::SeedCodec>();
  if (codec == "websocket") options.codec = std::make_shared<evwheel::WebSocketCodec>();
  options.heartbeat.ping_interval = interval;
  options.heartbeat.idle_timeout = idle;
  options.heartbeat.tick = tick;
  evwheel::ListenerOptions listener_options;
  listener_options.address = listen;
  listener_options.max_connections = static_cast<std::size_t>(max_conns);
  listener_options.reuse_port = reuse == "1";
  try {
    options.validate();
    evwheel::Reactor reactor;
    Quiet handler;
    evwheel::Endpoint endpoint(reactor, handler, options);
    evwheel::Listener listener(endpoint, listener_options);
    evwheel::Shutdown shutdown(reactor);
    shutdown.add(listener);
    shutdown.add(endpoint);
    evwheel::Signals signals(reactor, [&](int) {
      shutdown.start(std::chrono::seconds(5), [&] { reactor.stop(); });
    });
    std::fprintf(stderr, "hb_server: listening on port %u (codec %s)\n", listener.port(), codec.c_str());
    std::unique_ptr<evwheel::MetricsHttp> metrics;
    if (metrics_port >= 0) {
      metrics = std::make_unique<evwheel::MetricsHttp>(reactor, [&] {
        return evwheel::to_prometheus(evwheel::snapshot(endpoint, &listener));
      }, evwheel::MetricsHttpOptions{"127.0.0.1:" + std::to_string(metrics_port)});
      std::fprintf(stderr, "hb_server: metrics on http://127.0.0.1:%u/metrics\n", metrics->port());
    }
    reactor.run_every(std::chrono::seconds(1), [&] { print_stats(endpoint); });
    reactor.run();
    print_stats(endpoint);
  } catch (const std::invalid_argument& error) {
    return flags.fail(cli::without_library_prefix(error.what()));
  } catch (const std::exception& error) {
    flags.fail(cli::without_library_prefix(error.what()));
    return 1;
  }
  return 0;
}
