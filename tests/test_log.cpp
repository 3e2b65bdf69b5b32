// The logging hook: levels and the default sink, and each report the library makes through it
// (docs/service.md, "Logging"): callback and on_close exceptions, accept errors and paused accepting,
// connections shed for descriptors or at max_connections, socket errors, protocol-error and
// output-overflow closes, other closes, epoll_wait and timerfd_settime failures, and a
// descriptor removed after it was closed.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/log.hpp"
#include "child.hpp"
#include "evwheel/reactor.hpp"
#include "fd_count.hpp"
#include "loopback.hpp"

using namespace evwheel;
using namespace loopback;

namespace {

// Captures every message at `min_level` and above while alive, then restores the default sink.
struct CaptureLog {
  struct Entry {
    LogLevel level;
    std::string message;
  };
  std::vector<Entry> entries;

  explicit CaptureLog(LogLevel min_level = LogLevel::debug) {
    set_log_sink([this](LogLevel level, std::string_view message) { entries.push_back({level, std::string(message)}); },
                 min_level);
  }
  ~CaptureLog() { set_log_sink(nullptr); }

  // The messages at `level` containing `text`.
  std::size_t count(LogLevel level, const std::string& text) const {
    std::size_t n = 0;
    for (const Entry& entry : entries)
      if (entry.level == level && entry.message.find(text) != std::string::npos) ++n;
    return n;
  }
};

// What `body` writes to descriptor 2 (stderr), through a pipe.
template <class Body>
std::string stderr_of(Body&& body) {
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  int saved = ::dup(2);
  std::fflush(stderr);
  ::dup2(pipe_fds[1], 2);
  body();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  ::close(pipe_fds[1]);
  std::string out;
  char chunk[512];
  for (ssize_t got; (got = ::read(pipe_fds[0], chunk, sizeof chunk)) > 0;) out.append(chunk, static_cast<std::size_t>(got));
  ::close(pipe_fds[0]);
  return out;
}

// A loopback server whose handler is `handler`, and one raw client sending one data frame.
struct ServedFrame {
  Reactor reactor;
  Endpoint endpoint;
  Listener listener;
  int client;

  explicit ServedFrame(ConnectionHandler& handler)
      : endpoint(reactor, handler), listener(endpoint, ListenerOptions{}), client(raw_connect(listener.port())) {
    REQUIRE(client >= 0);
    REQUIRE(write_all(client, frame(FrameType::data, "x")));
  }
  ~ServedFrame() { ::close(client); }
};

// A loopback server recording what happens: endpoint and listener on their own reactor.
struct Served {
  Reactor reactor;
  Recorder handler;
  Endpoint endpoint;
  Listener listener;
  explicit Served(const EndpointOptions& options = {}, ListenerOptions listener_options = {})
      : endpoint(reactor, handler, options), listener(endpoint, std::move(listener_options)) {}
};

// The descriptors open now.
std::set<int> open_descriptors() {
  std::set<int> fds;
  for (int fd = 0; fd < 1024; ++fd)
    if (::fcntl(fd, F_GETFD) != -1) fds.insert(fd);
  return fds;
}

// The one descriptor opened since `before` whose /proc/self/fd link is `kind` (a reactor's
// "anon_inode:[eventpoll]" or "anon_inode:[timerfd]"); -1 if there is not exactly one.
int opened_since(const std::set<int>& before, const std::string& kind) {
  int found = -1;
  for (int fd : open_descriptors()) {
    if (before.count(fd)) continue;
    char link[PATH_MAX] = {};
    std::string path = "/proc/self/fd/" + std::to_string(fd);
    if (::readlink(path.c_str(), link, sizeof link - 1) <= 0 || kind != link) continue;
    if (found >= 0) return -1;
    found = fd;
  }
  return found;
}

}  // namespace

TEST_CASE("the default sink passes only errors, and writes them to stderr with their level") {
  set_log_sink(nullptr);
  CHECK(log_enabled(LogLevel::error));
  CHECK_FALSE(log_enabled(LogLevel::warning));
  CHECK_FALSE(log_enabled(LogLevel::debug));
  const std::size_t fds = open_fd_count();
  std::string written = stderr_of([] {
    log(LogLevel::warning, "not shown %d", 1);
    log(LogLevel::error, "shown %d", 2);
  });
  CHECK(written == "evwheel: error: shown 2\n");
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a sink gets the messages at its level and above, formatted, cut at kMaxLogMessage") {
  CaptureLog capture(LogLevel::warning);
  CHECK_FALSE(log_enabled(LogLevel::info));
  CHECK(log_enabled(LogLevel::warning));
  log(LogLevel::info, "dropped");
  log(LogLevel::warning, "fd %d: %s", 7, "kept");
  log(LogLevel::error, "%s", std::string(kMaxLogMessage + 100, 'a').c_str());
  REQUIRE(capture.entries.size() == 2);
  CHECK(capture.entries[0].level == LogLevel::warning);
  CHECK(capture.entries[0].message == "fd 7: kept");
  CHECK(capture.entries[1].message == std::string(kMaxLogMessage, 'a'));
  CHECK(std::string(to_string(LogLevel::warning)) == "warning");
}

TEST_CASE("a sink that throws loses its message and nothing else") {
  int calls = 0;
  set_log_sink([&](LogLevel, std::string_view) {
    ++calls;
    throw std::runtime_error("sink down");
  });
  log(LogLevel::error, "one");
  log(LogLevel::error, "two");
  set_log_sink(nullptr);
  CHECK(calls == 2);
}

TEST_CASE("an exception from on_message is logged with its what() and closes that connection") {
  const std::size_t fds = open_fd_count();
  {
    CaptureLog capture;
    Recorder handler;
    handler.message_hook = [](Connection&, std::string_view) { throw std::runtime_error("handler broke"); };
    ServedFrame served(handler);
    REQUIRE(pump_until(served.reactor, [&] { return !handler.closes.empty(); }));
    CHECK(handler.closes[0].reason == CloseReason::error);
    CHECK(capture.count(LogLevel::error, "exception in a callback: handler broke") == 1);
    CHECK(capture.count(LogLevel::warning, "closed: error") == 1);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("an exception from on_close is logged instead of vanishing") {
  const std::size_t fds = open_fd_count();
  {
    CaptureLog capture;
    Recorder handler;
    handler.message_hook = [](Connection& connection, std::string_view) { connection.close(); };
    handler.close_hook = [](Connection&, CloseReason) { throw std::logic_error("close hook broke"); };
    ServedFrame served(handler);
    REQUIRE(pump_until(served.reactor, [&] { return !handler.closes.empty(); }));
    CHECK(handler.closes[0].reason == CloseReason::local_close);
    CHECK(capture.count(LogLevel::error, "exception in on_close: close hook broke") == 1);
    CHECK(capture.count(LogLevel::debug, "closed: local close") == 1);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a listener logs each connection it sheds at max_connections") {
  const std::size_t fds = open_fd_count();
  {
    CaptureLog capture(LogLevel::info);
    ListenerOptions one;
    one.max_connections = 1;
    Served s({}, one);
    int first = raw_connect(s.listener.port());
    REQUIRE(pump_until(s.reactor, [&] { return s.handler.opens == 1; }));
    int second = raw_connect(s.listener.port());
    REQUIRE(pump_until(s.reactor, [&] { return s.listener.stats().shed_limit == 1; }));
    CHECK(capture.count(LogLevel::info, "shed a connection: max_connections (1) reached") == 1);
    ::close(first);
    ::close(second);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("removing a descriptor that was closed first is reported as a warning") {
  const std::size_t fds = open_fd_count();
  CaptureLog capture(LogLevel::warning);
  {
    Reactor reactor;
    struct Ignore final : IoHandler {
      void on_io(uint32_t) override {}
    } ignore;
    int fd = ::eventfd(0, EFD_CLOEXEC);
    REQUIRE(fd >= 0);
    reactor.add(fd, EPOLLIN, ignore);
    ::close(fd);
    reactor.remove(fd);
    CHECK_FALSE(reactor.registered(fd));
  }
  CHECK(capture.count(LogLevel::warning, "epoll_ctl(DEL)") == 1);
  CHECK(open_fd_count() == fds);
}

TEST_CASE("protocol-error and output-overflow closes are reported at info, other closes at debug") {
  const std::size_t fds = open_fd_count();
  {
    CaptureLog capture;
    EndpointOptions o = options(Side::server, 10s, 30s);
    o.high_water = 16 * 1024;
    o.max_output = 64 * 1024;
    Served s(o);
    int garbled = raw_connect(s.listener.port());
    int deaf = raw_connect(s.listener.port(), 4096);  // never reads
    REQUIRE((garbled >= 0 && deaf >= 0));
    REQUIRE(pump_until(s.reactor, [&] { return s.handler.live.size() == 2; }));
    REQUIRE(write_all(garbled, frame(static_cast<FrameType>(9), "?")));
    REQUIRE(pump_until(s.reactor, [&] { return s.handler.closed_with(CloseReason::protocol_error) == 1; }));
    Connection* quiet = s.handler.live.at(0);
    const std::string chunk(8 * 1024, 'z');
    for (int i = 0; i < 10'000 && s.handler.closed_with(CloseReason::output_overflow) == 0; ++i) quiet->send(chunk);
    REQUIRE(s.handler.closed_with(CloseReason::output_overflow) == 1);
    CHECK(capture.count(LogLevel::info, "closed: protocol error") == 1);
    CHECK(capture.count(LogLevel::info, "closed: output overflow") == 1);
    CHECK(capture.count(LogLevel::debug, "closed:") == 0);
    ::close(garbled);
    ::close(deaf);
  }
  CHECK(open_fd_count() == fds);
}

// A socket error other than a reset: the peer's window stays shut for longer than
// TCP_USER_TIMEOUT (SocketOptions::user_timeout), so the kernel gives up with ETIMEDOUT.
TEST_CASE("a connection closed by a socket error is reported as a warning with the error") {
  const std::size_t fds = open_fd_count();
  {
    CaptureLog capture(LogLevel::warning);
    EndpointOptions o = options(Side::server, 10s, 30s);
    o.socket.user_timeout = 200ms;
    Served s(o);
    int deaf = raw_connect(s.listener.port(), 4096);  // never reads: its window closes
    REQUIRE(deaf >= 0);
    REQUIRE(pump_until(s.reactor, [&] { return s.handler.live.size() == 1; }));
    Connection* c = s.handler.live[0];
    const std::string chunk(64 * 1024, 'z');
    while (c->queued() == 0) REQUIRE(c->send(chunk));  // the kernel's buffers are full
    REQUIRE(pump_until(s.reactor, [&] { return !s.handler.closes.empty(); }, 10s));
    CHECK(s.handler.closes[0].reason == CloseReason::error);
    CHECK(s.handler.closes[0].error == ETIMEDOUT);
    CHECK(capture.count(LogLevel::warning, "closed: error (" + std::string(std::strerror(ETIMEDOUT)) + ")") == 1);
    ::close(deaf);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("an accept error and the pause it causes are reported as errors") {
  const std::size_t fds = open_fd_count();
  {
    CaptureLog capture(LogLevel::error);
    ListenerOptions o;
    o.retry_after = 20ms;
    Served s({}, o);
    // A listening socket shut down for reading is no longer listening: accept says EINVAL.
    REQUIRE(::shutdown(s.listener.fd(), SHUT_RD) == 0);
    REQUIRE(pump_until(s.reactor, [&] { return s.listener.stats().pauses >= 2; }));
    CHECK(s.listener.stats().accept_errors >= 2);
    CHECK(s.listener.stats().last_error == EINVAL);
    CHECK(capture.count(LogLevel::error, "accept: " + std::string(std::strerror(EINVAL))) >= 2);
    CHECK(capture.count(LogLevel::error, "accepting paused for 20 ms (" + std::string(std::strerror(EINVAL)) + ")") >= 2);
  }
  CHECK(open_fd_count() == fds);
}

// In a child process: it lowers its own descriptor limit, which the test runner must keep.
TEST_CASE("a connection shed for lack of descriptors is reported as a warning, its accept failure as an error") {
  pid_t pid = child::start([] {
    CaptureLog capture(LogLevel::info);
    Served s(options(Side::server, 10s, 30s));
    Reactor& reactor = s.reactor;
    Listener& listener = s.listener;
    // A first client is served while descriptors are plentiful: every virtual call the server
    // makes has run once (UBSan's vptr check needs a pipe the first time it sees a type).
    int first = raw_connect(listener.port());
    if (first < 0 || !pump_until(reactor, [&] { return s.handler.opens == 1; })) return 2;
    // No free descriptor below the limit: the next accept fails with EMFILE.
    int lowest = ::dup(0);
    ::close(lowest);
    int second = raw_connect(listener.port());
    if (second < 0 || second != lowest) return 3;
    rlimit saved{}, tight{};
    ::getrlimit(RLIMIT_NOFILE, &saved);
    tight = saved;
    tight.rlim_cur = static_cast<rlim_t>(second);  // below `second` every number is taken
    if (::setrlimit(RLIMIT_NOFILE, &tight) != 0) return 4;
    bool shed = pump_until(reactor, [&] { return listener.stats().shed_descriptors == 1; });
    ::setrlimit(RLIMIT_NOFILE, &saved);
    bool warned = capture.count(LogLevel::warning, "shed a connection: out of descriptors") == 1;
    bool failed = capture.count(LogLevel::error, "accept: " + std::string(std::strerror(EMFILE))) >= 1;
    if (!(shed && warned && failed))
      for (const auto& entry : capture.entries) std::fprintf(stderr, "child log: %s: %s\n", to_string(entry.level), entry.message.c_str());
    ::close(first);
    ::close(second);
    return !shed ? 5 : !warned ? 6 : !failed ? 7 : 0;
  });
  REQUIRE(pid > 0);
  CHECK(child::wait(pid) == 0);  // 5: not shed, 6: no warning, 7: no accept error logged
}

TEST_CASE("an epoll_wait failure is reported as an error and still thrown") {
  const std::size_t fds = open_fd_count();
  {
    CaptureLog capture(LogLevel::error);
    const std::set<int> before = open_descriptors();
    Reactor reactor;
    int epoll = opened_since(before, "anon_inode:[eventpoll]");
    REQUIRE(epoll >= 0);
    // The reactor's epoll descriptor now names a file that is no epoll instance: EINVAL.
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    REQUIRE(::dup2(null, epoll) == epoll);
    ::close(null);
    CHECK_THROWS_AS(reactor.run_once(Duration::zero()), std::system_error);
    CHECK(capture.count(LogLevel::error, "evwheel: epoll_wait: " + std::string(std::strerror(EINVAL))) == 1);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a timerfd_settime failure is reported as an error and still thrown") {
  const std::size_t fds = open_fd_count();
  {
    CaptureLog capture(LogLevel::error);
    const std::set<int> before = open_descriptors();
    Reactor reactor;
    int timer = opened_since(before, "anon_inode:[timerfd]");
    REQUIRE(timer >= 0);
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    REQUIRE(::dup2(null, timer) == timer);
    ::close(null);
    reactor.run_after(1s, [] {});  // the loop arms its timerfd for it
    CHECK_THROWS_AS(reactor.run_once(Duration::zero()), std::system_error);
    CHECK(capture.count(LogLevel::error, "evwheel: timerfd_settime: " + std::string(std::strerror(EINVAL))) == 1);
  }
  CHECK(open_fd_count() == fds);
}
