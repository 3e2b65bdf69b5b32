// ReactorPool: reactors on their own threads sharing a port through SO_REUSEPORT, cross-reactor
// posting, CPU pinning, signal masks, failures in setup and in a loop, and pool-wide graceful
// shutdown.
#include <doctest/doctest.h>

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/reactor_pool.hpp"
#include "fd_count.hpp"
#include "loopback.hpp"

using namespace evwheel;
using namespace loopback;

namespace {

// Counts what happens on one reactor; read from the test thread, hence atomics.
struct Counter : ConnectionHandler {
  std::atomic<int> opens{0};
  std::atomic<int> shutdown_closes{0};
  void on_open(Connection&) override { ++opens; }
  void on_close(Connection&, CloseReason reason, int) override {
    if (reason == CloseReason::shutdown) ++shutdown_closes;
  }
};

// One reactor's heartbeat service: pings every 20 ms, registered for graceful shutdown.
struct Service {
  Endpoint endpoint;
  Listener listener;
  Service(Reactor& reactor, Counter& counter, Shutdown& shutdown, const std::string& address)
      : endpoint(reactor, counter, options(Side::server, 20ms, 10s)),
        listener(endpoint, [&] {
          ListenerOptions o;
          o.address = address;
          o.reuse_port = true;
          return o;
        }()) {
    shutdown.add(listener);
    shutdown.add(endpoint);
  }
};

// Waits (poll, no reactor) until a ping frame arrives on `fd`; false on EOF, error or timeout.
bool saw_ping(int fd, Duration timeout = 3s) {
  std::string bytes;
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (drain(fd, bytes) != kOpen) return false;
    for (auto& f : take_frames(bytes))
      if (f.first == FrameType::ping) return true;
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 10);
  }
  return false;
}

// pool.join() within 10 s, rethrowing what it throws.  A pool whose loops do not end fails the
// test and ends the run: its threads use this test's objects, so the test cannot go on.
void join_within(ReactorPool& pool, Duration limit = 10s) {
  auto joined = std::async(std::launch::async, [&pool] { pool.join(); });
  if (joined.wait_for(limit) != std::future_status::ready) {
    FAIL_CHECK("ReactorPool::join() did not return within 10 s");
    std::fflush(nullptr);
    std::abort();
  }
  joined.get();
}

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  REQUIRE(sched_getaffinity(0, sizeof set, &set) == 0);
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  return cpus;
}

}  // namespace

TEST_CASE("pool: two reactors accept on one port (SO_REUSEPORT), both serve heartbeats, and shut down gracefully") {
  const std::size_t fds = open_fd_count();
  {
    Counter counters[2];
    uint16_t port = 0;  // found by reactor 0's setup, used by reactor 1's (setups run in order)
    ReactorPoolOptions two;
    two.reactors = 2;
    ReactorPool pool(two, [&](Reactor& reactor, Shutdown& shutdown, std::size_t index) {
      auto service = std::make_shared<Service>(reactor, counters[index], shutdown,
                                               "127.0.0.1:" + std::to_string(port));
      if (index == 0) port = service->listener.port();
      return service;
    });
    REQUIRE(pool.size() == 2);
    // SO_REUSEPORT hashes each connection to one listener: connect until both have some.
    std::vector<int> clients;
    while (clients.size() < 200 && (counters[0].opens == 0 || counters[1].opens == 0)) {
      int fd = raw_connect(port);
      REQUIRE(fd >= 0);
      clients.push_back(fd);
      auto deadline = Clock::now() + 3s;
      while (counters[0].opens + counters[1].opens < static_cast<int>(clients.size()) && Clock::now() < deadline)
        std::this_thread::sleep_for(1ms);
    }
    INFO("clients " << clients.size() << ", reactor 0 " << counters[0].opens << ", reactor 1 " << counters[1].opens);
    CHECK(counters[0].opens > 0);
    CHECK(counters[1].opens > 0);
    for (int fd : clients) CHECK(saw_ping(fd));

    pool.shutdown(2s);
    join_within(pool);
    CHECK(counters[0].shutdown_closes + counters[1].shutdown_closes == static_cast<int>(clients.size()));
    for (int fd : clients) {
      CHECK(read_to_end(fd) == kEof);
      ::close(fd);
    }
    errno = 0;
    CHECK(raw_connect(port) < 0);  // both listeners are closed
    CHECK(errno == ECONNREFUSED);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("pool: tasks posted to a reactor run on its thread, in posting order, also when posted from another reactor") {
  const std::size_t fds = open_fd_count();
  {
    ReactorPoolOptions two;
    two.reactors = 2;
    ReactorPool pool(two, [](Reactor&, Shutdown&, std::size_t) { return nullptr; });
    std::thread::id target;
    std::promise<void> known;
    pool.post(1, [&] {
      target = std::this_thread::get_id();
      known.set_value();
    });
    REQUIRE(known.get_future().wait_for(5s) == std::future_status::ready);
    CHECK((target != std::this_thread::get_id()));

    std::vector<int> seen;  // touched by reactor 1 only
    bool on_target = true;
    auto record = [&](int i) {
      return [&, i] {
        seen.push_back(i);
        on_target = on_target && std::this_thread::get_id() == target;
      };
    };
    std::promise<void> finished;
    for (int i = 0; i < 500; ++i) pool.post(1, record(i));
    pool.post(0, [&] {
      for (int i = 500; i < 1000; ++i) pool.post(1, record(i));
      pool.post(1, [&] { finished.set_value(); });
    });
    REQUIRE(finished.get_future().wait_for(5s) == std::future_status::ready);
    REQUIRE(seen.size() == 1000);
    bool in_order = true;
    for (int i = 0; i < 1000; ++i) in_order = in_order && seen[static_cast<std::size_t>(i)] == i;
    CHECK(in_order);
    CHECK(on_target);
    CHECK_THROWS_AS(pool.post(2, [] {}), std::out_of_range);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("pool: with pinning each thread runs on exactly its CPU; bad CPUs are refused; the default is one per CPU") {
  std::vector<int> allowed = allowed_cpus();
  ReactorPoolOptions o;
  o.reactors = 3;
  o.pin = true;
  std::vector<cpu_set_t> seen(3);
  {
    ReactorPool pool(o, [&](Reactor&, Shutdown&, std::size_t index) {
      sched_getaffinity(0, sizeof seen[index], &seen[index]);
      return nullptr;
    });
  }
  for (std::size_t i = 0; i < 3; ++i) {
    int expected = allowed[i % allowed.size()];
    INFO("thread " << i << " expected on CPU " << expected);
    CHECK(CPU_COUNT(&seen[i]) == 1);
    CHECK(CPU_ISSET(expected, &seen[i]));
  }
  CHECK(allowed_cpus() == allowed);  // the creating thread is not pinned

  auto none = [](Reactor&, Shutdown&, std::size_t) { return nullptr; };
  o.cpus = {CPU_SETSIZE - 1};
  CHECK_THROWS_AS(ReactorPool(o, none), std::invalid_argument);
  o.cpus = {-1};
  CHECK_THROWS_AS(ReactorPool(o, none), std::invalid_argument);
  CHECK_THROWS_AS(ReactorPool({}, nullptr), std::invalid_argument);
  CHECK(ReactorPool({}, none).size() == allowed.size());
}

TEST_CASE("pool: threads start with every signal blocked, and the creating thread's mask is unchanged") {
  sigset_t before, after;
  pthread_sigmask(SIG_BLOCK, nullptr, &before);
  std::vector<sigset_t> masks(2);
  {
    ReactorPoolOptions two;
    two.reactors = 2;
    ReactorPool pool(two, [&](Reactor&, Shutdown&, std::size_t index) {
      pthread_sigmask(SIG_BLOCK, nullptr, &masks[index]);
      return nullptr;
    });
  }
  pthread_sigmask(SIG_BLOCK, nullptr, &after);
  for (const sigset_t& mask : masks)
    for (int signal : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD}) CHECK(sigismember(&mask, signal) == 1);
  for (int signal : {SIGTERM, SIGINT, SIGHUP, SIGUSR1})
    CHECK(sigismember(&after, signal) == sigismember(&before, signal));
}

TEST_CASE("pool: a setup that throws fails the constructor after the started threads are stopped and their services destroyed") {
  const std::size_t fds = open_fd_count();
  std::atomic<int> destroyed{0};
  struct Owned {
    explicit Owned(std::atomic<int>& counter) : destroyed(counter) {}
    ~Owned() { ++destroyed; }
    std::atomic<int>& destroyed;
  };
  ReactorPoolOptions o;
  o.reactors = 3;
  CHECK_THROWS_WITH_AS(ReactorPool(o, [&](Reactor&, Shutdown&, std::size_t index) {
                         if (index == 1) throw std::runtime_error("setup failed");
                         return std::make_shared<Owned>(destroyed);
                       }),
                       "setup failed", std::runtime_error);
  CHECK(destroyed == 1);  // reactor 0's; reactor 2 was never started
  CHECK(open_fd_count() == fds);
}

TEST_CASE("pool: stop() ends the loops and destroys each service on its own thread; join() reports a loop that threw") {
  const std::size_t fds = open_fd_count();
  {
    std::thread::id made[2], destroyed[2];
    struct Owned {
      explicit Owned(std::thread::id& where) : destroyed(where) {}
      ~Owned() { destroyed = std::this_thread::get_id(); }
      std::thread::id& destroyed;
    };
    ReactorPoolOptions two;
    two.reactors = 2;
    ReactorPool pool(two, [&](Reactor&, Shutdown&, std::size_t index) {
      made[index] = std::this_thread::get_id();
      return std::make_shared<Owned>(destroyed[index]);
    });
    std::promise<void> throwing;
    auto thrown = throwing.get_future();
    pool.post(0, [&throwing] {
      throwing.set_value();
      throw std::runtime_error("task failed");
    });
    REQUIRE(thrown.wait_for(10s) == std::future_status::ready);  // stop() comes after it
    pool.stop();
    CHECK_THROWS_WITH_AS(join_within(pool), "task failed", std::runtime_error);
    CHECK_NOTHROW(join_within(pool));
    for (int i = 0; i < 2; ++i) {
      CHECK((destroyed[i] == made[i]));
      CHECK((made[i] != std::this_thread::get_id()));
    }
  }
  CHECK(open_fd_count() == fds);
}
