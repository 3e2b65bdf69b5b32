// Prefork: worker processes sharing a port through SO_REUSEPORT under a supervising parent that
// forwards SIGTERM and reports exit statuses; no restarts; pinning; bad options.  The
// supervisor is itself a forked child, so the doctest process never forks workers or blocks
// signals.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "child.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/prefork.hpp"
#include "evwheel/reactor.hpp"
#include "evwheel/shutdown.hpp"
#include "evwheel/signals.hpp"
#include "fd_count.hpp"
#include "loopback.hpp"

using namespace evwheel;
using namespace loopback;

namespace {

// Greets each connection with the worker's pid, so a client knows which worker it reached.
struct Greeter : ConnectionHandler {
  void on_open(Connection& connection) override { connection.send(std::to_string(::getpid())); }
};

// A worker: a reactor serving `port` until SIGTERM, then a graceful shutdown; exit status 0.
int serve(uint16_t port) {
  Reactor reactor;
  Greeter greeter;
  Endpoint endpoint(reactor, greeter, options(Side::server, 10s, 30s));
  ListenerOptions listen;
  listen.address = "127.0.0.1:" + std::to_string(port);
  listen.reuse_port = true;
  Listener listener(endpoint, listen);
  Shutdown shutdown(reactor);
  shutdown.add(listener);
  shutdown.add(endpoint);
  Signals signals(reactor, [&](int) { shutdown.start(2s, [&] { reactor.stop(); }); });
  reactor.run();
  return 0;
}

// A bound (not listening) SO_REUSEPORT socket holding a free port for the workers; -1 on failure.
int reserve_port(uint16_t* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (fd < 0 || ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
      ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) < 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  *port = ntohs(address.sin_port);
  return fd;
}

// The first data frame on `fd` (the greeting), or "" after 3 s.
std::string greeting(int fd) {
  std::string bytes;
  auto deadline = Clock::now() + 3s;
  while (Clock::now() < deadline) {
    if (drain(fd, bytes) != kOpen) return "";
    auto frames = take_frames(bytes);
    if (!frames.empty()) return frames[0].second;
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 10);
  }
  return "";
}

}  // namespace

TEST_CASE("prefork: two workers accept on one port; SIGTERM to the parent shuts both down gracefully, all exit 0") {
  const std::size_t fds = open_fd_count();
  uint16_t port = 0;
  int reserved = reserve_port(&port);
  REQUIRE(reserved >= 0);
  int pid_pipe[2];
  REQUIRE(::pipe2(pid_pipe, O_CLOEXEC) == 0);
  pid_t supervisor = child::start([&] {
    ::close(pid_pipe[0]);
    Prefork workers({}, [&](std::size_t) { return serve(port); });
    pid_t pids[2] = {workers.pids()[0], workers.pids()[1]};
    if (::write(pid_pipe[1], pids, sizeof pids) != sizeof pids) return 1;
    std::vector<WorkerExit> exits = workers.wait();
    for (const WorkerExit& exit : exits)
      if (!exit.clean()) return 10 + static_cast<int>(exit.index);
    return exits.size() == 2 ? 0 : 2;
  });
  REQUIRE(supervisor > 0);
  ::close(pid_pipe[1]);
  pid_t pids[2] = {0, 0};
  pollfd p{pid_pipe[0], POLLIN, 0};
  REQUIRE(::poll(&p, 1, 5000) == 1);
  REQUIRE(::read(pid_pipe[0], pids, sizeof pids) == sizeof pids);
  ::close(pid_pipe[0]);

  // Connect until both workers have greeted someone (SO_REUSEPORT spreads connections by hash).
  std::vector<int> clients;
  std::set<std::string> greeters;
  while (clients.size() < 200 && greeters.size() < 2) {
    int fd = raw_connect(port);
    if (fd < 0) {  // a worker may not be listening yet
      std::this_thread::sleep_for(5ms);
      continue;
    }
    clients.push_back(fd);
    greeters.insert(greeting(fd));
  }
  CHECK(greeters == std::set<std::string>{std::to_string(pids[0]), std::to_string(pids[1])});

  ::kill(supervisor, SIGTERM);
  CHECK(child::wait(supervisor) == 0);
  for (pid_t pid : pids) {
    errno = 0;
    CHECK(::kill(pid, 0) == -1);  // reaped by the supervisor: gone
    CHECK(errno == ESRCH);
  }
  for (int fd : clients) {
    CHECK(read_to_end(fd) == kEof);
    ::close(fd);
  }
  ::close(reserved);
  CHECK(open_fd_count() == fds);
}

TEST_CASE("prefork: a worker that fails is reported, not restarted; the others serve until SIGTERM") {
  uint16_t port = 0;
  int reserved = reserve_port(&port);
  REQUIRE(reserved >= 0);
  pid_t supervisor = child::start([&] {
    Prefork workers({}, [&](std::size_t index) { return index == 0 ? 3 : serve(port); });
    std::vector<WorkerExit> exits = workers.wait();
    bool first_failed = WIFEXITED(exits[0].status) && WEXITSTATUS(exits[0].status) == 3;
    return exits.size() == 2 && workers.pids().size() == 2 && first_failed && exits[1].clean() ? 0 : 1;
  });
  REQUIRE(supervisor > 0);
  // The surviving worker still serves after the other one has failed.
  std::string greeted;
  for (int attempt = 0; attempt < 200 && greeted.empty(); ++attempt) {
    int fd = raw_connect(port);
    if (fd >= 0) {
      greeted = greeting(fd);
      ::close(fd);
    } else {
      std::this_thread::sleep_for(5ms);
    }
  }
  CHECK_FALSE(greeted.empty());
  ::kill(supervisor, SIGTERM);
  CHECK(child::wait(supervisor) == 0);
  ::close(reserved);
}

TEST_CASE("prefork: pinned workers each run on exactly their CPU") {
  pid_t supervisor = child::start([] {
    cpu_set_t allowed;
    sched_getaffinity(0, sizeof allowed, &allowed);
    std::vector<int> cpus;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
      if (CPU_ISSET(cpu, &allowed)) cpus.push_back(cpu);
    PreforkOptions options;
    options.workers = 3;
    options.pin = true;
    Prefork workers(options, [&](std::size_t index) {
      cpu_set_t mine;
      sched_getaffinity(0, sizeof mine, &mine);
      return CPU_COUNT(&mine) == 1 && CPU_ISSET(cpus[index % cpus.size()], &mine) ? 0 : 5;
    });
    for (const WorkerExit& exit : workers.wait())
      if (!exit.clean()) return 1;
    return 0;
  });
  REQUIRE(supervisor > 0);
  CHECK(child::wait(supervisor) == 0);
}

TEST_CASE("prefork: bad options are refused before anything is forked") {
  auto worker = [](std::size_t) { return 0; };
  PreforkOptions options;
  options.workers = 0;
  CHECK_THROWS_AS(Prefork(options, worker), std::invalid_argument);
  options.workers = 1;
  options.pin = true;
  options.cpus = {CPU_SETSIZE - 1};
  CHECK_THROWS_AS(Prefork(options, worker), std::invalid_argument);
  CHECK_THROWS_AS(Prefork(PreforkOptions{}, nullptr), std::invalid_argument);
}
