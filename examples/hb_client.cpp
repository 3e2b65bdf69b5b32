// hb_client — opens N connections to a heartbeat server and answers its pings; --mute K makes
// K of them stop reading (they stay open but never answer), to watch the server close them.
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <vector>

#include "evwheel/codec.hpp"
#include "evwheel/connector.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/reactor.hpp"
#include "evwheel/signals.hpp"
#include "flags.hpp"

namespace {

const char kUsage[] =
    "usage: hb_client --connect HOST:PORT [--codec seed|framed] [--conns N] [--mute K]\n"
    "                 [--mode server|client|both] [--ping-interval-ms P] [--idle-timeout-ms I]\n"
    "                 [--tick-ms T] [--source IP]\n"
    "Opens N connections and answers pings (--mode client|both: pings too).  The first K\n"
    "connections are muted: they stop reading and never answer.  Prints counters to stderr\n"
    "once a second; SIGINT/SIGTERM exit 0.\n";

class Client final : public evwheel::ConnectionHandler {
 public:
  explicit Client(long mute) : mute_(mute) {}
  void on_open(evwheel::Connection& connection) override {
    ++opened_;
    if (muted_ < mute_) {
      ++muted_;
      connection.pause_reading();
    }
  }
  void on_close(evwheel::Connection&, evwheel::CloseReason reason, int) override {
    ++closed_[static_cast<int>(reason)];
  }
  void on_connect_error(evwheel::Connector&, int) override { ++failed_; }
  void print(const evwheel::Endpoint& endpoint) const {
    std::fprintf(stderr, "open %zu  opened %ld  muted %ld  failed %ld  pongs-sent %llu  closed: peer %ld reset %ld idle %ld\n",
                 endpoint.size(), opened_, muted_, failed_,
                 static_cast<unsigned long long>(endpoint.heartbeat_stats().pings_answered),
                 closed_[static_cast<int>(evwheel::CloseReason::peer_closed)],
                 closed_[static_cast<int>(evwheel::CloseReason::reset)],
                 closed_[static_cast<int>(evwheel::CloseReason::idle_timeout)]);
  }

 private:
  long mute_;
  long muted_ = 0;
  long opened_ = 0;
  long failed_ = 0;
  long closed_[8] = {};
};

}  // namespace

int main(int argc, char** argv) {
  examples::Flags flags("hb_client", kUsage);
  std::string connect, codec = "framed", mode = "server", source;
  long conns = 1, mute = 0, interval = 15000, idle = 30000, tick = 0;
  flags.text("--connect", &connect);
  flags.choice("--codec", &codec, {"seed", "framed"});
  flags.number("--conns", &conns, 1, 10'000'000);
  flags.number("--mute", &mute, 0, 10'000'000);
  flags.choice("--mode", &mode, {"server", "client", "both"});
  flags.number("--ping-interval-ms", &interval, 1, 86'400'000);
  flags.number("--idle-timeout-ms", &idle, 1, 86'400'000);
  flags.number("--tick-ms", &tick, 0, 86'400'000);
  flags.text("--source", &source);
  flags.parse(argc, argv);
  if (connect.empty()) flags.fail("--connect HOST:PORT is required");
  if (mute > conns) flags.fail("--mute must not exceed --conns");

  evwheel::EndpointOptions options;
  options.side = evwheel::Side::client;
  if (codec == "seed") options.codec = std::make_shared<evwheel::SeedCodec>();
  options.heartbeat.mode = mode == "server" ? evwheel::PingMode::server
                           : mode == "client" ? evwheel::PingMode::client
                                              : evwheel::PingMode::both;
  options.heartbeat.ping_interval = std::chrono::milliseconds(interval);
  options.heartbeat.idle_timeout = std::chrono::milliseconds(idle);
  options.heartbeat.tick = std::chrono::milliseconds(tick);
  try {
    options.validate();
    evwheel::Reactor reactor;
    Client client(mute);
    evwheel::Endpoint endpoint(reactor, client, options);
    std::vector<std::unique_ptr<evwheel::Connector>> connectors;
    for (long i = 0; i < conns; ++i) {
      evwheel::ConnectorOptions connector_options;
      connector_options.address = connect;
      connector_options.source = source;
      connectors.push_back(std::make_unique<evwheel::Connector>(endpoint, connector_options));
      connectors.back()->start();
    }
    evwheel::Signals signals(reactor, [&](int) { reactor.stop(); });
    reactor.run_every(std::chrono::seconds(1), [&] { client.print(endpoint); });
    reactor.run();
    client.print(endpoint);
  } catch (const std::invalid_argument& error) {
    flags.fail(error.what());
  } catch (const std::exception& error) {
    std::fprintf(stderr, "hb_client: %s\n", error.what());
    return 1;
  }
  return 0;
}
