// Connector over real loopback sockets: a refused connect, reconnection to a server that comes
// back on the same port, the connect timeout, and the source address option.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "evwheel/connector.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/reactor.hpp"
#include "fd_count.hpp"
#include "loop_clock.hpp"
#include "loopback.hpp"

using namespace evwheel;
using namespace loopback;
using evwheel::TimePoint;

namespace {

std::string local_host(int fd) {
  sockaddr_in a{};
  socklen_t n = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  char host[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a.sin_addr, host, sizeof host);
  return host;
}

// Heartbeat out of the way for these tests.
EndpointOptions quiet(Side side) { return options(side, 1s, 3s); }

}  // namespace

TEST_CASE("connecting to a closed port fails with on_connect_error(ECONNREFUSED), once without reconnect") {
  const std::size_t fds = open_fd_count();
  {
    int reserved = bound_not_listening(Address::parse("127.0.0.1:0"));
    REQUIRE(reserved >= 0);
    uint16_t port = Address::local_of(reserved).port();
    Reactor reactor;
    Recorder client;
    Endpoint endpoint(reactor, client, quiet(Side::client));
    ConnectorOptions o;
    o.address = "127.0.0.1:" + std::to_string(port);
    Connector connector(endpoint, o);
    connector.start();
    REQUIRE(pump_until(reactor, [&] { return !client.connect_errors.empty(); }));
    CHECK(client.connect_errors[0] == ECONNREFUSED);
    CHECK(connector.last_error() == ECONNREFUSED);
    pump_for(reactor, 50ms);
    CHECK(client.connect_errors.size() == 1);
    CHECK(connector.attempts() == 1);
    CHECK(connector.state() == Connector::State::idle);
    CHECK(connector.connection() == nullptr);
    CHECK(client.opens == 0);
    ::close(reserved);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("with reconnect, the connector comes back when a new server listens on the same port") {
  const std::size_t fds = open_fd_count();
  {
    Reactor reactor;
    Recorder server, client;
    std::optional<Endpoint> server_ep;
    std::optional<Listener> listener;
    server_ep.emplace(reactor, server, quiet(Side::server));
    listener.emplace(*server_ep, ListenerOptions{});
    const std::string address = "127.0.0.1:" + std::to_string(listener->port());

    Endpoint client_ep(reactor, client, quiet(Side::client));
    ConnectorOptions o;
    o.address = address;
    o.reconnect = true;
    o.backoff_initial = 10ms;
    o.backoff_max = 50ms;
    Connector connector(client_ep, o);
    connector.start();
    REQUIRE(pump_until(reactor, [&] { return client.opens == 1 && server.opens == 1; }));
    CHECK(connector.state() == Connector::State::connected);
    CHECK(connector.connection() != nullptr);

    // The server goes away: the client's connection ends and attempts are refused meanwhile.
    listener.reset();
    server_ep.reset();
    REQUIRE(pump_until(reactor, [&] { return client.closes.size() == 1 && client.connect_errors.size() >= 2; }));
    CHECK((client.closes[0].reason == CloseReason::peer_closed || client.closes[0].reason == CloseReason::reset));
    for (int error : client.connect_errors) CHECK(error == ECONNREFUSED);
    CHECK(connector.connection() == nullptr);

    // A new server on the same port.
    ListenerOptions lo;
    lo.address = address;
    server_ep.emplace(reactor, server, quiet(Side::server));
    listener.emplace(*server_ep, lo);
    REQUIRE(pump_until(reactor, [&] { return client.opens == 2 && server.live.size() == 1; }));
    CHECK(connector.state() == Connector::State::connected);
    CHECK(connector.connection() != nullptr);
    CHECK(connector.attempts() >= 3);

    // It is a working connection.
    REQUIRE(client.live.size() == 1);
    CHECK(client.live[0]->send("back"));
    REQUIRE(pump_until(reactor, [&] { return !server.messages.empty(); }));
    CHECK(server.messages.back() == "back");
    listener.reset();
    server_ep.reset();
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("connect_timeout: a connect to a listener whose accept queue is full fails with ETIMEDOUT") {
  const std::size_t fds = open_fd_count();
  {
    // A listening socket with backlog 0 that is never accepted, filled by raw connects: further
    // SYNs are dropped, so a connect neither completes nor fails.
    sockaddr_in a{};
    int server = raw_listen(0, &a);
    REQUIRE(server >= 0);
    std::vector<int> fillers;
    bool full = false;
    for (int i = 0; i < 4 && !full; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      REQUIRE(fd >= 0);
      fillers.push_back(fd);
      ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
      pollfd p{fd, POLLOUT, 0};
      full = ::poll(&p, 1, 100) == 0;  // this one hangs: the queue is full
    }
    REQUIRE(full);

    Reactor reactor;
    Recorder client;
    Endpoint endpoint(reactor, client, quiet(Side::client));
    ConnectorOptions o;
    o.address = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
    o.connect_timeout = 100ms;
    Connector connector(endpoint, o);
    const TimePoint before = Clock::now();
    connector.start();
    const TimePoint after = Clock::now();
    CHECK(connector.state() == Connector::State::connecting);
    loop_clock::Timeline timeline;
    REQUIRE(pump_until(reactor, [&] {
      timeline.note(reactor.now(), !client.connect_errors.empty());
      return timeline.happened();
    }));
    INFO("failed " << ms_between(before, timeline.at()) << " ms after the connect began");
    CHECK(client.connect_errors[0] == ETIMEDOUT);
    // On the loop's clock: not before the timeout, and in the first iteration past its tick
    // (the reactor's timers tick each 1 ms) — the timeout's doing, not the kernel's, which
    // would take minutes to give up on its SYNs.
    CHECK(timeline.at() >= before + o.connect_timeout);
    CHECK(timeline.last_before() < loop_clock::tick_boundary(after + o.connect_timeout, 1ms));
    CHECK(client.opens == 0);
    CHECK(connector.state() == Connector::State::idle);
    for (int fd : fillers) ::close(fd);
    ::close(server);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("source option: connecting from 127.0.0.2 gives a server-side peer address of 127.0.0.2") {
  const std::size_t fds = open_fd_count();
  {
    Reactor reactor;
    Recorder server, client;
    Endpoint server_ep(reactor, server, quiet(Side::server));
    Listener listener(server_ep, ListenerOptions{});
    Endpoint client_ep(reactor, client, quiet(Side::client));
    ConnectorOptions o;
    o.address = "127.0.0.1:" + std::to_string(listener.port());
    o.source = "127.0.0.2";
    std::optional<Connector> connector;
    connector.emplace(client_ep, o);
    connector->start();
    REQUIRE(pump_until(reactor, [&] { return server.live.size() == 1 && client.live.size() == 1; }));
    CHECK(client.connect_errors.empty());
    CHECK(peer_host(server.live[0]->fd()) == "127.0.0.2");
    CHECK(local_host(client.live[0]->fd()) == "127.0.0.2");
    // Destroying the connector closes its connection (local_close); the server sees the EOF.
    connector.reset();
    REQUIRE(client.closes.size() == 1);
    CHECK(client.closes[0].reason == CloseReason::local_close);
    REQUIRE(pump_until(reactor, [&] { return server.closes.size() == 1; }));
    CHECK(server.closes[0].reason == CloseReason::peer_closed);
  }
  CHECK(open_fd_count() == fds);
}
