// IPv6 over the loopback (::1): a listener and a connector on [::1], Endpoint::adopt of an IPv6
// socket, a dual-stack listener on [::] taking an IPv4 client (and refusing it with v6_only),
// and an IPv6 source address.  Each test skips, with a message, on a machine without ::1.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <stdexcept>
#include <string>

#include "evwheel/address.hpp"
#include "evwheel/connector.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/reactor.hpp"
#include "fd_count.hpp"
#include "loopback.hpp"

using namespace evwheel;
using namespace loopback;

namespace {

EndpointOptions quiet(Side side) { return options(side, 1s, 3s); }

bool skip_without_ipv6() {
  if (ipv6_loopback_available()) return false;
  MESSAGE("skipped: this machine has no IPv6 loopback (::1)");
  return true;
}

// A server endpoint and a listener on `listen`, a client endpoint, and a connector to `connect`
// (with `source` if given), all on one reactor.
struct Pair {
  Reactor reactor;
  Recorder server, client;
  Endpoint server_ep{reactor, server, quiet(Side::server)};
  Endpoint client_ep{reactor, client, quiet(Side::client)};
  std::optional<Listener> listener;
  std::optional<Connector> connector;

  void listen(ListenerOptions options) { listener.emplace(server_ep, std::move(options)); }
  void connect(const std::string& address, const std::string& source = "") {
    ConnectorOptions o;
    o.address = address;
    o.source = source;
    connector.emplace(client_ep, o);
    connector->start();
  }
  bool opened() {
    return pump_until(reactor, [&] { return server.live.size() == 1 && client.live.size() == 1; });
  }
};

ListenerOptions at(const std::string& address, bool v6_only = false) {
  ListenerOptions o;
  o.address = address;
  o.v6_only = v6_only;
  return o;
}

}  // namespace

TEST_CASE("a listener on [::1] and a connector to it exchange messages; both ends see IPv6 addresses") {
  if (skip_without_ipv6()) return;
  const std::size_t fds = open_fd_count();
  {
    Pair pair;
    pair.listen(at("[::1]:0"));
    const std::string address = to_string(pair.listener->address());
    CHECK(address == "[::1]:" + std::to_string(pair.listener->port()));
    CHECK(pair.listener->port() != 0);
    pair.connect(address);
    REQUIRE(pair.opened());
    CHECK(pair.client.connect_errors.empty());
    CHECK(to_string(pair.connector->remote()) == address);

    Connection& server_side = *pair.server.live[0];
    Connection& client_side = *pair.client.live[0];
    CHECK(to_string(Address::local_of(server_side.fd())) == address);
    const std::string client_address = to_string(Address::local_of(client_side.fd()));
    CHECK(client_address.rfind("[::1]:", 0) == 0);
    CHECK(to_string(pair.server_ep.peer_address(server_side)) == client_address);
    CHECK(to_string(Address::peer_of(client_side.fd())) == address);

    CHECK(client_side.send("over six"));
    REQUIRE(pump_until(pair.reactor, [&] { return !pair.server.messages.empty(); }));
    CHECK(pair.server.messages[0] == "over six");
    CHECK(server_side.send("and back"));
    REQUIRE(pump_until(pair.reactor, [&] { return !pair.client.messages.empty(); }));
    CHECK(pair.client.messages[0] == "and back");
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("Endpoint::adopt takes a connected IPv6 socket and runs its heartbeat") {
  if (skip_without_ipv6()) return;
  const std::size_t fds = open_fd_count();
  {
    int server = bound_not_listening(Address::parse("[::1]:0"));
    REQUIRE(server >= 0);
    REQUIRE(::listen(server, 1) == 0);
    Address address = Address::local_of(server);
    int peer = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(::connect(peer, address.get(), address.length()) == 0);
    int accepted = ::accept4(server, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(accepted >= 0);
    ::close(server);

    Reactor reactor;
    Recorder recorder;
    EndpointOptions o = options(Side::server, 20ms, 1s);
    o.socket.keepalive = true;  // TCP options apply to IPv6 sockets as to IPv4 ones
    o.socket.user_timeout = 1s;
    Endpoint endpoint(reactor, recorder, o);
    REQUIRE(endpoint.adopt(accepted) != nullptr);
    CHECK(first_word(peer, [&] { reactor.run_once(2ms); }) == 1);  // a framed ping
    ::close(peer);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a dual-stack listener on [::] accepts an IPv4 client, whose address reads as ::ffff:127.0.0.1") {
  if (skip_without_ipv6()) return;
  const std::size_t fds = open_fd_count();
  {
    Pair pair;
    pair.listen(at("[::]:0"));
    const uint16_t port = pair.listener->port();
    CHECK(to_string(pair.listener->address()) == "[::]:" + std::to_string(port));
    pair.connect("127.0.0.1:" + std::to_string(port));
    REQUIRE(pair.opened());
    Address client_address = Address::local_of(pair.client.live[0]->fd());
    CHECK(client_address.family() == AF_INET);
    CHECK(to_string(pair.server_ep.peer_address(*pair.server.live[0])) ==
          "[::ffff:127.0.0.1]:" + std::to_string(client_address.port()));
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("with v6_only, a listener on [::] refuses IPv4 clients and still takes IPv6 ones") {
  if (skip_without_ipv6()) return;
  const std::size_t fds = open_fd_count();
  {
    // 127.0.0.1:P is held (bound, not listening), so an IPv4 connect there can only be refused:
    // no other program's listener can answer it.
    int reserved = bound_not_listening(Address::parse("127.0.0.1:0"));
    REQUIRE(reserved >= 0);
    const std::string port = std::to_string(Address::local_of(reserved).port());
    Pair pair;
    pair.listen(at("[::]:" + port, true));
    pair.connect("127.0.0.1:" + port);
    REQUIRE(pump_until(pair.reactor, [&] { return !pair.client.connect_errors.empty(); }));
    CHECK(pair.client.connect_errors[0] == ECONNREFUSED);
    CHECK(pair.server.opens == 0);

    pair.connect("[::1]:" + port);
    REQUIRE(pair.opened());
    CHECK(pair.listener->stats().accepted == 1);
    ::close(reserved);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a connector with source ::1 connects from ::1; a source of the other family is refused") {
  if (skip_without_ipv6()) return;
  const std::size_t fds = open_fd_count();
  {
    Pair pair;
    pair.listen(at("[::1]:0"));
    const std::string address = to_string(pair.listener->address());
    pair.connect(address, "::1");
    REQUIRE(pair.opened());
    CHECK(to_string(Address::local_of(pair.client.live[0]->fd())).rfind("[::1]:", 0) == 0);

    ConnectorOptions o;
    o.address = address;
    o.source = "127.0.0.2";
    CHECK_THROWS_AS(Connector(pair.client_ep, o), std::invalid_argument);
    o.address = "127.0.0.1:1";
    o.source = "[::1]";
    CHECK_THROWS_AS(Connector(pair.client_ep, o), std::invalid_argument);
  }
  CHECK(open_fd_count() == fds);
}
