// proxy — what the PROXY protocol costs: ns per parse_proxy_header() call for each header kind,
// and loopback connections per second through a Listener with proxy_protocol off, v1 and v2.
//
// Parsing: each kind is parsed --parses times over the same bytes (a header followed by a data
// frame, as it sits in a socket), best of 3 runs; the sum of the lengths found is checked so
// the work cannot be discarded.
// Accepting: one thread, one reactor.  Rounds of 50 raw blocking clients connect, each writes
// its header (none when off) and one framed data frame in one write, the loop runs until the
// server has taken every frame, then the clients close with a reset (no TIME_WAIT to run out
// of ports) and the loop runs until the server has closed them all.  Connections per second
// and CPU time (client and server, one process) per connection over --conns connections, best
// of 3 runs interleaved across the modes: a loopback figure dominated by the kernel's TCP
// setup and teardown, so the difference between the columns is what the gate adds (a second
// epoll registration, a MSG_PEEK, a read of the header, a wheel timer).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "evwheel/codec.hpp"
#include "evwheel/connection.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/proxy_protocol.hpp"
#include "evwheel/reactor.hpp"
#include "common/system.hpp"
#include "modes.hpp"

namespace bench {

const char proxy_usage[] =
    "evwheel-bench proxy [--parses 1e6] [--conns 2000]\n"
    "    ns per PROXY header parse (v1 TCP4, v1 TCP6, v2 IPv4, v2 IPv4 with 100 bytes of TLVs,\n"
    "    a plain client refused at its first byte), and loopback connections/s through a\n"
    "    Listener with proxy_protocol off, v1 and v2 (connect, header + one frame, close), with\n"
    "    the CPU time per connection; best of 3 runs each.\n";

namespace {

using namespace std::chrono_literals;
constexpr int kRuns = 3;
constexpr std::size_t kRound = 50;  // clients connected at once

std::string data_frame() {
  return std::string{'\0', '\0', '\0', '\5', '\0'} + "hello";
}

std::string v2_ipv4(std::size_t tlv_bytes) {
  std::string tlvs;
  if (tlv_bytes >= 3) {
    std::size_t value = tlv_bytes - 3;
    tlvs = std::string{'\x20', static_cast<char>(value >> 8), static_cast<char>(value & 0xff)} + std::string(value, 'x');
  }
  std::size_t length = 12 + tlvs.size();
  std::string out("\r\n\r\n\0\r\nQUIT\n", 12);
  out += std::string{'\x21', '\x11', static_cast<char>(length >> 8), static_cast<char>(length & 0xff)};
  out += std::string{'\xcb', '\x00', '\x71', '\x07', '\xc6', '\x33', '\x64', '\x01', '\x9c', '\x40', '\x01', '\xbb'};
  return out + tlvs;
}

// Best-of-3 ns per parse of `bytes`; false if a run's checksum is not `count` times `expected`.
bool time_parses(const std::string& bytes, uint64_t count, std::size_t expected, double* best_ns) {
  *best_ns = 1e300;
  for (int run = 0; run < kRuns; ++run) {
    uint64_t sum = 0;
    int64_t start = sys::monotonic_ns();
    for (uint64_t i = 0; i < count; ++i) {
      // The view's size changes with i, so the call cannot be hoisted out of the loop.
      std::string_view view(bytes.data(), bytes.size() - (i & 1));
      evwheel::ProxyHeader header = evwheel::parse_proxy_header(view, evwheel::ProxyProtocol::any);
      sum += header.status == evwheel::ProxyHeader::Status::done ? header.length : 0;
    }
    int64_t elapsed = sys::monotonic_ns() - start;
    if (sum != count * expected) return false;
    *best_ns = std::min(*best_ns, static_cast<double>(elapsed) / static_cast<double>(count));
  }
  return true;
}

struct Counter final : evwheel::ConnectionHandler {
  uint64_t messages = 0;
  void on_message(evwheel::Connection&, std::string_view) override { ++messages; }
};

int connect_to(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

template <class Done>
bool run_until(evwheel::Reactor& reactor, Done&& done) {
  int64_t deadline = sys::monotonic_ns() + 10'000'000'000;
  while (!done()) {
    if (sys::monotonic_ns() > deadline) return false;
    reactor.run_once(10ms);
  }
  return true;
}

struct Cost {
  double wall_ns = 0;  // per connection
  double cpu_ns = 0;   // this process's user + system time per connection (client side included)
};

// What each connection costs through a listener taking `mode`, `bytes` written by each client;
// false on failure.
bool accept_cost(evwheel::ProxyProtocol mode, const std::string& bytes, uint64_t conns, Cost* cost) {
  evwheel::Reactor reactor;
  Counter counter;
  evwheel::EndpointOptions options;
  options.heartbeat.ping_interval = 60s;
  options.heartbeat.idle_timeout = 120s;
  evwheel::Endpoint endpoint(reactor, counter, options);
  evwheel::ListenerOptions listener_options;
  listener_options.proxy_protocol = mode;
  evwheel::Listener listener(endpoint, listener_options);
  int fds[kRound];
  int64_t start = sys::monotonic_ns(), start_cpu = sys::process_cpu_ns();
  for (uint64_t done = 0; done < conns; done += kRound) {
    uint64_t target = counter.messages + kRound;
    for (int& fd : fds) {
      fd = connect_to(listener.port());
      if (fd < 0 || ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size()))
        return false;
    }
    bool served = run_until(reactor, [&] { return counter.messages == target; });
    for (int fd : fds) {
      linger abort{1, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
      ::close(fd);
    }
    if (!served || !run_until(reactor, [&] { return endpoint.size() == 0; })) return false;
  }
  auto rounded = static_cast<double>((conns + kRound - 1) / kRound * kRound);
  cost->wall_ns = static_cast<double>(sys::monotonic_ns() - start) / rounded;
  cost->cpu_ns = static_cast<double>(sys::process_cpu_ns() - start_cpu) / rounded;
  return true;
}

}  // namespace

int run_proxy(int argc, char** argv) {
  uint64_t parses = 1'000'000, conns = 2000;
  cli::Parser parser = mode_parser("proxy", proxy_usage);
  parser.integer("--parses", &parses, uint64_t{1}, uint64_t{1'000'000'000});
  parser.integer("--conns", &conns, uint64_t{kRound}, uint64_t{1'000'000});
  if (std::optional<int> status = parser.parse(argc, argv)) return *status;
  print_header();
  const std::string frame = data_frame();
  struct Kind {
    const char* name;
    std::string header;
  };
  const Kind kinds[] = {
      {"v1 TCP4", "PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n"},
      {"v1 TCP6", "PROXY TCP6 2001:db8::1 2001:db8::2 40000 443\r\n"},
      {"v2 IPv4", v2_ipv4(0)},
      {"v2 IPv4 + 100 B TLVs", v2_ipv4(100)},
  };
  std::printf("\nparse_proxy_header, ns per call (best of %d runs of %s)\n", kRuns, format_count(parses).c_str());
  for (const Kind& kind : kinds) {
    double ns = 0;
    if (!time_parses(kind.header + frame, parses, kind.header.size(), &ns)) {
      std::fprintf(stderr, "evwheel-bench: proxy: %s did not parse\n", kind.name);
      return 1;
    }
    std::printf("  %-24s %3zu bytes  %7.1f ns\n", kind.name, kind.header.size(), ns);
  }
  double refused = 0;
  time_parses("GET / HTTP/1.1\r\n", parses, 0, &refused);
  std::printf("  %-24s %9s  %7.1f ns\n", "plain client (refused)", "", refused);

  std::printf("\nloopback connections through a Listener (best of %d interleaved runs of %s)\n", kRuns,
              format_count(conns).c_str());
  struct Mode {
    const char* name;
    evwheel::ProxyProtocol mode;
    std::string header;
  };
  const Mode modes[] = {
      {"off", evwheel::ProxyProtocol::off, ""},
      {"v1", evwheel::ProxyProtocol::v1, kinds[0].header},
      {"v2", evwheel::ProxyProtocol::v2, kinds[2].header},
  };
  // Interleaved, so a burst of load from elsewhere on the machine does not hit one mode only.
  Cost best[3];
  for (Cost& cost : best) cost = {1e300, 1e300};
  for (int run = 0; run < kRuns; ++run) {
    for (int m = 0; m < 3; ++m) {
      Cost cost;
      if (!accept_cost(modes[m].mode, modes[m].header + frame, conns, &cost)) {
        std::fprintf(stderr, "evwheel-bench: proxy: connections through '%s' did not complete\n", modes[m].name);
        return 1;
      }
      best[m].wall_ns = std::min(best[m].wall_ns, cost.wall_ns);
      best[m].cpu_ns = std::min(best[m].cpu_ns, cost.cpu_ns);
    }
  }
  for (int m = 0; m < 3; ++m)
    std::printf("  %-4s %9.0f conn/s  %6.1f us wall  %6.1f us CPU per connection\n", modes[m].name,
                1e9 / best[m].wall_ns, best[m].wall_ns / 1e3, best[m].cpu_ns / 1e3);
  return 0;
}

}  // namespace bench
