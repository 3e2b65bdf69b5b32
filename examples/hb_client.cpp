// hb_client — opens N connections to a heartbeat server and answers its pings; --mute K makes
// K of them stop reading (they stay open but never answer), to watch the server close them.
// A connection that fails or is closed is tried again with the Connector's backoff; each kind
// of connect failure is printed once (the counters show how often), and --connect-attempts
// gives up a connection after that many failures in a row.
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "cli.hpp"
#include "evwheel/codec.hpp"
#include "evwheel/connector.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/reactor.hpp"
#include "evwheel/signals.hpp"
#include "evwheel/websocket.hpp"

namespace {

const char kUsage[] =
    "usage: hb_client --connect HOST:PORT [--codec seed|framed|websocket] [--conns N] [--mute K]\n"
    "                 [--mode server|client|both] [--ping-interval-ms P] [--idle-timeout-ms I]\n"
    "                 [--tick-ms T] [--source IP] [--connect-attempts A]\n"
    "Opens N connections and answers pings (--mode client|both: pings too); websocket\n"
    "connections open with the handshake for path /, as a WebSocket client.  The first K\n"
    "connections to open are muted: they stop reading and never answer.  A failed or closed\n"
    "connection is tried again with backoff; each kind of connect error is printed once.\n"
    "With --connect-attempts A, a connection that fails A attempts in a row is given up, and\n"
    "when every one is, hb_client exits 1.  Prints counters to stderr once a second;\n"
    "SIGINT/SIGTERM exit 0.\n";

class Client final : public evwheel::ConnectionHandler {
 public:
  Client(evwheel::Reactor& reactor, std::string address, long mute, long attempts, long conns)
      : reactor_(reactor), address_(std::move(address)), mute_(mute), attempts_(attempts), conns_(conns) {}

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
  void on_connect_error(evwheel::Connector& connector, int error) override {
    ++failed_;
    if (reported_.insert(error).second)
      std::fprintf(stderr, "hb_client: connect to %s failed: %s (trying again with backoff)\n", address_.c_str(),
                   std::strerror(error));
    if (attempts_ > 0 && failed_in_a_row(connector) >= attempts_) give_up(connector, error);
  }

  void print(const evwheel::Endpoint& endpoint) const {
    std::fprintf(stderr, "open %zu  opened %ld  muted %ld  failed %ld  given-up %ld  pongs-sent %llu  closed: peer %ld reset %ld idle %ld\n",
                 endpoint.size(), opened_, muted_, failed_, given_up_,
                 static_cast<unsigned long long>(endpoint.heartbeat_stats().pings_answered),
                 closed_[static_cast<int>(evwheel::CloseReason::peer_closed)],
                 closed_[static_cast<int>(evwheel::CloseReason::reset)],
                 closed_[static_cast<int>(evwheel::CloseReason::idle_timeout)]);
  }
  int exit_status() const { return given_up_ == conns_ ? 1 : 0; }

 private:
  // Every attempt either fails (and lands here) or connects: a failure whose attempt does not
  // follow the connector's previous failed one had a connection in between.
  long failed_in_a_row(const evwheel::Connector& connector) {
    Failures& failures = failures_[&connector];
    failures.in_a_row = connector.attempts() == failures.last_attempt + 1 ? failures.in_a_row + 1 : 1;
    failures.last_attempt = connector.attempts();
    return failures.in_a_row;
  }
  void give_up(evwheel::Connector& connector, int error) {
    connector.stop();
    if (++given_up_ < conns_) return;
    std::fprintf(stderr, "hb_client: giving up: every connection failed %ld attempts in a row (last: %s)\n",
                 attempts_, std::strerror(error));
    reactor_.stop();
  }

  struct Failures {
    uint64_t last_attempt = 0;
    long in_a_row = 0;
  };
  evwheel::Reactor& reactor_;
  std::string address_;
  long mute_, attempts_, conns_;
  long muted_ = 0;
  long opened_ = 0;
  long failed_ = 0;
  long given_up_ = 0;
  long closed_[8] = {};
  std::set<int> reported_;  // the errors printed so far
  std::unordered_map<const evwheel::Connector*, Failures> failures_;
};

evwheel::WebSocketOptions websocket_client() {
  evwheel::WebSocketOptions options;
  options.role = evwheel::WebSocketRole::client;
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  cli::Parser flags("hb_client", kUsage);
  std::string connect, codec = "framed", mode = "server", source;
  std::chrono::milliseconds interval(15000), idle(30000), tick(0);
  long conns = 1, mute = 0, attempts = 0;
  flags.text("--connect", &connect);
  flags.choice("--codec", &codec, {"seed", "framed", "websocket"});
  flags.integer("--conns", &conns, 1L, 10'000'000L);
  flags.integer("--mute", &mute, 0L, 10'000'000L);
  flags.choice("--mode", &mode, {"server", "client", "both"});
  flags.duration_ms("--ping-interval-ms", &interval, 1, 86'400'000);
  flags.duration_ms("--idle-timeout-ms", &idle, 1, 86'400'000);
  flags.duration_ms("--tick-ms", &tick, 0, 86'400'000);
  flags.text("--source", &source);
  flags.integer("--connect-attempts", &attempts, 1L, 1'000'000'000L);
  if (std::optional<int> status = flags.parse(argc, argv)) return *status;
  if (connect.empty()) return flags.fail("--connect HOST:PORT is required");
  if (mute > conns) return flags.fail("--mute must not exceed --conns");

  evwheel::EndpointOptions options;
  options.side = evwheel::Side::client;
  if (codec == "seed") options.codec = std::make_shared<evwheel::SeedCodec>();
  if (codec == "websocket") options.codec = std::make_shared<evwheel::WebSocketCodec>(websocket_client());
  options.heartbeat.mode = mode == "server" ? evwheel::PingMode::server
                           : mode == "client" ? evwheel::PingMode::client
                                              : evwheel::PingMode::both;
  options.heartbeat.ping_interval = interval;
  options.heartbeat.idle_timeout = idle;
  options.heartbeat.tick = tick;
  try {
    options.validate();
    evwheel::Reactor reactor;
    Client client(reactor, connect, mute, attempts, conns);
    evwheel::Endpoint endpoint(reactor, client, options);
    std::vector<std::unique_ptr<evwheel::Connector>> connectors;
    for (long i = 0; i < conns; ++i) {
      evwheel::ConnectorOptions connector_options;
      connector_options.address = connect;
      connector_options.source = source;
      connector_options.reconnect = true;
      connectors.push_back(std::make_unique<evwheel::Connector>(endpoint, connector_options));
      connectors.back()->start();
    }
    evwheel::Signals signals(reactor, [&](int) { reactor.stop(); });
    reactor.run_every(std::chrono::seconds(1), [&] { client.print(endpoint); });
    reactor.run();
    client.print(endpoint);
    return client.exit_status();
  } catch (const std::invalid_argument& error) {
    return flags.fail(cli::without_library_prefix(error.what()));
  } catch (const std::exception& error) {
    flags.fail(cli::without_library_prefix(error.what()));
    return 1;
  }
}
