// conns — the evwheel server worker (the `wheel` server): one Reactor, one Endpoint, one SO_REUSEPORT Listener,
// exactly as a service would embed them.  The bench only adds a 20 ms poll of the phase.
#include <algorithm>
#include <iterator>
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "protocol.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/reactor_pool.hpp"
#include "../common/system.hpp"

namespace bench {
namespace conns {
namespace {

class ServerHandler final : public evwheel::ConnectionHandler {
 public:
  explicit ServerHandler(evwheel::Reactor& reactor) : reactor_(reactor) {}

  void on_close(evwheel::Connection& connection, evwheel::CloseReason reason, int) override {
    if (reason != evwheel::CloseReason::idle_timeout) {
      ++other_closes;
      return;
    }
    ++idle_closes;
    detection.record(reactor_.now() - connection.last_receive());
  }

  uint64_t idle_closes = 0;
  uint64_t other_closes = 0;
  evwheel::Histogram detection;

 private:
  evwheel::Reactor& reactor_;
};

evwheel::EndpointOptions endpoint_options(const Options& options) {
  evwheel::EndpointOptions endpoint;
  endpoint.side = evwheel::Side::server;
  endpoint.codec = make_codec(options.codec, endpoint.side);
  endpoint.heartbeat.ping_interval = std::chrono::milliseconds(options.ping_ms);
  endpoint.heartbeat.idle_timeout = std::chrono::milliseconds(options.idle_ms);
  endpoint.heartbeat.tick = std::chrono::milliseconds(options.tick_ms);
  return endpoint;
}

void publish(Sample& sample, const evwheel::Endpoint& endpoint, const evwheel::Listener& listener,
             const ServerHandler& handler) {
  const evwheel::HeartbeatStats& heartbeat = endpoint.heartbeat_stats();
  sample.open = endpoint.size();
  sample.accepted = listener.stats().accepted;
  sample.pings_sent = heartbeat.pings_sent;
  sample.pongs_received = heartbeat.pongs_received;
  sample.idle_closes = handler.idle_closes;
  sample.other_closes = handler.other_closes;
  std::copy(std::begin(endpoint.stats().closes), std::end(endpoint.stats().closes), sample.closes_by_reason);
  sample.rss_kib = sys::status_kib("RssAnon");
  sample.rtt = heartbeat.rtt;
  sample.lateness = heartbeat.ping_lateness;
  sample.detection = handler.detection;
  sample.valid = true;
}

// One reactor's service; with --reactors R a worker runs R of them in a ReactorPool, each
// publishing its own sample for the worker's main thread to merge.
struct Service {
  Service(evwheel::Reactor& reactor, const Options& options, const Role& role)
      : handler(reactor),
        endpoint(reactor, handler, endpoint_options(options)),
        listener(endpoint, listen_options(role)) {}

  static evwheel::ListenerOptions listen_options(const Role& role) {
    evwheel::ListenerOptions listen;
    listen.address = "127.0.0.1:" + std::to_string(role.port);
    listen.reuse_port = true;
    return listen;
  }

  ServerHandler handler;
  evwheel::Endpoint endpoint;
  evwheel::Listener listener;
  Sample latest;                      // written on its thread for phase `published`
  std::atomic<int> published{kSetup};
  std::atomic<uint64_t> open{0};
};

void merge(Sample& into, const Sample& from) {
  into.open += from.open;
  into.accepted += from.accepted;
  into.pings_sent += from.pings_sent;
  into.pongs_received += from.pongs_received;
  into.idle_closes += from.idle_closes;
  into.other_closes += from.other_closes;
  for (int r = 0; r < 8; ++r) into.closes_by_reason[r] += from.closes_by_reason[r];
  into.rtt.merge(from.rtt);
  into.lateness.merge(from.lateness);
  into.detection.merge(from.detection);
  into.valid = true;
}

// R reactors on the server CPUs (the server CPU and the allowed ones after it), one process.
int run_pool_worker(const Options& options, const Role& role, WorkerSlot& slot) {
  std::vector<std::shared_ptr<Service>> services(static_cast<std::size_t>(options.reactors));
  evwheel::ReactorPoolOptions pool_options;
  pool_options.reactors = services.size();
  pool_options.pin = true;
  for (int r = 0; r < options.reactors; ++r) pool_options.cpus.push_back(sys::nth_allowed_cpu(options.server_cpu + r));
  const Shared& shared = *role.shared;
  evwheel::ReactorPool pool(pool_options, [&](evwheel::Reactor& reactor, evwheel::Shutdown&, std::size_t index) {
    auto service = std::make_shared<Service>(reactor, options, role);
    Service& s = *service;
    publish(s.latest, s.endpoint, s.listener, s.handler);
    reactor.run_every(kPollInterval, [&s, &reactor, &shared] {
      s.open.store(s.endpoint.size(), std::memory_order_relaxed);
      int phase = shared.phase.load(std::memory_order_acquire);
      if (phase <= s.published.load(std::memory_order_relaxed)) return;
      publish(s.latest, s.endpoint, s.listener, s.handler);
      s.published.store(phase, std::memory_order_release);
      if (phase == kTeardown) {
        s.endpoint.close_all();
        reactor.stop();
      }
    });
    services[index] = service;
    return service;
  });
  Sample setup;
  for (const auto& s : services) merge(setup, s->latest);
  setup.rss_kib = sys::status_kib("RssAnon");
  slot.at[kSetup] = setup;
  slot.ready.store(1, std::memory_order_release);
  // The main thread only gathers: when every reactor has published a phase, their sum is the
  // worker's sample for it.
  for (int phase = kSetup + 1; phase < kPhases; ++phase) {
    for (;;) {
      uint64_t open = 0;
      bool all = true;
      for (const auto& s : services) {
        open += s->open.load(std::memory_order_relaxed);
        all &= s->published.load(std::memory_order_acquire) >= phase;
      }
      slot.open.store(open, std::memory_order_relaxed);
      if (all) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    Sample sum;
    for (const auto& s : services) merge(sum, s->latest);
    sum.rss_kib = sys::status_kib("RssAnon");
    slot.at[phase] = sum;
    slot.ack.store(phase, std::memory_order_release);
  }
  pool.join();
  return 0;
}

}  // namespace

int run_wheel_worker(const Options& options, const Role& role) {
  WorkerSlot& slot = role.shared->workers[role.index];
  try {
    if (options.reactors > 1) return run_pool_worker(options, role, slot);
    evwheel::Reactor reactor;
    ServerHandler handler(reactor);
    evwheel::Endpoint endpoint(reactor, handler, endpoint_options(options));
    evwheel::ListenerOptions listen;
    listen.address = "127.0.0.1:" + std::to_string(role.port);
    listen.reuse_port = true;
    evwheel::Listener listener(endpoint, listen);
    std::string error;
    if (role.index == 0 && role.workers > 1 && !attach_steering(listener.fd(), role.workers, &error))
      throw std::runtime_error(error);

    publish(slot.at[kSetup], endpoint, listener, handler);
    slot.ready.store(1, std::memory_order_release);
    PhaseFollower follower;
    reactor.run_every(kPollInterval, [&] {
      slot.open.store(endpoint.size(), std::memory_order_relaxed);
      follower.poll(*role.shared, slot.ack, [&](int phase) {
        publish(slot.at[phase], endpoint, listener, handler);
        if (phase == kTeardown) {
          endpoint.close_all();
          reactor.stop();
        }
      });
    });
    reactor.run();
    return 0;
  } catch (const std::exception& e) {
    return failed(slot, std::string("server worker: ") + e.what());
  }
}

}  // namespace conns
}  // namespace bench
