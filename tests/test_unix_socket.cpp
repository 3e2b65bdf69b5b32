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
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>

#include "../src/socket_file.hpp"
#include "child.hpp"
#include "evwheel/address.hpp"
#include "evwheel/connector.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/reactor.hpp"
#include "fd_count.hpp"
#include "loopback.hpp"
#include "temp_dir.hpp"

using namespace evwheel;
using namespace loopback;

namespace {

bool exists(const std::string& path) {
  struct stat status {};
  return ::lstat(path.c_str(), &status) == 0;
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
    ListenerOptions o;
    o.address = address;
    Listener listener(endpoint, o);
  } catch (const std::system_error& error) {
    INFO("what: ", error.what());
    CHECK(std::string(error.what()).find(address) != std::string::npos);
    return error.code().value();
  }
  return 0;
}

}  // namespace

TEST_CASE("a listener on unix:/path and a connector to it exchange messages; addresses print as unix:/path and unix:") {
  const std::size_t fds = open_fd_count();
  {
    TempDir dir("evwheel-unix");
    const std::string address = "unix:" + dir / "hb.sock";
    Sides sides;
    Listener& listener = sides.listen(address);
    CHECK(to_string(listener.address()) == address);
    CHECK(listener.port() == 0);
    sides.connect(address);
    REQUIRE(sides.opened());
    CHECK(to_string(sides.connector->remote()) == address);
    Connection& client_side = *sides.connector->connection();
    Connection& server_side = *sides.server.live[0];
    CHECK(to_string(client_side.peer_address()) == address);
    CHECK(to_string(server_side.local_address()) == address);
    CHECK(to_string(server_side.peer_address()) == "unix:");  // the client has no name
    CHECK(sides.exchange("over unix"));
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("an abstract unix:@name listener and connector exchange messages; the name goes with the listener") {
  const std::size_t fds = open_fd_count();
  {
    const std::string address = "unix:@evwheel-test-" + std::to_string(::getpid());
    Sides sides;
    CHECK(to_string(sides.listen(address).address()) == address);
    sides.connect(address);
    REQUIRE(sides.opened());
    CHECK(to_string(sides.connector->connection()->peer_address()) == address);
    CHECK(sides.exchange("abstract"));
    // Gone with the listener: a new connect finds nobody.
    sides.listener.reset();
    sides.connect(address);
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
    CHECK(to_string(server_side->peer_address()) == "unix:");
    CHECK(to_string(client_side->local_address()) == "unix:");
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
    sides.listen("unix:" + path);
    sides.connect("unix:" + path);
    REQUIRE(sides.opened());
    CHECK(sides.listener->stats().accepted == 1);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a listener refuses a path another listener has (EADDRINUSE) and leaves that one working") {
  const std::size_t fds = open_fd_count();
  {
    TempDir dir("evwheel-unix");
    const std::string address = "unix:" + dir / "busy.sock";
    Sides sides;
    Listener& first = sides.listen(address);
    CHECK(listener_error(sides.server_ep, address) == EADDRINUSE);
    // The first listener saw the probe (a connection that closes at once) and still takes clients.
    sides.connect(address);
    REQUIRE(sides.opened());
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
    sides.listen("unix:" + path);
    REQUIRE(exists(path));
    sides.listener->close();
    CHECK_FALSE(exists(path));

    sides.listen("unix:" + path);
    REQUIRE(::unlink(path.c_str()) == 0);
    make_stale_socket(path);  // another server's file now
    sides.listener.reset();
    CHECK(exists(path));
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
    sides.connect("unix:" + dir / "missing.sock");
    REQUIRE(sides.client.connect_errors.size() == 1);  // a Unix connect fails at once
    CHECK(sides.client.connect_errors[0] == ENOENT);
    CHECK(sides.connector->state() == Connector::State::idle);

    make_stale_socket(dir / "stale.sock");
    sides.connect("unix:" + dir / "stale.sock");
    REQUIRE(sides.client.connect_errors.size() == 2);
    CHECK(sides.client.connect_errors[1] == ECONNREFUSED);
    CHECK(std::string(connect_error_string(ECONNREFUSED)) == "Connection refused");
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("reuse_port with a Unix address, and a connector source with one, are refused as bad options") {
  TempDir dir("evwheel-unix");
  Sides sides;
  ListenerOptions shared;
  shared.address = "unix:" + dir / "x.sock";
  shared.reuse_port = true;
  CHECK_THROWS_AS(Listener(sides.server_ep, shared), std::invalid_argument);
  CHECK_FALSE(exists(dir / "x.sock"));
  CHECK_THROWS_AS(sides.connect("unix:" + dir / "x.sock", "127.0.0.1"), std::invalid_argument);
}
