// The logging hook: levels and the default sink, and what the library reports through it —
// callback and on_close exceptions, listener shedding, epoll misuse.
#include <doctest/doctest.h>

#include <sys/eventfd.h>
#include <unistd.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/log.hpp"
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
    Reactor reactor;
    Recorder handler;
    Endpoint endpoint(reactor, handler);
    ListenerOptions options;
    options.max_connections = 1;
    Listener listener(endpoint, options);
    int first = raw_connect(listener.port());
    REQUIRE(pump_until(reactor, [&] { return handler.opens == 1; }));
    int second = raw_connect(listener.port());
    REQUIRE(pump_until(reactor, [&] { return listener.stats().shed_limit == 1; }));
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
