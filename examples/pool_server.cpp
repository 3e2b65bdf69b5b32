// pool_server — hb_server's heartbeat service on several cores: --reactors R threads in one
// process (a ReactorPool), or --prefork W processes (each with its own descriptor limit).
// Every reactor has its own Endpoint and its own SO_REUSEPORT Listener on the one port, so the
// kernel spreads connections over them and nothing is shared between reactors.
//
// Signals: with a pool, main() blocks them before the pool's threads exist and reads them on
// a reactor of its own; with prefork, the parent forwards them and each worker reads its own.
// SIGTERM/SIGINT: stop accepting, drain queued output for up to --drain-ms, exit 0.
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "cli.hpp"
#include "evwheel/codec.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/prefork.hpp"
#include "evwheel/reactor.hpp"
#include "evwheel/reactor_pool.hpp"
#include "evwheel/shutdown.hpp"
#include "evwheel/signals.hpp"

namespace {

const char kUsage[] =
    "usage: pool_server --listen HOST:PORT [--reactors R | --prefork W] [--pin 0|1]\n"
    "                   [--codec seed|framed] [--ping-interval-ms P] [--idle-timeout-ms I]\n"
    "                   [--tick-ms T] [--drain-ms D]\n"
    "Serves heartbeats like hb_server on R reactor threads (default 1) or W worker processes,\n"
    "all sharing the port through SO_REUSEPORT; --pin 1 pins thread/worker i to the i-th CPU.\n"
    "Each reactor prints its counters to stderr once a second.  SIGINT/SIGTERM stop accepting,\n"
    "drain queued output for up to D ms (default 5000) and exit 0.  --prefork needs a fixed port\n"
    "(each worker binds it itself); with port 0, reactor 0 picks one and the others join it.\n";

struct Config {
  evwheel::EndpointOptions endpoint;
  evwheel::ListenerOptions listener;
  evwheel::Duration drain{};
};

class Quiet final : public evwheel::ConnectionHandler {};

// The address text is passed to the library unchanged (it knows every form an address takes);
// only a port of 0, which each socket would resolve to a port of its own, is looked at.
bool any_port(const std::string& address) {
  return address.size() >= 2 && address.compare(address.size() - 2, 2, ":0") == 0;
}

// One reactor's share of the service, registered for graceful shutdown.
class Service {
 public:
  Service(evwheel::Reactor& reactor, evwheel::Shutdown& shutdown, const Config& config, std::size_t index)
      : reactor_(reactor), endpoint_(reactor, handler_, config.endpoint), listener_(endpoint_, config.listener) {
    shutdown.add(listener_);
    shutdown.add(endpoint_);
    stats_timer_ = reactor.run_every(std::chrono::seconds(1), [this, index] { print(index); });
  }
  ~Service() { reactor_.cancel(stats_timer_); }
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  uint16_t port() const noexcept { return listener_.port(); }

  void print(std::size_t index) const {
    const auto& hb = endpoint_.heartbeat_stats();
    std::fprintf(stderr, "reactor %zu: open %zu  pings %llu  pongs %llu  idle-closes %llu\n", index,
                 endpoint_.size(), static_cast<unsigned long long>(hb.pings_sent),
                 static_cast<unsigned long long>(hb.pongs_received),
                 static_cast<unsigned long long>(hb.idle_closes));
  }

 private:
  evwheel::Reactor& reactor_;
  Quiet handler_;
  evwheel::Endpoint endpoint_;
  evwheel::Listener listener_;
  evwheel::TimerId stats_timer_ = 0;
};

// A pool of reactor threads; signals are read on main()'s own reactor.
int run_pool(Config config, std::size_t reactors, bool pin) {
  evwheel::block_signals();  // before the pool's threads exist (they also block everything)
  evwheel::ReactorPoolOptions options;
  options.reactors = reactors;
  options.pin = pin;
  // Reactor 0 may pick the port (":0"); the later setups, run after it, listen on the same one.
  evwheel::ReactorPool pool(options, [&](evwheel::Reactor& reactor, evwheel::Shutdown& shutdown, std::size_t index) {
    auto service = std::make_shared<Service>(reactor, shutdown, config, index);
    if (index == 0 && any_port(config.listener.address))
      config.listener.address.replace(config.listener.address.size() - 1, 1, std::to_string(service->port()));
    return service;
  });
  std::fprintf(stderr, "pool_server: %zu reactor thread(s) on %s\n", reactors, config.listener.address.c_str());
  evwheel::Reactor main_reactor;
  evwheel::Signals signals(main_reactor, [&](int) {
    pool.shutdown(config.drain);
    main_reactor.stop();
  });
  main_reactor.run();
  pool.join();
  return 0;
}

// Worker processes, each one reactor; the parent supervises.
int run_prefork(const Config& config, std::size_t workers, bool pin) {
  evwheel::PreforkOptions options;
  options.workers = workers;
  options.pin = pin;
  evwheel::Prefork prefork(options, [&](std::size_t index) {
    evwheel::Reactor reactor;
    evwheel::Shutdown shutdown(reactor);
    Service service(reactor, shutdown, config, index);
    evwheel::Signals signals(reactor, [&](int) { shutdown.start(config.drain, [&] { reactor.stop(); }); });
    reactor.run();
    return 0;
  });
  std::fprintf(stderr, "pool_server: %zu worker process(es) on %s\n", workers, config.listener.address.c_str());
  int failed = 0;
  for (const evwheel::WorkerExit& exit : prefork.wait()) {
    if (exit.clean()) continue;
    ++failed;
    std::fprintf(stderr, "pool_server: worker %zu (pid %d) ended with wait status %d\n", exit.index,
                 static_cast<int>(exit.pid), exit.status);
  }
  return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  cli::Parser flags("pool_server", kUsage);
  std::string listen, codec = "framed", pin = "0";
  std::chrono::milliseconds interval(15000), idle(30000), tick(0), drain(5000);
  long reactors = 1, prefork = 0;
  flags.text("--listen", &listen);
  flags.integer("--reactors", &reactors, 1L, 1024L);
  flags.integer("--prefork", &prefork, 0L, 1024L);
  flags.choice("--pin", &pin, {"0", "1"});
  flags.choice("--codec", &codec, {"seed", "framed"});
  flags.duration_ms("--ping-interval-ms", &interval, 1, 86'400'000);
  flags.duration_ms("--idle-timeout-ms", &idle, 1, 86'400'000);
  flags.duration_ms("--tick-ms", &tick, 0, 86'400'000);
  flags.duration_ms("--drain-ms", &drain, 0, 86'400'000);
  if (std::optional<int> status = flags.parse(argc, argv)) return *status;
  if (listen.empty()) return flags.fail("--listen HOST:PORT is required");
  if (prefork && reactors != 1) return flags.fail("--reactors and --prefork do not mix: choose one");
  if (prefork && any_port(listen)) return flags.fail("--prefork needs a fixed port: each worker binds it on its own");

  Config config;
  config.endpoint.side = evwheel::Side::server;
  if (codec == "seed") config.endpoint.codec = std::make_shared<evwheel::SeedCodec>();
  config.endpoint.heartbeat.ping_interval = interval;
  config.endpoint.heartbeat.idle_timeout = idle;
  config.endpoint.heartbeat.tick = tick;
  config.listener.address = listen;
  config.listener.reuse_port = true;
  config.drain = drain;
  try {
    config.endpoint.validate();
    return prefork ? run_prefork(config, static_cast<std::size_t>(prefork), pin == "1")
                   : run_pool(config, static_cast<std::size_t>(reactors), pin == "1");
  } catch (const std::invalid_argument& error) {
    return flags.fail(cli::without_library_prefix(error.what()));
  } catch (const std::exception& error) {
    flags.fail(cli::without_library_prefix(error.what()));
    return 1;
  }
}
