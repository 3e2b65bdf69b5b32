// Connection storms against a server in a forked child process (tests/child_process.hpp), so
// the server keeps its own loop running while this process connects as fast as it can, and
// its descriptor count and RSS are its own: a burst of connects far beyond the listen backlog,
// and a long run of connect-then-reset cycles.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "child_process.hpp"
#include "evwheel/codec.hpp"
#include "fd_count.hpp"
#include "loopback.hpp"

using namespace evwheel;
using namespace loopback;

namespace {

// A nonblocking socket whose connect to 127.0.0.1:port has begun; -1 on failure (errno set).
// TCP_SYNCNT 2 makes the kernel give up after 3 SYNs (~7 s, ETIMEDOUT) instead of ~2 minutes,
// and TCP_USER_TIMEOUT bounds unacknowledged data the same way, so an attempt the full backlog
// keeps dropping fails cleanly within the test's time.
int start_connect(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int syn_count = 2, user_timeout_ms = 8000;
  ::setsockopt(fd, IPPROTO_TCP, TCP_SYNCNT, &syn_count, sizeof syn_count);
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0 && errno != EINPROGRESS) {
    int error = errno;
    ::close(fd);
    errno = error;
    return -1;
  }
  return fd;
}

// One client of the burst: connecting, then waiting for the server's first ping.
struct Attempt {
  int fd = -1;
  bool connected = false;
  int outcome = 0;  // 0 pending, 1 served (a ping came), -1 failed cleanly
  int error = 0;
  std::string in;
};

// Moves an attempt on by what poll() said about it.
void advance(Attempt& a, short revents) {
  if (!a.connected) {
    if (!(revents & (POLLOUT | POLLERR | POLLHUP))) return;
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(a.fd, SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) {
      a.outcome = -1;
      a.error = error;
      return;
    }
    a.connected = true;
    // Speak first.  Past a full accept queue the server may hold no state for a connection
    // the client thinks is up (a SYN cookie, or a dropped final ACK): nothing would ever
    // happen on it.  Data is retransmitted until the server takes the connection (or the
    // user timeout fails it), so every attempt reaches an outcome.
    if (!write_all(a.fd, frame(FrameType::data, "hello"))) {
      a.outcome = -1;
      a.error = errno;
      return;
    }
  }
  int status = drain(a.fd, a.in);
  if (a.in.size() >= 5) {
    a.outcome = a.in[4] == static_cast<char>(FrameType::ping) ? 1 : -1;
  } else if (status != kOpen) {
    a.outcome = -1;
    a.error = status == kEof ? 0 : status;
  }
}

}  // namespace

TEST_CASE("a burst of 3000 connects against a backlog of 8: each is served or fails cleanly, the server keeps serving, descriptors flat") {
  const std::size_t fds = open_fd_count();
  {
    child::ServerConfig config;
    config.interval = 100ms;  // served clients hear a ping within 100 ms
    config.idle = 60s;        // and nobody is closed for not answering during the test
    config.backlog = 8;
    child::Child server([&](int in, int out) { return child::run_server(config, in, out); });
    REQUIRE(server.started());
    child::Message start;
    REQUIRE(server.next(start));
    REQUIRE(start.kind == 'r');
    REQUIRE(start.fds != child::kUncounted);
    const auto port = static_cast<uint16_t>(start.port);

    constexpr std::size_t kBurst = 3000;
    std::vector<Attempt> attempts(kBurst);
    for (Attempt& a : attempts) {
      a.fd = start_connect(port);
      if (a.fd < 0) {
        a.outcome = -1;
        a.error = errno;
      }
    }
    const auto began = Clock::now();
    std::vector<pollfd> polls;
    std::vector<Attempt*> polled;
    for (;;) {
      polls.clear();
      polled.clear();
      for (Attempt& a : attempts) {
        if (a.outcome != 0) continue;
        polls.push_back({a.fd, static_cast<short>(a.connected ? POLLIN : POLLOUT), 0});
        polled.push_back(&a);
      }
      if (polls.empty() || Clock::now() - began > 25s) break;
      ::poll(polls.data(), polls.size(), 10);
      for (std::size_t i = 0; i < polls.size(); ++i)
        if (polls[i].revents) advance(*polled[i], polls[i].revents);
    }
    std::size_t served = 0, failed = 0, pending = 0;
    std::map<int, std::size_t> errors;
    for (const Attempt& a : attempts) {
      served += a.outcome == 1;
      failed += a.outcome == -1;
      pending += a.outcome == 0;
      if (a.outcome == -1) ++errors[a.error];
    }
    std::string error_text;
    for (auto [error, n] : errors) error_text += " " + std::to_string(n) + " x errno " + std::to_string(error);
    INFO("served " << served << ", failed " << failed << " (" << error_text << " ), pending " << pending
                   << " after " << ms_between(began, Clock::now()) << " ms");
    CHECK(pending == 0);
    CHECK(served + failed == kBurst);
    CHECK(served > 0);
    for (auto [error, n] : errors) CHECK(error == ETIMEDOUT);  // the only clean failure here

    child::Message r;
    REQUIRE(server.report(r));
    CHECK(r.open == served);
    // The server still serves: a newcomer is pinged.
    int late = raw_connect(port);
    REQUIRE(late >= 0);
    CHECK(first_word(late, [] { std::this_thread::sleep_for(2ms); }) == 1);
    ::close(late);
    for (Attempt& a : attempts)
      if (a.fd >= 0) ::close(a.fd);
    // Every connection closed: the server is back to the descriptors it started with.
    auto deadline = Clock::now() + 10s;
    while (server.report(r) && r.open != 0 && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
    INFO("server RSS " << start.rss_kib << " -> " << r.rss_kib << " KiB");
    CHECK(r.open == 0);
    CHECK(r.fds == start.fds);
    CHECK(r.rss_kib - start.rss_kib < 4096);  // its tables for ~2000 descriptors, not per attempt
    CHECK(server.finish() == 0);
  }
  CHECK(open_fd_count() == fds);
}

namespace {

// connect() then close: with SO_LINGER 0 (the server sees a reset) unless `with_fin`.
bool connect_and_close(uint16_t port, bool with_fin) {
  int fd = raw_connect(port);
  if (fd < 0) return false;
  if (with_fin)
    ::close(fd);
  else
    reset_close(fd);
  return true;
}

// Runs `cycles` connect/close cycles, one in ten closed with a FIN; returns how many failed.
std::size_t churn(uint16_t port, std::size_t cycles) {
  std::size_t failures = 0;
  for (std::size_t i = 0; i < cycles; ++i) failures += !connect_and_close(port, i % 10 == 9);
  return failures;
}

// Waits until the server child has no connection open; its last report in *r.
bool server_idle(child::Child& server, child::Message* r) {
  auto deadline = Clock::now() + 10s;
  while (server.report(*r) && Clock::now() < deadline) {
    if (r->open == 0) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

}  // namespace

TEST_CASE("connect-reset cycles in a tight loop: the server's descriptors and RSS stay flat") {
  const std::size_t fds = open_fd_count();
  {
    child::ServerConfig config;
    config.interval = 1s;
    config.idle = 3s;
    child::Child server([&](int in, int out) { return child::run_server(config, in, out); });
    REQUIRE(server.started());
    child::Message start;
    REQUIRE(server.next(start));
    REQUIRE(start.kind == 'r');
    REQUIRE(start.fds != child::kUncounted);
    const auto port = static_cast<uint16_t>(start.port);

    // Warm-up: the connection table, the buffer pool and the allocator reach their working size.
    constexpr std::size_t kWarmUp = 10'000, kCycles = 90'000;
    CHECK(churn(port, kWarmUp) == 0);
    child::Message warm;
    REQUIRE(server_idle(server, &warm));
    const auto began = Clock::now();
    CHECK(churn(port, kCycles) == 0);
    const double churn_ms = ms_between(began, Clock::now());
    child::Message after;
    REQUIRE(server_idle(server, &after));
    const uint64_t closed = [&] {
      uint64_t n = 0;
      for (uint64_t c : after.closes) n += c;
      return n;
    }();
    INFO(kCycles << " cycles in " << churn_ms << " ms; accepted " << after.accepted << " in all, closes: reset "
                 << after.closes[static_cast<int>(CloseReason::reset)] << ", peer_closed "
                 << after.closes[static_cast<int>(CloseReason::peer_closed)] << "; RSS " << warm.rss_kib
                 << " -> " << after.rss_kib << " KiB; fds " << warm.fds << " -> " << after.fds);
    CHECK(after.fds == start.fds);
    CHECK(warm.fds == start.fds);
    CHECK(after.rss_kib - warm.rss_kib < 2048);
    CHECK(after.accepted > kCycles);  // most reach accept (some are reset in the queue first)
    CHECK(closed == after.accepted);
    CHECK(after.idle_closes == 0);
    CHECK(server.finish() == 0);
  }
  CHECK(open_fd_count() == fds);
}
