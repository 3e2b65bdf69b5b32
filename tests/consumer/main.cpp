// consumer — a program built against an installed evwheel with nothing but
// `pkg-config --cflags --libs evwheel`, or CMake's find_package (CMakeLists.txt beside it);
// tests/test_install.cpp builds it both ways and runs it.  A server and a client in one
// reactor: the client sends "hello", the server echoes it, and the client prints what came
// back.  Exits 1 if that has not happened within 5 s.
#include <cstdio>
#include <string>

#include "evwheel/connector.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/reactor.hpp"

namespace {

class Echo final : public evwheel::ConnectionHandler {
  void on_message(evwheel::Connection& connection, std::string_view message) override {
    connection.send(message);
  }
};

class Client final : public evwheel::ConnectionHandler {
 public:
  explicit Client(evwheel::Reactor& reactor) : reactor_(reactor) {}
  void on_open(evwheel::Connection& connection) override { connection.send("hello"); }
  void on_message(evwheel::Connection&, std::string_view message) override {
    echoed = std::string(message);
    reactor_.stop();
  }
  std::string echoed;

 private:
  evwheel::Reactor& reactor_;
};

}  // namespace

int main() {
  evwheel::Reactor reactor;
  Echo echo;
  evwheel::Endpoint server(reactor, echo);
  evwheel::Listener listener(server, {"127.0.0.1:0"});

  Client client(reactor);
  evwheel::EndpointOptions client_options;
  client_options.side = evwheel::Side::client;
  evwheel::Endpoint client_side(reactor, client, client_options);
  evwheel::ConnectorOptions connector_options;
  connector_options.address = "127.0.0.1:" + std::to_string(listener.port());
  evwheel::Connector connector(client_side, connector_options);
  connector.start();

  reactor.run_after(std::chrono::seconds(5), [&] { reactor.stop(); });
  reactor.run();
  if (client.echoed.empty()) {
    std::fprintf(stderr, "consumer: no echo within 5 s\n");
    return 1;
  }
  std::printf("echoed: %s\n", client.echoed.c_str());
  return 0;
}
