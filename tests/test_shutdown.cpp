// Graceful shutdown over real loopback sockets: Listener::close, Endpoint::drain (queued output
// delivered to a reading peer, a peer that does not read reset at the deadline, idle
// connections closed at once) and the Shutdown helper that ties them together.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <stdexcept>
#include <string>

#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/reactor.hpp"
#include "evwheel/shutdown.hpp"
#include "fd_count.hpp"
#include "loopback.hpp"

using namespace evwheel;
using namespace loopback;

namespace {

// A server whose heartbeat stays out of the way (nothing here waits for pings).
struct Server {
  Reactor reactor;
  Recorder recorder;
  Endpoint endpoint{reactor, recorder, options(Side::server, 10s, 30s)};
  Listener listener{endpoint, {}};
};

// Accepts one raw client (receive buffer `rcvbuf` when > 0) and returns its fd; the server's
// side is server.recorder.live.back().
int accept_one(Server& server, int rcvbuf = 0) {
  std::size_t before = server.recorder.opens;
  int fd = raw_connect(server.listener.port(), rcvbuf);
  REQUIRE(fd >= 0);
  REQUIRE(pump_until(server.reactor, [&] { return server.recorder.opens == before + 1; }));
  return fd;
}

// Sends 64 KiB data frames until the kernel stops taking them (loopback buffers are large) and
// then `extra` more, so output stays queued in user space; returns the framed bytes the peer
// should end up with.
std::string queue_output(Connection& connection, int extra = 4) {
  std::string expected;
  for (int i = 0; i < 1024 && (connection.queued() == 0 || extra-- > 0); ++i) {
    std::string payload(64 << 10, static_cast<char>('a' + i % 26));
    REQUIRE(connection.send(payload));
    expected += frame(FrameType::data, payload);
  }
  REQUIRE(connection.queued() > 0);
  return expected;
}

}  // namespace

TEST_CASE("drain: queued output reaches a peer that reads, then the connection closes with reason shutdown") {
  const std::size_t fds = open_fd_count();
  {
    Server server;
    int peer = accept_one(server, 4096);
    std::string expected = queue_output(*server.recorder.live.back());
    int done = 0;
    server.endpoint.drain(5s, [&] { ++done; });
    CHECK(server.endpoint.draining());
    pump_for(server.reactor, 50ms);
    CHECK(server.recorder.closes.empty());  // the peer has not read yet: the output waits
    CHECK(done == 0);

    std::string got;
    int status = kOpen;
    CHECK(pump_until(server.reactor, [&] { return (status = drain(peer, got)) != kOpen; }));
    CHECK(status == kEof);
    CHECK(got == expected);
    REQUIRE(server.recorder.closes.size() == 1);
    CHECK(server.recorder.closes[0].reason == CloseReason::shutdown);
    CHECK(pump_until(server.reactor, [&] { return done == 1; }));
    ::close(peer);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("drain: a peer that does not read is reset at the deadline, with reason shutdown") {
  const std::size_t fds = open_fd_count();
  {
    Server server;
    int peer = accept_one(server, 4096);
    queue_output(*server.recorder.live.back());
    int done = 0;
    auto started = Clock::now();
    server.endpoint.drain(300ms, [&] { ++done; });
    pump_for(server.reactor, 100ms);
    CHECK(server.recorder.closes.empty());
    CHECK(done == 0);
    CHECK(pump_until(server.reactor, [&] { return done == 1; }));
    REQUIRE(server.recorder.closes.size() == 1);
    CHECK(server.recorder.closes[0].reason == CloseReason::shutdown);
    CHECK(ms_between(started, server.recorder.closes[0].at) >= 300.0);
    CHECK(server.endpoint.size() == 0);
    CHECK(read_to_end(peer) == ECONNRESET);
    ::close(peer);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("drain: connections with nothing queued close at once with a FIN, and done is posted, not called inside") {
  const std::size_t fds = open_fd_count();
  {
    Server server;
    int a = accept_one(server);
    int b = accept_one(server);
    int done = 0;
    server.endpoint.drain(5s, [&] { ++done; });
    CHECK(server.recorder.closed_with(CloseReason::shutdown) == 2);
    CHECK(done == 0);  // posted: it runs on the next loop iteration
    server.reactor.run_once(0ms);
    CHECK(done == 1);
    CHECK(read_to_end(a) == kEof);
    CHECK(read_to_end(b) == kEof);
    ::close(a);
    ::close(b);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("drain: a draining endpoint refuses new connections; a second drain or a negative deadline is an error") {
  const std::size_t fds = open_fd_count();
  {
    Server server;
    server.endpoint.drain(1s, {});
    int pair[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
    CHECK(server.endpoint.adopt(pair[0]) == nullptr);  // and pair[0] is closed
    CHECK(server.recorder.opens == 0);
    CHECK(read_to_end(pair[1]) == kEof);
    ::close(pair[1]);
    CHECK_THROWS_AS(server.endpoint.drain(1s, {}), std::logic_error);
    Recorder other_recorder;
    Endpoint other(server.reactor, other_recorder, options(Side::server, 10s, 30s));
    CHECK_THROWS_AS(other.drain(-1ms, {}), std::invalid_argument);
    CHECK_FALSE(other.draining());
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("drain: destroying the endpoint mid-drain closes what is left and cancels done") {
  const std::size_t fds = open_fd_count();
  int done = 0;
  {
    Reactor reactor;
    Recorder recorder;
    std::optional<Endpoint> endpoint;
    endpoint.emplace(reactor, recorder, options(Side::server, 10s, 30s));
    Listener listener(*endpoint, {});
    int peer = raw_connect(listener.port(), 4096);
    REQUIRE(peer >= 0);
    REQUIRE(pump_until(reactor, [&] { return recorder.opens == 1; }));
    queue_output(*recorder.live.back());
    endpoint->drain(5s, [&] { ++done; });
    listener.close();
    endpoint.reset();
    CHECK(recorder.closed_with(CloseReason::shutdown) == 1);
    pump_for(reactor, 20ms);
    ::close(peer);
  }
  CHECK(done == 0);
  CHECK(open_fd_count() == fds);
}

TEST_CASE("Listener::close: new clients are refused by the kernel, and close is idempotent") {
  const std::size_t fds = open_fd_count();
  {
    Server server;
    uint16_t port = server.listener.port();
    int before = accept_one(server);
    server.listener.close();
    CHECK(server.listener.closed());
    server.listener.close();
    CHECK(server.listener.port() == port);
    errno = 0;
    CHECK(raw_connect(port) < 0);
    CHECK(errno == ECONNREFUSED);
    CHECK(server.endpoint.size() == 1);  // accepted connections are not the listener's
    ::close(before);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("Listener::close from inside on_open ends the accept batch cleanly; queued clients are refused") {
  const std::size_t fds = open_fd_count();
  {
    Server server;
    server.recorder.open_hook = [&](Connection&) { server.listener.close(); };
    int clients[3];
    for (int& fd : clients) {
      fd = raw_connect(server.listener.port());  // all three wait in the accept queue
      REQUIRE(fd >= 0);
    }
    CHECK_NOTHROW(pump_for(server.reactor, 50ms));
    CHECK(server.recorder.opens == 1);
    CHECK(server.listener.closed());
    int reset = 0;
    for (int fd : clients) {
      reset += read_to_end(fd, nullptr, 200ms) == ECONNRESET;
      ::close(fd);
    }
    CHECK(reset == 2);  // the two never accepted
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("Shutdown: closes the listeners, drains every endpoint, runs done once; a second start does nothing") {
  const std::size_t fds = open_fd_count();
  {
    Server server;
    Recorder other_recorder;
    Endpoint other(server.reactor, other_recorder, options(Side::server, 10s, 30s));
    Listener other_listener(other, {});
    int peer = accept_one(server, 4096);
    std::string expected = queue_output(*server.recorder.live.back());
    int other_peer = raw_connect(other_listener.port());
    REQUIRE(other_peer >= 0);
    REQUIRE(pump_until(server.reactor, [&] { return other_recorder.opens == 1; }));

    Shutdown shutdown(server.reactor);
    shutdown.add(server.listener);
    shutdown.add(server.endpoint);
    shutdown.add(other_listener);
    shutdown.add(other);
    int done = 0;
    CHECK(shutdown.start(5s, [&] { ++done; }));
    CHECK_FALSE(shutdown.start(5s, [&] { done += 100; }));
    CHECK(shutdown.started());
    CHECK(server.listener.closed());
    CHECK(other_listener.closed());
    CHECK(other_recorder.closed_with(CloseReason::shutdown) == 1);  // nothing queued there
    pump_for(server.reactor, 20ms);
    CHECK_FALSE(shutdown.finished());  // the first endpoint still has output for its peer

    std::string got;
    CHECK(pump_until(server.reactor, [&] { return drain(peer, got) != kOpen && done == 1; }));
    CHECK(got == expected);
    CHECK(shutdown.finished());
    pump_for(server.reactor, 20ms);
    CHECK(done == 1);
    ::close(peer);
    ::close(other_peer);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("Shutdown: with nothing to drain, done is posted at once; a negative deadline is refused") {
  Reactor reactor;
  Shutdown shutdown(reactor);
  int done = 0;
  CHECK_THROWS_AS(shutdown.start(-1ms, {}), std::invalid_argument);
  CHECK_FALSE(shutdown.started());
  CHECK(shutdown.start(1s, [&] { ++done; }));
  CHECK(done == 0);
  reactor.run_once(0ms);
  CHECK(done == 1);
  CHECK(shutdown.finished());
}
