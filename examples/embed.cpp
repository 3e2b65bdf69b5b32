// embed — the smallest evwheel service: an echo server whose peers are pinged every 15 s and
// dropped after 30 s of silence; SIGTERM or Ctrl-C ends it cleanly.  The README shows this file
// verbatim (a test checks it).
#include <cstdio>

#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/signals.hpp"

class Echo : public evwheel::ConnectionHandler {
  void on_message(evwheel::Connection& connection, std::string_view message) override {
    connection.send(message);  // framed: one data frame back for each one in
  }
  void on_close(evwheel::Connection& connection, evwheel::CloseReason reason, int) override {
    std::printf("%s closed: %s\n", evwheel::to_string(connection.id()).c_str(), evwheel::to_string(reason));
  }
};

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each line as it happens, even into a file
  evwheel::Reactor reactor;
  Echo echo;
  evwheel::EndpointOptions options;  // framed codec; heartbeat: ping 15 s, idle timeout 30 s
  evwheel::Endpoint endpoint(reactor, echo, options);
  evwheel::Listener listener(endpoint, {"127.0.0.1:7000"});
  evwheel::Signals signals(reactor, [&](int) { reactor.stop(); });
  reactor.run();
}
