// Listener over real loopback sockets: bind errors, max_connections shedding, and running out
// of descriptors (EMFILE) in a forked child whose RLIMIT_NOFILE is lowered, so the test
// runner's own limits are untouched.
#include <doctest/doctest.h>

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/reactor.hpp"
#include "../bench/common/command_pipe.hpp"
#include "fd_count.hpp"
#include "loopback.hpp"

using namespace evwheel;
using namespace loopback;

TEST_CASE("a second Listener on the same port without reuse_port throws std::system_error (EADDRINUSE)") {
  const std::size_t fds = open_fd_count();
  {
    Reactor reactor;
    Recorder handler;
    Endpoint endpoint(reactor, handler);
    Listener first(endpoint, ListenerOptions{});
    ListenerOptions again;
    again.address = "127.0.0.1:" + std::to_string(first.port());
    bool threw = false;
    try {
      Listener second(endpoint, again);
    } catch (const std::system_error& error) {
      threw = true;
      CHECK(error.code().value() == EADDRINUSE);
      CHECK(error.code().category() == std::generic_category());
    }
    CHECK(threw);
    // The first one still works.
    int peer = raw_connect(first.port());
    REQUIRE(peer >= 0);
    CHECK(pump_until(reactor, [&] { return handler.opens == 1; }));
    ::close(peer);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("two Listeners share a port when both set reuse_port") {
  const std::size_t fds = open_fd_count();
  {
    Reactor reactor;
    Recorder handler;
    Endpoint endpoint(reactor, handler);
    ListenerOptions o;
    o.reuse_port = true;
    Listener first(endpoint, o);
    o.address = "127.0.0.1:" + std::to_string(first.port());
    Listener second(endpoint, o);
    CHECK(second.port() == first.port());
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("max_connections sheds extra connections: their peers see a reset, shed_limit counts them") {
  const std::size_t fds = open_fd_count();
  {
    Reactor reactor;
    Recorder handler;
    // Pings every 20 ms tell a served peer apart; the idle timeout is out of the way.
    Endpoint endpoint(reactor, handler, options(Side::server, 20ms, 30s));
    ListenerOptions o;
    o.max_connections = 2;
    Listener listener(endpoint, o);
    auto pump = [&] { reactor.run_once(2ms); };

    std::vector<int> peers;
    for (int i = 0; i < 5; ++i) {
      peers.push_back(raw_connect(listener.port()));
      REQUIRE(peers.back() >= 0);
    }
    REQUIRE(pump_until(reactor, [&] { return listener.stats().accepted + listener.stats().shed_limit == 5; }));
    CHECK(listener.stats().accepted == 2);
    CHECK(listener.stats().shed_limit == 3);
    CHECK(listener.stats().shed_descriptors == 0);
    CHECK(endpoint.size() == 2);

    std::vector<int> served, shed;
    for (int fd : peers) {
      int word = first_word(fd, pump);
      REQUIRE(word >= 0);
      (word == 1 ? served : shed).push_back(fd);
    }
    CHECK(served.size() == 2);
    CHECK(shed.size() == 3);

    // A freed place is given to the next connection.
    REQUIRE(!served.empty());
    ::close(served.back());
    served.pop_back();
    REQUIRE(pump_until(reactor, [&] { return endpoint.size() == 1; }));
    int next = raw_connect(listener.port());
    REQUIRE(next >= 0);
    CHECK(first_word(next, pump) == 1);
    CHECK(listener.stats().accepted == 3);
    CHECK(listener.stats().shed_limit == 3);
    ::close(next);
    for (int fd : served) ::close(fd);
    for (int fd : shed) ::close(fd);
  }
  CHECK(open_fd_count() == fds);
}

// --- EMFILE, in a forked child ---------------------------------------------------------------

namespace {

// What the child reports through its pipe.
struct ChildReport {
  uint64_t accepted = 0;
  uint64_t shed_descriptors = 0;
  uint64_t pauses = 0;
  uint64_t open = 0;
  int64_t cpu_us = 0;  // getrusage(RUSAGE_SELF) user + system
  int32_t port = 0;
  int32_t ok = 0;
  int32_t last_error = 0;
};

int64_t cpu_us_self() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  auto us = [](const timeval& t) { return static_cast<int64_t>(t.tv_sec) * 1'000'000 + t.tv_usec; };
  return us(usage.ru_utime) + us(usage.ru_stime);
}

ChildReport report(const Endpoint& endpoint, const Listener& listener) {
  ChildReport r;
  r.accepted = listener.stats().accepted;
  r.shed_descriptors = listener.stats().shed_descriptors;
  r.pauses = listener.stats().pauses;
  r.open = endpoint.size();
  r.cpu_us = cpu_us_self();
  r.port = listener.port();
  r.ok = 1;
  r.last_error = listener.stats().last_error;
  return r;
}

constexpr int kChildRoom = 6;  // descriptors left for connections once the server is set up

// The server child: a report as soon as it listens, then one for each 'r'.  A child that
// cannot set itself up reports ok = 0.
int emfile_child(int in, int out) {
  // Room for the reactor (3), the listener and its reserve (2), and kChildRoom connections.
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = static_cast<rlim_t>(5 + 5 + kChildRoom);
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    command_pipe::send(out, ChildReport{});
    return 3;
  }
  try {
    Reactor reactor;
    ConnectionHandler quiet;
    // Served clients get a ping within 20 ms; nobody is closed for idleness during the test.
    Endpoint endpoint(reactor, quiet, options(Side::server, 20ms, 30s));
    Listener listener(endpoint, ListenerOptions{});
    command_pipe::CommandReader commands(reactor, in, [&](char command) {
      if (command == 'r') command_pipe::send(out, report(endpoint, listener));
    });
    command_pipe::send(out, report(endpoint, listener));
    reactor.run();
  } catch (...) {
    command_pipe::send(out, ChildReport{});
    return 4;
  }
  return 0;
}

}  // namespace

TEST_CASE("EMFILE: a server out of descriptors sheds without spinning and serves again once some close") {
  const std::size_t fds = open_fd_count();
  {
    command_pipe::ChildProcess<ChildReport> child(emfile_child);
    REQUIRE(child.started());
    auto read_report = [&](ChildReport& report) { return child.next(report, 5s) && report.ok; };
    auto ask = [&](ChildReport& report) { return child.command('r') && read_report(report); };
    auto no_pump = [] { std::this_thread::sleep_for(2ms); };
    std::vector<int> clients;

    ChildReport start;
    bool child_up = read_report(start);
    CHECK(child_up);
    if (child_up) {
      const auto port = static_cast<uint16_t>(start.port);
      // Warm-up while descriptors are plentiful: one client is served, talks, and leaves.  Besides
      // showing the child works, this runs every virtual call the child makes once, so UBSan's
      // vptr checks (which need a pipe, i.e. two free descriptors, on first sight of a type)
      // do not report false positives later under EMFILE.
      {
        int warm = raw_connect(port);
        REQUIRE(warm >= 0);
        CHECK(first_word(warm, no_pump) == 1);
        REQUIRE(write_all(warm, frame(FrameType::data, "hello") + frame(FrameType::pong, "")));
        ChildReport r;
        REQUIRE(ask(r));
        CHECK(r.open == 1);
        ::close(warm);
        auto deadline = Clock::now() + 3s;
        while (ask(r) && r.open != 0 && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
        CHECK(r.open == 0);
      }
      // More clients than the child has descriptors for.
      std::vector<int> served, shed;
      for (int i = 0; i < 30; ++i) {
        int fd = raw_connect(port);
        REQUIRE(fd >= 0);
        clients.push_back(fd);
      }
      for (int fd : clients) {
        int word = first_word(fd, no_pump);
        CHECK(word >= 0);
        (word == 1 ? served : shed).push_back(fd);
      }
      INFO("served " << served.size() << ", shed " << shed.size());
      CHECK(served.size() == static_cast<std::size_t>(kChildRoom));
      CHECK(shed.size() >= 1);

      // ~300 ms of waiting while new clients keep arriving at a full server: no spinning.
      ChildReport before, after;
      REQUIRE(ask(before));
      auto t1 = Clock::now();
      std::vector<int> late;
      for (int i = 0; i < 10; ++i) {
        int fd = raw_connect(port);
        REQUIRE(fd >= 0);
        clients.push_back(fd);
        late.push_back(fd);
        std::this_thread::sleep_for(30ms);
      }
      REQUIRE(ask(after));
      auto wall_us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t1).count();
      int64_t cpu_us = after.cpu_us - before.cpu_us;
      INFO("child cpu " << cpu_us << " us over " << wall_us << " us; pauses " << after.pauses
                        << ", last_error " << after.last_error);
      CHECK(cpu_us * 2 < wall_us);
      CHECK(after.shed_descriptors > 0);
      CHECK(after.shed_descriptors >= shed.size());
      for (int fd : late) CHECK(first_word(fd, no_pump) == 0);  // shed at once, not left pending

      // Free two places: new clients are served again.
      REQUIRE(served.size() >= 2);
      const uint64_t open_before = after.open;
      for (int i = 0; i < 2; ++i) {
        auto at = std::find(clients.begin(), clients.end(), served.back());
        ::close(served.back());
        clients.erase(at);
        served.pop_back();
      }
      ChildReport now;
      auto deadline = Clock::now() + 3s;
      while (ask(now) && now.open + 2 > open_before && Clock::now() < deadline)
        std::this_thread::sleep_for(5ms);
      CHECK(now.open + 2 == open_before);
      for (int i = 0; i < 2; ++i) {
        int fd = raw_connect(port);
        REQUIRE(fd >= 0);
        clients.push_back(fd);
        CHECK(first_word(fd, no_pump) == 1);
      }
    }

    CHECK(child.finish() == 0);
    for (int fd : clients) ::close(fd);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a listening socket in error pauses accepting without spinning the loop: one pause per retry_after") {
  Reactor reactor;
  Recorder handler;
  Endpoint endpoint(reactor, handler, options(Side::server, 10s, 30s));
  ListenerOptions o;
  o.retry_after = 50ms;
  Listener listener(endpoint, o);
  // Shut down for reading, the socket no longer listens: accept fails (EINVAL) and epoll
  // reports EPOLLHUP whatever interest is registered.
  REQUIRE(::shutdown(listener.fd(), SHUT_RD) == 0);
  reactor.update_now();
  const TimePoint start = reactor.now();
  REQUIRE(pump_until(reactor, [&] { return listener.stats().pauses >= 4; }));
  // Each pause lasts retry_after on the loop's own clock; a loop woken by the error over and
  // over would pile up the pauses within microseconds.
  CHECK(reactor.now() - start >= 3 * o.retry_after);
  CHECK(listener.stats().accept_errors == listener.stats().pauses);
}
