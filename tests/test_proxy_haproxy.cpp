// The PROXY protocol against a real HAProxy: a child `haproxy -db` with two frontends, one whose
// server line says send-proxy (v1) and one send-proxy-v2 (with a CRC32C TLV, which evwheel skips
// without checking), in front of two in-process evwheel
// listeners.  Clients connect through it from 127.0.0.5; the evwheel side must see that address
// (and the client's port) as the client, and framed pings, pongs and data must pass both ways.
// Skipped, with a message saying so, when no haproxy binary is installed; under CI=true that
// fails instead (.ci/run installs haproxy; see skip.hpp).
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "evwheel/address.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/proxy_protocol.hpp"
#include "evwheel/reactor.hpp"
#include "fd_count.hpp"
#include "loopback.hpp"
#include "programs.hpp"
#include "skip.hpp"

using namespace evwheel;
using namespace loopback;

namespace {

// One evwheel server behind HAProxy: pings every 30 ms, echoes data, records the client
// address each connection reports in on_open and the failures of its PROXY handshakes.
struct Backend {
  Recorder handler;
  Endpoint endpoint;
  Listener listener;
  std::vector<std::string> clients;

  Backend(Reactor& reactor, ProxyProtocol mode)
      : endpoint(reactor, handler, options(Side::server, 30ms, 10s)), listener(endpoint, listener_options(mode)) {
    handler.open_hook = [this](Connection& c) { clients.push_back(to_string(c.peer_address())); };
    handler.message_hook = [](Connection& c, std::string_view m) { c.send(m); };
  }
  static ListenerOptions listener_options(ProxyProtocol mode) {
    ListenerOptions o;
    o.proxy_protocol = mode;
    return o;
  }
  uint64_t failures() const {
    uint64_t sum = 0;
    for (uint64_t count : listener.stats().proxy_failures) sum += count;
    return sum;
  }
};

// A raw client of one frontend: answers pings with pongs, and remembers the data frames it got.
struct Client {
  int fd = -1;
  std::string in;
  std::vector<std::string> data;
  int pings = 0;

  void poll() {
    drain(fd, in);
    for (auto& [type, payload] : take_frames(in)) {
      if (type == FrameType::ping) {
        ++pings;
        write_all(fd, frame(FrameType::pong, payload));
      } else if (type == FrameType::data) {
        data.push_back(payload);
      }
    }
  }
};

}  // namespace

TEST_CASE("behind a real HAProxy (send-proxy and send-proxy-v2) the client address and framed traffic come through") {
  const std::string haproxy = programs::find("haproxy");
  if (haproxy.empty()) {
    skip::because("haproxy is not installed (apt-get install haproxy); the real-HAProxy PROXY protocol test did not run");
    return;
  }
  const std::size_t fds = open_fd_count();
  char dir_template[] = "/tmp/evwheel-haproxy-XXXXXX";
  REQUIRE(::mkdtemp(dir_template) != nullptr);
  const std::string dir = dir_template;
  const std::string config = dir + "/haproxy.cfg", log = dir + "/haproxy.log";
  {
    Reactor reactor;
    Backend v1(reactor, ProxyProtocol::v1);
    Backend v2(reactor, ProxyProtocol::v2);

    // The frontends' sockets are bound and listening here and handed over as fd@N: no port is
    // chosen and then raced for, and a client may connect before haproxy has even started.
    sockaddr_in front1{}, front2{};
    int front1_fd = raw_listen(16, &front1);
    int front2_fd = raw_listen(16, &front2);
    REQUIRE((front1_fd >= 0 && front2_fd >= 0));
    int first_free = std::max(front1_fd, front2_fd) + 1;
    std::vector<int> at = {first_free, first_free + 1};
    {
      std::ofstream out(config);
      out << "global\n    maxconn 64\n"
          << "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n"
          << "frontend fe_v1\n    bind fd@" << at[0] << "\n    default_backend be_v1\n"
          << "backend be_v1\n    server evwheel 127.0.0.1:" << v1.listener.port() << " send-proxy\n"
          << "frontend fe_v2\n    bind fd@" << at[1] << "\n    default_backend be_v2\n"
          << "backend be_v2\n    server evwheel 127.0.0.1:" << v2.listener.port()
          << " send-proxy-v2 proxy-v2-options crc32c\n";  // a TLV for the parser to skip
    }
    pid_t pid = programs::spawn_haproxy(haproxy, config, log, {front1_fd, front2_fd}, at);
    REQUIRE(pid > 0);
    struct Reap {  // a failed REQUIRE leaves no haproxy behind
      pid_t& pid;
      ~Reap() {
        if (pid <= 0) return;
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
    } reap{pid};
    ::close(front1_fd);  // haproxy has its own copies now
    ::close(front2_fd);

    Client c1, c2;
    c1.fd = raw_connect(ntohs(front1.sin_port), 0, "127.0.0.5");
    c2.fd = raw_connect(ntohs(front2.sin_port), 0, "127.0.0.5");
    REQUIRE((c1.fd >= 0 && c2.fd >= 0));
    REQUIRE(write_all(c1.fd, frame(FrameType::data, "through v1")));
    REQUIRE(write_all(c2.fd, frame(FrameType::data, "through v2")));

    bool through = pump_until(reactor, [&] {
      c1.poll();
      c2.poll();
      return c1.pings >= 2 && c2.pings >= 2 && !c1.data.empty() && !c2.data.empty() &&
             v1.endpoint.heartbeat_stats().pongs_received >= 2 && v2.endpoint.heartbeat_stats().pongs_received >= 2;
    }, 10s);
    if (!through)
      MESSAGE("client pings " << c1.pings << "/" << c2.pings << ", data " << c1.data.size() << "/" << c2.data.size()
              << ", server opens " << v1.handler.opens << "/" << v2.handler.opens << ", pongs "
              << v1.endpoint.heartbeat_stats().pongs_received << "/" << v2.endpoint.heartbeat_stats().pongs_received
              << ", refused " << v1.failures() << "/" << v2.failures() << ", awaiting "
              << v1.listener.awaiting_header() << "/" << v2.listener.awaiting_header() << "\nhaproxy output:\n"
              << programs::read_file(log));
    CHECK(through);
    REQUIRE(v1.clients.size() == 1);
    REQUIRE(v2.clients.size() == 1);
    CHECK(v1.clients[0] == local_address(c1.fd));  // 127.0.0.5 and the client's own port
    CHECK(v2.clients[0] == local_address(c2.fd));
    CHECK(v1.clients[0].rfind("127.0.0.5:", 0) == 0);
    CHECK(c1.data == std::vector<std::string>{"through v1"});
    CHECK(c2.data == std::vector<std::string>{"through v2"});
    CHECK(v1.failures() + v2.failures() == 0);

    // Killing haproxy closes both of its sides.  The kernel sends a FIN, or a reset when bytes
    // (a ping, a pong) were still unread in haproxy's socket: either way the peer is gone.
    REQUIRE(::kill(pid, SIGKILL) == 0);
    int status = 0;
    CHECK(::waitpid(pid, &status, 0) == pid);  // SIGKILL: it cannot linger
    pid = -1;
    CHECK(pump_until(reactor, [&] { return v1.endpoint.size() == 0 && v2.endpoint.size() == 0; }));
    for (Backend* backend : {&v1, &v2}) {
      CHECK(backend->handler.closes.size() == 1);
      CHECK(backend->handler.closed_with(CloseReason::peer_closed) + backend->handler.closed_with(CloseReason::reset) == 1);
    }
    for (int fd : {c1.fd, c2.fd}) {
      int end = read_to_end(fd);
      CHECK((end == kEof || end == ECONNRESET));
    }
    ::close(c1.fd);
    ::close(c2.fd);
  }
  ::unlink(config.c_str());
  ::unlink(log.c_str());
  CHECK(::rmdir(dir.c_str()) == 0);
  CHECK(open_fd_count() == fds);
}
