// IPv6 over the loopback (::1): a listener and a connector on [::1], Endpoint::adopt of an IPv6
// socket, a dual-stack listener on [::] taking an IPv4 client (and refusing it with v6_only),
// and an IPv6 source address.  Each test skips (skip.hpp) on a machine without ::1.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>
#include <string>

#include "evwheel/address.hpp"
#include "evwheel/connector.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/reactor.hpp"
#include "fd_count.hpp"
#include "loopback.hpp"
#include "skip.hpp"

using namespace evwheel;
using namespace loopback;

namespace {

bool skip_without_ipv6() {
  if (ipv6_loopback_available()) return false;
  skip::because("this machine has no IPv6 loopback (::1)");
  return true;
}

}  // namespace

TEST_CASE("a listener on [::1] and a connector to it exchange messages; both ends see IPv6 addresses") {
  if (skip_without_ipv6()) return;
  const std::size_t fds = open_fd_count();
  {
    Sides sides;
    sides.listen("[::1]:0");
    const std::string address = to_string(sides.listener->address());
    CHECK(address == "[::1]:" + std::to_string(sides.listener->port()));
    CHECK(sides.listener->port() != 0);
    sides.connect(address);
    REQUIRE(sides.opened());
    CHECK(sides.client.connect_errors.empty());
    CHECK(to_string(sides.connector->remote()) == address);

    Connection& server_side = *sides.server.live[0];
    Connection& client_side = *sides.client.live[0];
    CHECK(to_string(server_side.local_address()) == address);
    const std::string client_address = to_string(client_side.local_address());
    CHECK(client_address.rfind("[::1]:", 0) == 0);
    CHECK(to_string(server_side.peer_address()) == client_address);
    CHECK(to_string(client_side.peer_address()) == address);
    CHECK(sides.exchange("over six"));
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
    Sides sides;
    sides.listen("[::]:0");
    const uint16_t port = sides.listener->port();
    CHECK(to_string(sides.listener->address()) == "[::]:" + std::to_string(port));
    sides.connect("127.0.0.1:" + std::to_string(port));
    REQUIRE(sides.opened());
    Address client_address = sides.client.live[0]->local_address();
    CHECK(client_address.family() == AF_INET);
    CHECK(to_string(sides.server.live[0]->peer_address()) ==
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
    Sides sides;
    sides.listen("[::]:" + port, true);
    sides.connect("127.0.0.1:" + port);
    REQUIRE(pump_until(sides.reactor, [&] { return !sides.client.connect_errors.empty(); }));
    CHECK(sides.client.connect_errors[0] == ECONNREFUSED);
    CHECK(sides.server.opens == 0);

    sides.connect("[::1]:" + port);
    REQUIRE(sides.opened());
    CHECK(sides.listener->stats().accepted == 1);
    ::close(reserved);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a connector with source ::1 connects from ::1; a source of the other family is refused") {
  if (skip_without_ipv6()) return;
  const std::size_t fds = open_fd_count();
  {
    Sides sides;
    sides.listen("[::1]:0");
    const std::string address = to_string(sides.listener->address());
    sides.connect(address, "::1");
    REQUIRE(sides.opened());
    CHECK(to_string(sides.client.live[0]->local_address()).rfind("[::1]:", 0) == 0);

    ConnectorOptions o;
    o.address = address;
    o.source = "127.0.0.2";
    CHECK_THROWS_AS(Connector(sides.client_ep, o), std::invalid_argument);
    o.address = "127.0.0.1:1";
    o.source = "[::1]";
    CHECK_THROWS_AS(Connector(sides.client_ep, o), std::invalid_argument);
  }
  CHECK(open_fd_count() == fds);
}
