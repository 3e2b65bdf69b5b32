// child_process — helper processes for the fault tests: a heartbeat server or a set of answering
// clients, each in a forked process of its own, so a test can stop it (SIGSTOP), starve it of
// descriptors (RLIMIT_NOFILE) or move it into another network namespace while the test process
// watches from outside.
//
// A child talks to the test over bench/common/command_pipe.hpp: one-byte commands in ('r'
// report, 'm' mute, 'q' quit), fixed-size Messages out (reports, and a client's opens and
// closes as they happen).  A child never returns into doctest: it ends with _exit, and the
// parent's Child object kills and reaps it whatever happens.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "evwheel/connection.hpp"
#include "evwheel/connector.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/reactor.hpp"
#include "../bench/common/command_pipe.hpp"
#include "fd_count.hpp"
#include "loopback.hpp"

namespace child {

using loopback::Clock;
using evwheel::Duration;
using namespace std::chrono_literals;

struct Message {
  char kind = 0;        // 'r' report, 'o' a client connection opened, 'c' one closed, 'x' failure
  uint8_t reason = 0;   // 'c': the CloseReason
  int32_t error = 0;    // 'c': the errno behind it
  int32_t port = 0;     // server: the listening port
  uint64_t open = 0;    // connections open now
  uint64_t accepted = 0, shed_descriptors = 0, shed_limit = 0, pauses = 0;
  uint64_t idle_closes = 0, pings_sent = 0, pongs_received = 0, pings_answered = 0;
  uint64_t closes[8] = {};  // by CloseReason
  uint64_t fds = 0;         // the child's open descriptors, or kUncounted (none left to count with)
  int64_t rss_kib = -1;     // the child's VmRSS
};
constexpr uint64_t kUncounted = UINT64_MAX;  // Message::fds when /proc/self/fd could not be read

inline uint64_t fds_or_uncounted() { return try_open_fd_count().value_or(kUncounted); }

inline int64_t rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, 6, "VmRSS:") == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}

inline void send_message(int fd, const Message& message) { command_pipe::send(fd, message); }

// The parent's handle on one forked child, keeping the opens and closes a client child reports
// between the answers the test asks for.
class Child : public command_pipe::ChildProcess<Message> {
 public:
  // Runs body(commands, messages) -> exit status in a forked process; a body that throws
  // sends a failure message ('x') first.
  template <class Body>
  explicit Child(Body body)
      : ChildProcess([body](int in, int out) {
          try {
            return body(in, out);
          } catch (...) {
            Message failed;
            failed.kind = 'x';
            send_message(out, failed);
            return 5;
          }
        }) {}

  // The next message of any kind, within `timeout`.
  bool next(Message& message, Duration timeout = 5s) { return ChildProcess::next(message, timeout); }
  // Asks for a report; opens and closes that arrive first are kept in events.
  bool report(Message& message, Duration timeout = 5s) {
    if (!command('r')) return false;
    auto deadline = Clock::now() + timeout;
    while (next(message, deadline - Clock::now())) {
      if (message.kind == 'r') return true;
      events.push_back(message);
    }
    return false;
  }
  // Collects the child's messages for `span` (events only are expected) into events.
  void collect(Duration span) {
    auto end = Clock::now() + span;
    Message message;
    while (Clock::now() < end && next(message, end - Clock::now())) events.push_back(message);
  }
  std::size_t count(char kind) const {
    std::size_t n = 0;
    for (const Message& m : events) n += m.kind == kind;
    return n;
  }

  std::vector<Message> events;
};

// --- the server child ---------------------------------------------------------------------------

struct ServerConfig {
  Duration interval = 50ms;   // P
  Duration idle = 150ms;      // I
  std::string address = "127.0.0.1:0";
  int backlog = 4096;
  long nofile = 0;            // RLIMIT_NOFILE soft limit for the child; 0 leaves it alone
};

// A report of the server child's state, sent for 'r'.
inline Message server_report(const evwheel::Endpoint& endpoint, const evwheel::Listener& listener) {
  Message r;
  r.kind = 'r';
  r.port = listener.port();
  r.open = endpoint.size();
  r.accepted = listener.stats().accepted;
  r.shed_descriptors = listener.stats().shed_descriptors;
  r.shed_limit = listener.stats().shed_limit;
  r.pauses = listener.stats().pauses;
  const auto& hb = endpoint.heartbeat_stats();
  r.idle_closes = hb.idle_closes;
  r.pings_sent = hb.pings_sent;
  r.pongs_received = hb.pongs_received;
  r.pings_answered = hb.pings_answered;
  for (int i = 0; i < 8; ++i) r.closes[i] = endpoint.stats().closes[i];
  r.fds = fds_or_uncounted();
  r.rss_kib = rss_kib();
  return r;
}

// The body of a server child: pings every P, closes a peer silent for I, reports on request.
// Sends one report as soon as it listens (so the test learns the port).
inline int run_server(const ServerConfig& config, int in, int out) {
  if (config.nofile > 0) {
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = static_cast<rlim_t>(config.nofile);
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) return 3;
  }
  evwheel::Reactor reactor;
  evwheel::ConnectionHandler quiet;
  evwheel::Endpoint endpoint(reactor, quiet, loopback::options(evwheel::Side::server, config.interval, config.idle));
  evwheel::ListenerOptions listener_options;
  listener_options.address = config.address;
  listener_options.backlog = config.backlog;
  evwheel::Listener listener(endpoint, listener_options);
  command_pipe::CommandReader commands(reactor, in, [&](char command) {
    if (command == 'r') send_message(out, server_report(endpoint, listener));
  });
  send_message(out, server_report(endpoint, listener));
  reactor.run();
  return 0;
}

// --- the client child ---------------------------------------------------------------------------

struct ClientConfig {
  std::string address;        // HOST:PORT of the server
  int conns = 1;
  // The client only answers pings; its own idle timeout is how long it tolerates a silent server.
  Duration interval = 1s;
  Duration idle = 10s;
  std::string netns;          // a path under /var/run/netns to enter first, or empty
};

// Tells the test about every open and close as it happens; 'm' pauses reading on the oldest
// open connection (it stays open but never answers again).
class ClientHandler final : public evwheel::ConnectionHandler {
 public:
  explicit ClientHandler(int out) : out_(out) {}
  void on_open(evwheel::Connection& connection) override {
    live_.push_back(&connection);
    Message m;
    m.kind = 'o';
    send_message(out_, m);
  }
  void on_close(evwheel::Connection& connection, evwheel::CloseReason reason, int error) override {
    live_.erase(std::remove(live_.begin(), live_.end(), &connection), live_.end());
    Message m;
    m.kind = 'c';
    m.reason = static_cast<uint8_t>(reason);
    m.error = error;
    send_message(out_, m);
  }
  void on_command(char command, const evwheel::Endpoint& endpoint) {
    if (command == 'm' && !live_.empty()) live_.front()->pause_reading();
    if (command == 'r') {
      Message r;
      r.kind = 'r';
      r.open = live_.size();
      r.pings_answered = endpoint.heartbeat_stats().pings_answered;
      r.fds = fds_or_uncounted();
      send_message(out_, r);
    }
  }

 private:
  int out_;
  std::vector<evwheel::Connection*> live_;
};

inline int run_clients(const ClientConfig& config, int in, int out) {
  if (!config.netns.empty()) {
    int ns = ::open(config.netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0 || ::setns(ns, CLONE_NEWNET) != 0) return 3;
    ::close(ns);
  }
  evwheel::Reactor reactor;
  ClientHandler handler(out);
  evwheel::Endpoint endpoint(reactor, handler, loopback::options(evwheel::Side::client, config.interval, config.idle));
  std::vector<std::unique_ptr<evwheel::Connector>> connectors;
  for (int i = 0; i < config.conns; ++i) {
    evwheel::ConnectorOptions o;
    o.address = config.address;
    connectors.push_back(std::make_unique<evwheel::Connector>(endpoint, o));
    connectors.back()->start();
  }
  command_pipe::CommandReader commands(reactor, in, [&](char command) { handler.on_command(command, endpoint); });
  reactor.run();
  return 0;
}

}  // namespace child
