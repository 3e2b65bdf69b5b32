// minimal_client — the client of docs/api.md, verbatim (a test checks it): connects to
// minimal_server (retrying with backoff until it is up), sends a message each second, prints
// each echo, and exits after five (or on SIGTERM or SIGINT).  It answers the server's pings
// by itself.
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "evwheel/connector.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/reactor.hpp"
#include "evwheel/signals.hpp"

class Client final : public evwheel::ConnectionHandler {
 public:
  explicit Client(evwheel::Reactor& reactor) : reactor_(reactor) {}
  void on_message(evwheel::Connection&, std::string_view message) override {
    std::printf("echo: %.*s\n", static_cast<int>(message.size()), message.data());
    if (++echoes_ == 5) reactor_.stop();
  }
  void on_close(evwheel::Connection&, evwheel::CloseReason reason, int) override {
    std::printf("closed: %s\n", evwheel::to_string(reason));  // the connector reconnects
  }
  void on_connect_error(evwheel::Connector&, int error) override {
    std::printf("connect failed: %s\n", std::strerror(error));  // and it retries
  }

 private:
  evwheel::Reactor& reactor_;
  int echoes_ = 0;
};

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each line as it is printed, even into a file
  evwheel::Reactor reactor;
  Client client(reactor);
  evwheel::EndpointOptions options;
  options.side = evwheel::Side::client;
  // The server's heartbeat: it pings every 5 s; we give up on a server silent for 15 s.
  options.heartbeat.ping_interval = std::chrono::seconds(5);
  options.heartbeat.idle_timeout = std::chrono::seconds(15);
  evwheel::Endpoint endpoint(reactor, client, options);

  evwheel::ConnectorOptions connect;
  connect.address = "127.0.0.1:7001";
  connect.reconnect = true;
  evwheel::Connector connector(endpoint, connect);
  connector.start();

  int sent = 0;
  reactor.run_every(std::chrono::seconds(1), [&] {
    if (evwheel::Connection* connection = connector.connection())
      connection->send("message " + std::to_string(++sent));
  });
  evwheel::Signals signals(reactor, [&](int) { reactor.stop(); });  // SIGTERM, SIGINT
  reactor.run();
}
