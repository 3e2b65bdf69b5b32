// minimal_server — the server of docs/api.md, verbatim (a test checks it): an echo service on
// 127.0.0.1:7001 that pings each peer every 5 s and drops one silent for 15 s, reports
// evwheel's warnings and errors on stderr, prints its counters once a minute, and on SIGTERM
// or SIGINT closes its connections and exits 0.
#include <cstdio>
#include <string_view>

#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/log.hpp"
#include "evwheel/metrics.hpp"
#include "evwheel/reactor.hpp"
#include "evwheel/signals.hpp"

class Echo final : public evwheel::ConnectionHandler {
 public:
  void on_open(evwheel::Connection& connection) override {
    std::printf("fd %d open\n", connection.fd());
  }
  void on_message(evwheel::Connection& connection, std::string_view message) override {
    connection.send(message);  // one data frame back for each one in
  }
  void on_close(evwheel::Connection& connection, evwheel::CloseReason reason, int) override {
    std::printf("fd %d closed: %s\n", connection.fd(), evwheel::to_string(reason));
  }
};

void log_to_stderr(evwheel::LogLevel level, std::string_view message) {
  std::fprintf(stderr, "[%s] %.*s\n", evwheel::to_string(level), static_cast<int>(message.size()),
               message.data());
}

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each line as it is printed, even into a file
  evwheel::set_log_sink(log_to_stderr, evwheel::LogLevel::warning);
  evwheel::Reactor reactor;
  Echo echo;
  evwheel::EndpointOptions options;  // server side, framed codec
  options.heartbeat.ping_interval = std::chrono::seconds(5);
  options.heartbeat.idle_timeout = std::chrono::seconds(15);
  evwheel::Endpoint endpoint(reactor, echo, options);

  evwheel::ListenerOptions listen;
  listen.address = "127.0.0.1:7001";
  listen.max_connections = 10000;  // beyond it, new connections are reset at once
  evwheel::Listener listener(endpoint, listen);

  reactor.run_every(std::chrono::minutes(1), [&] {
    std::fputs(evwheel::to_prometheus(evwheel::snapshot(endpoint, &listener)).c_str(), stdout);
  });
  evwheel::Signals signals(reactor, [&](int) { reactor.stop(); });  // SIGTERM, SIGINT
  reactor.run();
}  // the endpoint closes what is still open (on_close: shutdown)
