// The one-loop-per-thread rule (reactor.hpp): a registration, timer or connection call from a
// thread other than the loop's aborts with a message, every time, in builds without NDEBUG.
// Each misuse runs in a forked child, since it ends that process.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <thread>

#include "child.hpp"
#include "evwheel/connection.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/reactor.hpp"

namespace {

using namespace std::chrono_literals;

struct Ignore final : evwheel::IoHandler {
  void on_io(uint32_t) override {}
};

struct Outcome {
  int status = -1;     // child::wait's: exit code, 128 + signal, or -1 on timeout
  std::string stderr_text;
};

// Runs `body` in a forked child whose stderr goes to a pipe the parent reads.
template <class Body>
Outcome run_in_child(Body&& body) {
  int pipe_fds[2];
  REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
  pid_t pid = child::start([&] {
    ::dup2(pipe_fds[1], 2);
    ::signal(SIGABRT, SIG_DFL);  // doctest's crash handler would report from inside the child
    return body();
  });
  ::close(pipe_fds[1]);
  Outcome outcome;
  char chunk[512];
  for (ssize_t got; (got = ::read(pipe_fds[0], chunk, sizeof chunk)) > 0;)
    outcome.stderr_text.append(chunk, static_cast<std::size_t>(got));
  ::close(pipe_fds[0]);
  outcome.status = child::wait(pid);
  return outcome;
}

// Calls `misuse` on a new thread while `reactor` belongs to this one.
template <class Misuse>
int from_other_thread(Misuse&& misuse) {
  std::thread other(std::forward<Misuse>(misuse));
  other.join();
  return 0;  // reached only if the misuse went unnoticed
}

void check_caught(const Outcome& outcome) {
  INFO("child stderr: " << outcome.stderr_text);
  CHECK(outcome.status == 128 + SIGABRT);
  CHECK(outcome.stderr_text.find("but it belongs to thread") != std::string::npos);
  CHECK(outcome.stderr_text.find("only post() and stop() may be called from other threads") != std::string::npos);
}

}  // namespace

#ifndef NDEBUG

TEST_CASE("a descriptor registered from another thread than the loop's aborts with a message") {
  check_caught(run_in_child([] {
    evwheel::Reactor reactor;
    Ignore handler;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return 3;
    return from_other_thread([&] { reactor.add(fds[0], EPOLLIN, handler); });
  }));
}

TEST_CASE("a timer set from another thread than the loop's aborts with a message") {
  check_caught(run_in_child([] {
    evwheel::Reactor reactor;
    return from_other_thread([&] { reactor.run_after(1s, [] {}); });
  }));
}

TEST_CASE("a send on a connection from another thread than its loop's aborts with a message") {
  check_caught(run_in_child([] {
    evwheel::Reactor reactor;
    evwheel::ConnectionHandler handler;
    evwheel::EndpointOptions options;
    options.socket.no_delay = false;  // a socketpair is no TCP socket
    evwheel::Endpoint endpoint(reactor, handler, options);
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return 3;
    evwheel::Connection* connection = endpoint.adopt(pair[0]);
    if (!connection) return 4;
    return from_other_thread([&] { connection->send("hello"); });
  }));
}

TEST_CASE("a reactor run on another thread belongs to that thread: the creating thread may no longer register") {
  check_caught(run_in_child([] {
    evwheel::Reactor reactor;
    std::thread loop([&] { reactor.run(); });
    // run() takes the reactor over on its first iteration; post() is the sanctioned way in.
    std::atomic<bool> running{false};
    reactor.post([&] { running = true; });
    while (!running) std::this_thread::sleep_for(1ms);
    reactor.run_after(1s, [] {});  // the misuse: aborts this process
    reactor.stop();
    loop.join();
    return 0;
  }));
}

TEST_CASE("post() and stop() from another thread are allowed and run nothing off the loop") {
  Outcome outcome = run_in_child([] {
    evwheel::Reactor reactor;
    std::thread::id ran_on;
    from_other_thread([&] {
      reactor.post([&] { ran_on = std::this_thread::get_id(); });
      reactor.stop();
    });
    reactor.run_once(0ms);
    return ran_on == std::this_thread::get_id() ? 0 : 5;
  });
  INFO("child stderr: " << outcome.stderr_text);
  CHECK(outcome.status == 0);
}

#else

TEST_CASE("the loop-thread checks are compiled out with NDEBUG") {
  MESSAGE("SKIPPED: built with NDEBUG; the one-loop-per-thread checks are off");
}

#endif
