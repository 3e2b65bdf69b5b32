// conns — the evwheel server worker: one Reactor, one Endpoint, one SO_REUSEPORT Listener,
// exactly as a service would embed them.  The bench only adds a 20 ms poll of the phase.
#include <algorithm>
#include <iterator>
#include <memory>

#include "conns.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "system.hpp"

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
  if (options.seed)
    endpoint.codec = std::make_shared<evwheel::SeedCodec>();
  else
    endpoint.codec = std::make_shared<evwheel::FramedCodec>();
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

}  // namespace

int run_wheel_worker(const Options& options, const Role& role) {
  WorkerSlot& slot = role.shared->workers[role.index];
  try {
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
    set_error(slot.error, std::string("server worker: ") + e.what());
    slot.ready.store(-1, std::memory_order_release);
    return 1;
  }
}

}  // namespace conns
}  // namespace bench
