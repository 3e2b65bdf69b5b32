// A Listener with the PROXY protocol over real loopback sockets: raw clients send headers (whole,
// byte by byte, or with application data in the same write), and bad, late or abandoned headers
// are reset and counted.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "evwheel/address.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/proxy_protocol.hpp"
#include "evwheel/reactor.hpp"
#include "fd_count.hpp"
#include "loopback.hpp"

using namespace evwheel;
using namespace loopback;

namespace {

const std::string kV1 = "PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n";

// The v2 header of the same client (203.0.113.7:40000 -> 198.51.100.1:443), command PROXY.
std::string v2_header() {
  std::string out("\r\n\r\n\0\r\nQUIT\n", 12);
  out += std::string{'\x21', '\x11', '\x00', '\x0c'};
  out += std::string{'\xcb', '\x00', '\x71', '\x07', '\xc6', '\x33', '\x64', '\x01', '\x9c', '\x40', '\x01', '\xbb'};
  return out;
}

std::string v2_local() {
  std::string out("\r\n\r\n\0\r\nQUIT\n", 12);
  return out + std::string{'\x20', '\x00', '\x00', '\x00'};
}

// A server endpoint (no pings in the way) that records opens with the client address each saw,
// and a listener taking `mode` headers.
struct Server {
  Reactor reactor;
  Recorder handler;
  Endpoint endpoint;
  std::vector<std::string> clients;          // peer_address() as seen in on_open
  std::vector<std::pair<ProxyError, std::string>> errors;  // from on_proxy_error
  Listener listener;

  explicit Server(ProxyProtocol mode, Duration timeout = 5s, std::size_t max_connections = 0)
      : endpoint(reactor, handler, options(Side::server, 60s, 120s, PingMode::client)),
        listener(endpoint, listener_options(mode, timeout, max_connections)) {
    handler.open_hook = [this](Connection& c) { clients.push_back(to_string(c.peer_address())); };
    handler.message_hook = [](Connection& c, std::string_view m) { c.send(m); };
  }

  ListenerOptions listener_options(ProxyProtocol mode, Duration timeout, std::size_t max_connections) {
    ListenerOptions o;
    o.proxy_protocol = mode;
    o.proxy_timeout = timeout;
    o.max_connections = max_connections;
    o.on_proxy_error = [this](ProxyError e, const SocketAddress& peer) { errors.emplace_back(e, to_string(peer)); };
    return o;
  }

  uint64_t failures(ProxyError e) const { return listener.stats().proxy_failures[static_cast<std::size_t>(e)]; }
  bool pump_until_refused(std::size_t count) {
    return pump_until(reactor, [&] { return errors.size() >= count; });
  }
};

// Reads framed frames from a blocking raw client until one data frame arrives (or `timeout`),
// running the server's loop in between; returns its payload, or "" on timeout.
std::string echo_of(Server& server, int fd, Duration timeout = 3s) {
  std::string in;
  std::string payload;
  pump_until(server.reactor, [&] {
    drain(fd, in);
    for (auto& [type, body] : take_frames(in))
      if (type == FrameType::data) payload = body;
    return !payload.empty();
  }, timeout);
  return payload;
}

}  // namespace

TEST_CASE("a v1 header and data in one write: on_open sees the proxied client, the data arrives") {
  const std::size_t fds = open_fd_count();
  {
    Server server(ProxyProtocol::v1);
    int client = raw_connect(server.listener.port());
    REQUIRE(client >= 0);
    REQUIRE(write_all(client, kV1 + frame(FrameType::data, "hello")));
    CHECK(echo_of(server, client) == "hello");
    REQUIRE(server.clients.size() == 1);
    CHECK(server.clients[0] == "203.0.113.7:40000");
    CHECK(server.handler.messages == std::vector<std::string>{"hello"});
    CHECK(server.listener.stats().accepted == 1);
    CHECK(server.listener.awaiting_header() == 0);
    ::close(client);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a v2 header sent one byte at a time opens the connection only when complete") {
  const std::size_t fds = open_fd_count();
  {
    Server server(ProxyProtocol::v2);
    int client = raw_connect(server.listener.port());
    REQUIRE(client >= 0);
    std::string header = v2_header();
    for (std::size_t i = 0; i + 1 < header.size(); ++i) {
      REQUIRE(write_all(client, header.substr(i, 1)));
      pump_for(server.reactor, 1ms);
    }
    CHECK(pump_until(server.reactor, [&] { return server.listener.awaiting_header() == 1; }));
    CHECK(server.handler.opens == 0);
    REQUIRE(write_all(client, header.substr(header.size() - 1) + frame(FrameType::data, "abc")));
    CHECK(echo_of(server, client) == "abc");
    REQUIRE(server.clients.size() == 1);
    CHECK(server.clients[0] == "203.0.113.7:40000");
    CHECK(server.listener.awaiting_header() == 0);
    ::close(client);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("any takes both versions; v2 LOCAL and v1 UNKNOWN keep the socket's own peer address") {
  const std::size_t fds = open_fd_count();
  {
    Server server(ProxyProtocol::any);
    std::vector<int> clients;
    for (const std::string& header : {kV1, v2_header(), v2_local(), std::string("PROXY UNKNOWN\r\n")}) {
      clients.push_back(raw_connect(server.listener.port()));
      REQUIRE(clients.back() >= 0);
      REQUIRE(write_all(clients.back(), header + frame(FrameType::data, "x")));
      CHECK(echo_of(server, clients.back()) == "x");
    }
    REQUIRE(server.clients.size() == 4);
    CHECK(server.clients[0] == "203.0.113.7:40000");
    CHECK(server.clients[1] == "203.0.113.7:40000");
    CHECK(server.clients[2] == local_address(clients[2]));
    CHECK(server.clients[3] == local_address(clients[3]));
    for (int fd : clients) ::close(fd);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("without the PROXY protocol peer_address is the socket's peer") {
  const std::size_t fds = open_fd_count();
  {
    Server server(ProxyProtocol::off);
    int client = raw_connect(server.listener.port(), 0, "127.0.0.5");
    REQUIRE(client >= 0);
    REQUIRE(pump_until(server.reactor, [&] { return server.handler.opens == 1; }));
    CHECK(server.clients[0] == local_address(client));
    CHECK(server.clients[0].rfind("127.0.0.5:", 0) == 0);
    ::close(client);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("bad headers are reset and counted by reason, and the callback hears the proxy's address") {
  const std::size_t fds = open_fd_count();
  {
    Server server(ProxyProtocol::v1);
    struct Case {
      std::string bytes;
      ProxyError reason;
    };
    std::vector<Case> cases = {
        {frame(FrameType::data, "no header"), ProxyError::not_proxy},
        {"GET / HTTP/1.1\r\n", ProxyError::not_proxy},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", ProxyError::malformed},
        {v2_header(), ProxyError::wrong_version},
        {"PROXY UNKNOWN " + std::string(200, 'x'), ProxyError::too_long},
    };
    for (std::size_t i = 0; i < cases.size(); ++i) {
      CAPTURE(i);
      int client = raw_connect(server.listener.port());
      REQUIRE(client >= 0);
      REQUIRE(write_all(client, cases[i].bytes));
      REQUIRE(server.pump_until_refused(i + 1));
      CHECK(server.errors[i].first == cases[i].reason);
      CHECK(server.errors[i].second == local_address(client));
      CHECK(server.failures(cases[i].reason) >= 1);
      CHECK(read_to_end(client) == ECONNRESET);
      ::close(client);
    }
    CHECK(server.handler.opens == 0);
    CHECK(server.listener.stats().accepted == cases.size());
    CHECK(server.listener.awaiting_header() == 0);
    CHECK(server.endpoint.size() == 0);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a header refused after the socket waited is reset and counted like one refused at accept") {
  const std::size_t fds = open_fd_count();
  {
    Server server(ProxyProtocol::v2);
    int client = raw_connect(server.listener.port());
    REQUIRE(client >= 0);
    REQUIRE(pump_until(server.reactor, [&] { return server.listener.awaiting_header() == 1; }));
    std::string header = v2_header();
    header[12] = '\x22';  // command 2: no such command
    REQUIRE(write_all(client, header));
    REQUIRE(server.pump_until_refused(1));
    CHECK(server.errors[0].first == ProxyError::unsupported);
    CHECK(server.failures(ProxyError::unsupported) == 1);
    CHECK(read_to_end(client) == ECONNRESET);
    CHECK(server.listener.awaiting_header() == 0);
    CHECK(server.handler.opens == 0);
    ::close(client);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a header that does not complete within proxy_timeout is reset as timeout") {
  const std::size_t fds = open_fd_count();
  {
    Server server(ProxyProtocol::any, 50ms);
    int silent = raw_connect(server.listener.port());
    int partial = raw_connect(server.listener.port());
    REQUIRE(silent >= 0);
    REQUIRE(partial >= 0);
    REQUIRE(write_all(partial, kV1.substr(0, 20)));
    auto start = Clock::now();
    REQUIRE(server.pump_until_refused(2));
    CHECK(ms_between(start, Clock::now()) >= 40);  // not before its time (tick and clock slack aside)
    CHECK(server.failures(ProxyError::timeout) == 2);
    CHECK(read_to_end(silent) == ECONNRESET);
    CHECK(read_to_end(partial) == ECONNRESET);
    CHECK(server.handler.opens == 0);
    ::close(silent);
    ::close(partial);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a peer that closes before its header is complete is counted as closed") {
  const std::size_t fds = open_fd_count();
  {
    Server server(ProxyProtocol::any);
    int half = raw_connect(server.listener.port());
    int reset = raw_connect(server.listener.port());
    int empty = raw_connect(server.listener.port());
    REQUIRE((half >= 0 && reset >= 0 && empty >= 0));
    REQUIRE(write_all(half, v2_header().substr(0, 14)));
    REQUIRE(pump_until(server.reactor, [&] { return server.listener.awaiting_header() == 3; }));
    ::shutdown(half, SHUT_WR);
    reset_close(reset);
    ::close(empty);
    REQUIRE(server.pump_until_refused(3));
    CHECK(server.failures(ProxyError::closed) == 3);
    CHECK(server.listener.awaiting_header() == 0);
    ::close(half);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a complete header followed by the client's FIN still opens, then closes as peer_closed") {
  const std::size_t fds = open_fd_count();
  {
    Server server(ProxyProtocol::v1);
    int client = raw_connect(server.listener.port());
    REQUIRE(client >= 0);
    REQUIRE(write_all(client, kV1 + frame(FrameType::data, "last words")));
    ::shutdown(client, SHUT_WR);
    CHECK(echo_of(server, client) == "last words");
    CHECK(pump_until(server.reactor, [&] { return server.handler.closed_with(CloseReason::peer_closed) == 1; }));
    CHECK(server.errors.empty());
    ::close(client);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("sockets awaiting their header count toward max_connections") {
  const std::size_t fds = open_fd_count();
  {
    Server server(ProxyProtocol::v1, 5s, 2);
    int first = raw_connect(server.listener.port());
    int second = raw_connect(server.listener.port());
    REQUIRE((first >= 0 && second >= 0));
    REQUIRE(pump_until(server.reactor, [&] { return server.listener.awaiting_header() == 2; }));
    int third = raw_connect(server.listener.port());
    REQUIRE(third >= 0);
    REQUIRE(pump_until(server.reactor, [&] { return server.listener.stats().shed_limit == 1; }));
    CHECK(read_to_end(third) == ECONNRESET);
    REQUIRE(write_all(first, kV1));
    REQUIRE(pump_until(server.reactor, [&] { return server.handler.opens == 1; }));
    CHECK(server.listener.awaiting_header() == 1);
    ::close(first);
    ::close(second);
    ::close(third);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("destroying the listener resets the sockets still awaiting their header") {
  const std::size_t fds = open_fd_count();
  int client = -1;
  {
    Server server(ProxyProtocol::v2);
    client = raw_connect(server.listener.port());
    REQUIRE(client >= 0);
    REQUIRE(write_all(client, v2_header().substr(0, 3)));
    REQUIRE(pump_until(server.reactor, [&] { return server.listener.awaiting_header() == 1; }));
  }
  CHECK(read_to_end(client) == ECONNRESET);
  ::close(client);
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a reused descriptor does not inherit the previous connection's proxied address") {
  const std::size_t fds = open_fd_count();
  {
    Reactor reactor;
    Recorder handler;
    Endpoint endpoint(reactor, handler, options(Side::server, 60s, 120s, PingMode::client));
    std::vector<std::string> seen;
    handler.open_hook = [&](Connection& c) { seen.push_back(to_string(c.peer_address())); };
    sockaddr_in listen_address{};
    int listening = raw_listen(4, &listen_address);
    REQUIRE(listening >= 0);
    uint16_t port = ntohs(listen_address.sin_port);

    int first_client = raw_connect(port);
    int fd = ::accept(listening, nullptr, nullptr);
    REQUIRE((first_client >= 0 && fd >= 0));
    REQUIRE(endpoint.adopt_proxied(fd, Address::parse("203.0.113.7:40000").ip()) != nullptr);
    int second_client = raw_connect(port, 0, "127.0.0.5");
    int accepted = ::accept(listening, nullptr, nullptr);
    REQUIRE((second_client >= 0 && accepted >= 0));

    handler.live.at(0)->close();  // reclaimed at once: the descriptor number is free again
    // Put the next connection on exactly that number, the way a kernel reuses descriptors.
    REQUIRE(::dup2(accepted, fd) == fd);
    ::close(accepted);
    REQUIRE(endpoint.adopt(fd) != nullptr);
    REQUIRE(seen.size() == 2);
    CHECK(seen[0] == "203.0.113.7:40000");
    CHECK(seen[1] == local_address(second_client));
    CHECK(seen[1].rfind("127.0.0.5:", 0) == 0);
    ::close(first_client);
    ::close(second_client);
    ::close(listening);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a listener with the PROXY protocol refuses a non-positive proxy_timeout") {
  Reactor reactor;
  Recorder handler;
  Endpoint endpoint(reactor, handler);
  ListenerOptions o;
  o.proxy_protocol = ProxyProtocol::v1;
  o.proxy_timeout = Duration::zero();
  CHECK_THROWS_AS(Listener(endpoint, o), std::invalid_argument);
}
