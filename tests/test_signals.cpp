// Signals through a signalfd: SIGHUP reaches the hook and SIGTERM/SIGINT the terminate callback
// as loop callbacks (never inside a handler), and SIGTERM drives a graceful shutdown end to end.
// Every test that raises a signal does it in a forked child, away from the doctest process.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <stdexcept>
#include <string>
#include <thread>

#include "child.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/reactor.hpp"
#include "evwheel/shutdown.hpp"
#include "evwheel/signals.hpp"
#include "fd_count.hpp"
#include "loopback.hpp"

using namespace evwheel;
using namespace loopback;

TEST_CASE("signals: SIGHUP runs the hook and SIGTERM the terminate callback, on the loop, not at delivery") {
  pid_t pid = child::start([] {
    Reactor reactor;
    int hangups = 0, terminated = 0;
    Signals signals(reactor, [&](int signal) { terminated = signal; reactor.stop(); }, [&] { ++hangups; });
    ::kill(::getpid(), SIGHUP);
    if (hangups != 0) return 1;  // blocked: nothing ran at delivery
    for (int i = 0; i < 100 && hangups == 0; ++i) reactor.run_once(10ms);
    if (hangups != 1 || terminated != 0) return 2;
    ::kill(::getpid(), SIGTERM);
    reactor.run();  // ends through the terminate callback
    return hangups == 1 && terminated == SIGTERM ? 0 : 3;
  });
  REQUIRE(pid > 0);
  CHECK(child::wait(pid) == 0);
}

TEST_CASE("signals: SIGINT terminates too; without a hook SIGHUP is read and ignored; signals stay blocked afterwards") {
  pid_t pid = child::start([] {
    int terminated = 0;
    {
      Reactor reactor;
      Signals signals(reactor, [&](int signal) { terminated = signal; reactor.stop(); });
      ::kill(::getpid(), SIGHUP);
      for (int i = 0; i < 10; ++i) reactor.run_once(5ms);  // the process survives it
      ::kill(::getpid(), SIGINT);
      reactor.run();
    }
    if (terminated != SIGINT) return 1;
    sigset_t mask;
    pthread_sigmask(SIG_BLOCK, nullptr, &mask);
    return sigismember(&mask, SIGTERM) && sigismember(&mask, SIGINT) && sigismember(&mask, SIGHUP) ? 0 : 2;
  });
  REQUIRE(pid > 0);
  CHECK(child::wait(pid) == 0);
}

TEST_CASE("signals: SIGTERM to a server stops accepting, closes its connections with reason shutdown, and the loop ends") {
  const std::size_t fds = open_fd_count();
  int ports[2];
  REQUIRE(::pipe2(ports, O_CLOEXEC) == 0);
  pid_t pid = child::start([&] {
    ::close(ports[0]);
    Reactor reactor;
    Recorder recorder;
    Endpoint endpoint(reactor, recorder, options(Side::server, 20ms, 10s));
    Listener listener(endpoint, {});
    Shutdown shutdown(reactor);
    shutdown.add(listener);
    shutdown.add(endpoint);
    Signals signals(reactor, [&](int) { shutdown.start(2s, [&] { reactor.stop(); }); });
    uint16_t port = listener.port();
    if (::write(ports[1], &port, sizeof port) != sizeof port) return 1;
    reactor.run();
    return recorder.opens == 1 && recorder.closed_with(CloseReason::shutdown) == 1 ? 0 : 2;
  });
  REQUIRE(pid > 0);
  ::close(ports[1]);
  uint16_t port = 0;
  pollfd p{ports[0], POLLIN, 0};
  REQUIRE(::poll(&p, 1, 5000) == 1);
  REQUIRE(::read(ports[0], &port, sizeof port) == sizeof port);
  ::close(ports[0]);
  int client = raw_connect(port);
  REQUIRE(client >= 0);
  REQUIRE(first_word(client, [] { std::this_thread::sleep_for(2ms); }, 5s) == 1);  // served: pinged
  ::kill(pid, SIGTERM);
  CHECK(child::wait(pid) == 0);
  CHECK(read_to_end(client) == kEof);
  ::close(client);
  CHECK(open_fd_count() == fds);
}

TEST_CASE("signals: a Signals without a terminate callback is refused") {
  Reactor reactor;
  CHECK_THROWS_AS(Signals(reactor, nullptr), std::invalid_argument);
}
