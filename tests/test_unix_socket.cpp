// Unix domain sockets: listeners and connectors on unix:/path and the abstract unix:@name,
// Endpoint::adopt of socketpair ends (TCP options skipped, not failed), and the socket file's
// life: a stale one cleared before bind, a live one or a non-socket refused, ours removed at
// close (and only ours).
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>

#include "../src/socket_file.hpp"
#include "child.hpp"
#include "evwheel/address.hpp"
#include "evwheel/connector.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/reactor.hpp"
#include "fd_count.hpp"
#include "loopback.hpp"
#include "temp_dir.hpp"

using namespace evwheel;
using namespace loopback;

namespace {

EndpointOptions quiet(Side side) { return options(side, 1s, 3s); }

bool exists(const std::string& path) {
  struct stat status {};
  return ::lstat(path.c_str(), &status) == 0;
}

ListenerOptions at(const std::string& address) {
  ListenerOptions o;
  o.address = address;
  return o;
}

ConnectorOptions to(const std::string& address) {
  ConnectorOptions o;
  o.address = address;
  return o;
}

// A socket file with nobody listening on it, as a server that crashed leaves behind.
void make_stale_socket(const std::string& path) {
  Address address = Address::parse("unix:" + path);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(::bind(fd, address.get(), address.length()) == 0);
  ::close(fd);
}

// The errno of the std::system_error that making a listener at `address` throws; 0 if it does not.
int listener_error(Endpoint& endpoint, const std::string& address) {
  try {
    Listener listener(endpoint, at(address));
  } catch (const std::system_error& error) {
    INFO("what: ", error.what());
    CHECK(std::string(error.what()).find(address) != std::string::npos);
    return error.code().value();
  }
  return 0;
}

// A reactor with a server and a client endpoint, for a listener and connectors on Unix sockets.
struct Sides {
  Reactor reactor;
  Recorder server, client;
  Endpoint server_ep{reactor, server, quiet(Side::server)};
  Endpoint client_ep{reactor, client, quiet(Side::client)};

  // Connects a new connector to `address` and waits until both ends are open (returned: the
  // connector, which keeps its connection).
  Connector& connect(std::optional<Connector>& connector, const std::string& address) {
    std::size_t before = server.opens;
    connector.emplace(client_ep, to(address));
    connector->start();
    REQUIRE(pump_until(reactor, [&] { return server.opens > before && connector->connection(); }));
    return *connector;
  }
};

}  // namespace

TEST_CASE("a listener on unix:/path and a connector to it exchange messages; addresses print as unix:/path and unix:") {
  const std::size_t fds = open_fd_count();
  {
    TempDir dir("evwheel-unix");
    const std::string address = "unix:" + dir / "hb.sock";
    Sides sides;
    Listener listener(sides.server_ep, at(address));
    CHECK(to_string(listener.address()) == address);
    CHECK(listener.port() == 0);
    std::optional<Connector> connector;
    Connection& client_side = *sides.connect(connector, address).connection();
    CHECK(to_string(connector->remote()) == address);
    REQUIRE(sides.server.live.size() == 1);
    Connection& server_side = *sides.server.live[0];
    CHECK(to_string(Address::peer_of(client_side.fd())) == address);
    CHECK(to_string(Address::local_of(server_side.fd())) == address);
    CHECK(to_string(Address::peer_of(server_side.fd())) == "unix:");  // the client has no name

    CHECK(client_side.send("over unix"));
    REQUIRE(pump_until(sides.reactor, [&] { return !sides.server.messages.empty(); }));
    CHECK(sides.server.messages[0] == "over unix");
    CHECK(server_side.send("and back"));
    REQUIRE(pump_until(sides.reactor, [&] { return !sides.client.messages.empty(); }));
    CHECK(sides.client.messages[0] == "and back");
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("an abstract unix:@name listener and connector exchange messages and leave no file") {
  const std::size_t fds = open_fd_count();
  {
    const std::string address = "unix:@evwheel-test-" + std::to_string(::getpid());
    Sides sides;
    std::optional<Listener> listener;
    listener.emplace(sides.server_ep, at(address));
    CHECK(to_string(listener->address()) == address);
    std::optional<Connector> connector;
    Connection& client_side = *sides.connect(connector, address).connection();
    CHECK(to_string(Address::peer_of(client_side.fd())) == address);
    CHECK(client_side.send("abstract"));
    REQUIRE(pump_until(sides.reactor, [&] { return !sides.server.messages.empty(); }));
    CHECK(sides.server.messages[0] == "abstract");
    // Gone with the listener: a new connect finds nobody.
    listener.reset();
    connector.emplace(sides.client_ep, to(address));
    connector->start();
    REQUIRE(pump_until(sides.reactor, [&] { return !sides.client.connect_errors.empty(); }));
    CHECK(sides.client.connect_errors[0] == ECONNREFUSED);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("Endpoint::adopt takes both ends of a socketpair with every TCP option asked for: none is set, none fails") {
  const std::size_t fds = open_fd_count();
  {
    int pair[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
    Reactor reactor;
    Recorder server, client;
    EndpointOptions o = options(Side::server, 20ms, 1s);
    o.socket.no_delay = true;
    o.socket.keepalive = true;
    o.socket.user_timeout = 1s;
    Endpoint server_ep(reactor, server, o);
    o.side = Side::client;
    Endpoint client_ep(reactor, client, o);
    Connection* server_side = server_ep.adopt(pair[0]);
    Connection* client_side = client_ep.adopt(pair[1]);
    REQUIRE(server_side != nullptr);
    REQUIRE(client_side != nullptr);
    int keepalive = -1;
    socklen_t length = sizeof keepalive;
    REQUIRE(::getsockopt(pair[0], SOL_SOCKET, SO_KEEPALIVE, &keepalive, &length) == 0);
    CHECK(keepalive == 0);  // not even the one option a Unix socket would take

    CHECK(client_side->send("paired"));
    REQUIRE(pump_until(reactor, [&] { return !server.messages.empty() && server_ep.heartbeat_stats().pongs_received > 0; }));
    CHECK(server.messages[0] == "paired");
    CHECK(client_ep.heartbeat_stats().pings_answered > 0);
    CHECK(to_string(server_ep.peer_address(*server_side)) == "-");  // an IP-only SocketAddress
    CHECK(to_string(Address::peer_of(server_side->fd())) == "unix:");
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a listener clears a stale socket file that nobody listens on, and binds there") {
  const std::size_t fds = open_fd_count();
  {
    TempDir dir("evwheel-unix");
    const std::string path = dir / "stale.sock";
    make_stale_socket(path);
    REQUIRE(exists(path));
    Sides sides;
    Listener listener(sides.server_ep, at("unix:" + path));
    std::optional<Connector> connector;
    sides.connect(connector, "unix:" + path);
    CHECK(listener.stats().accepted == 1);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a listener refuses a path another listener has (EADDRINUSE) and leaves that one working") {
  const std::size_t fds = open_fd_count();
  {
    TempDir dir("evwheel-unix");
    const std::string address = "unix:" + dir / "busy.sock";
    Sides sides;
    Listener first(sides.server_ep, at(address));
    CHECK(listener_error(sides.server_ep, address) == EADDRINUSE);
    // The first listener saw the probe (a connection that closes at once) and still takes clients.
    std::optional<Connector> connector;
    sides.connect(connector, address);
    REQUIRE(pump_until(sides.reactor, [&] { return sides.server.opens == 2 && sides.server.live.size() == 1; }));
    CHECK(first.stats().accepted == 2);
    CHECK(exists(dir / "busy.sock"));
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a listener refuses a path that is not a socket (ENOTSOCK) and leaves the file as it was") {
  const std::size_t fds = open_fd_count();
  {
    TempDir dir("evwheel-unix");
    const std::string path = dir / "precious.txt";
    std::ofstream(path) << "not a socket\n";
    Sides sides;
    CHECK(listener_error(sides.server_ep, "unix:" + path) == ENOTSOCK);
    std::ifstream in(path);
    std::stringstream content;
    content << in.rdbuf();
    CHECK(content.str() == "not a socket\n");
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a listener removes its socket file when it closes, but not a file that has replaced it") {
  const std::size_t fds = open_fd_count();
  {
    TempDir dir("evwheel-unix");
    const std::string path = dir / "own.sock";
    Sides sides;
    {
      Listener listener(sides.server_ep, at("unix:" + path));
      REQUIRE(exists(path));
      listener.close();
      CHECK_FALSE(exists(path));
    }
    {
      Listener listener(sides.server_ep, at("unix:" + path));
      REQUIRE(::unlink(path.c_str()) == 0);
      make_stale_socket(path);  // another server's file now
      listener.close();
      CHECK(exists(path));
    }
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a fork()ed child removing its copy of a listener's socket file leaves the parent's path alone") {
  TempDir dir("evwheel-unix");
  const std::string path = dir / "parent.sock";
  Address address = Address::parse("unix:" + path);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(::bind(fd, address.get(), address.length()) == 0);
  SocketFile file(address);  // what a Listener keeps (a child's Listener::close() calls remove())
  pid_t pid = child::start([&] {
    file.remove();
    return exists(path) ? 0 : 1;
  });
  CHECK(child::wait(pid) == 0);
  CHECK(exists(path));
  file.remove();
  CHECK_FALSE(exists(path));
  ::close(fd);
}

TEST_CASE("a connector to a Unix path nobody listens on fails: ENOENT without a file, ECONNREFUSED with a stale one") {
  const std::size_t fds = open_fd_count();
  {
    TempDir dir("evwheel-unix");
    Sides sides;
    Connector missing(sides.client_ep, to("unix:" + dir / "missing.sock"));
    missing.start();
    REQUIRE(sides.client.connect_errors.size() == 1);  // a Unix connect fails at once
    CHECK(sides.client.connect_errors[0] == ENOENT);
    CHECK(missing.state() == Connector::State::idle);

    make_stale_socket(dir / "stale.sock");
    Connector stale(sides.client_ep, to("unix:" + dir / "stale.sock"));
    stale.start();
    REQUIRE(sides.client.connect_errors.size() == 2);
    CHECK(sides.client.connect_errors[1] == ECONNREFUSED);
    CHECK(std::string(connect_error_string(ECONNREFUSED)) == "Connection refused");
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("reuse_port with a Unix address, and a connector source with one, are refused as bad options") {
  TempDir dir("evwheel-unix");
  Sides sides;
  ListenerOptions shared = at("unix:" + dir / "x.sock");
  shared.reuse_port = true;
  CHECK_THROWS_AS(Listener(sides.server_ep, shared), std::invalid_argument);
  CHECK_FALSE(exists(dir / "x.sock"));
  ConnectorOptions from = to("unix:" + dir / "x.sock");
  from.source = "127.0.0.1";
  CHECK_THROWS_AS(Connector(sides.client_ep, from), std::invalid_argument);
}
