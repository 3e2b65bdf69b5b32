// child_process — helper processes for the fault tests: a heartbeat server or a set of answering
// clients, each in a forked process of its own, so a test can stop it (SIGSTOP), starve it of
// descriptors (RLIMIT_NOFILE) or move it into another network namespace while the test process
// watches from outside.
//
// A child talks to the test over two pipes: one-byte commands in ('r' report, 'm' mute, 'q'
// quit), fixed-size Messages out (reports, and a client's opens and closes as they happen).
// Messages are smaller than PIPE_BUF, so each write arrives whole.  A child never returns into
// doctest: it ends with _exit, and the parent's Child object kills and reaps it whatever happens.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "evwheel/connection.hpp"
#include "evwheel/connector.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/reactor.hpp"
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
static_assert(sizeof(Message) < PIPE_BUF, "one write, one message");
constexpr uint64_t kUncounted = UINT64_MAX;  // Message::fds when /proc/self/fd could not be read

inline uint64_t fds_or_uncounted() { return try_open_fd_count().value_or(kUncounted); }

inline int64_t rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, 6, "VmRSS:") == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}

inline void send_message(int fd, const Message& message) {
  [[maybe_unused]] auto n = ::write(fd, &message, sizeof message);
}

// In the child: keeps 0, 1, 2 and the two pipe ends (moved to 3 and 4), closes the rest, so
// the child holds none of the test's sockets and its descriptor count is its own.
inline void keep_only_pipes(int& in, int& out) {
  int high_in = ::fcntl(in, F_DUPFD_CLOEXEC, 600), high_out = ::fcntl(out, F_DUPFD_CLOEXEC, 600);
  std::vector<int> open;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (dirent* entry = ::readdir(dir))
      if (entry->d_name[0] != '.' && std::atoi(entry->d_name) != ::dirfd(dir)) open.push_back(std::atoi(entry->d_name));
    ::closedir(dir);
  }
  for (int fd : open)
    if (fd > 2 && fd != high_in && fd != high_out) ::close(fd);
  in = ::dup3(high_in, 3, O_CLOEXEC);
  out = ::dup3(high_out, 4, O_CLOEXEC);
  ::close(high_in);
  ::close(high_out);
}

// The parent's handle on one forked child.  The destructor kills (SIGKILL) and reaps a child
// that has not finished, so a failed REQUIRE leaves no process behind.
class Child {
 public:
  // Runs body(commands, messages) -> exit status in a forked process.
  template <class Body>
  explicit Child(Body body) {
    int to_child[2], from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0) return;
    if (::pipe2(from_child, O_CLOEXEC) != 0) {
      ::close(to_child[0]);
      ::close(to_child[1]);
      return;
    }
    pid_ = ::fork();
    if (pid_ == 0) {
      int in = to_child[0], out = from_child[1];
      keep_only_pipes(in, out);
      int status = 5;
      try {
        status = body(in, out);
      } catch (...) {
        Message failed;
        failed.kind = 'x';
        send_message(out, failed);
      }
      ::_exit(status);  // no doctest, no atexit handlers in the child
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    commands_ = to_child[1];
    messages_ = from_child[0];
    if (pid_ < 0) close_pipes();
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    close_pipes();
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  void signal(int number) const { ::kill(pid_, number); }
  bool command(char c) const { return ::write(commands_, &c, 1) == 1; }

  // The next message of any kind, within `timeout`.
  bool next(Message& message, Duration timeout = 5s) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
    pollfd p{messages_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(ms)) != 1) return false;
    return ::read(messages_, &message, sizeof message) == static_cast<ssize_t>(sizeof message);
  }
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
  // Asks the child to quit and reaps it; its exit status, or -1 if it had to be killed.
  int finish(Duration timeout = 5s) {
    if (pid_ <= 0) return -1;  // never started, or already reaped
    command('q');
    int status = 0;
    auto deadline = Clock::now() + timeout;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
        close_pipes();
        return -1;
      }
      std::this_thread::sleep_for(2ms);
    }
    pid_ = -1;
    close_pipes();
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::vector<Message> events;

 private:
  void close_pipes() {
    if (commands_ >= 0) ::close(commands_);
    if (messages_ >= 0) ::close(messages_);
    commands_ = messages_ = -1;
  }
  pid_t pid_ = -1;
  int commands_ = -1, messages_ = -1;
};

// --- the server child ---------------------------------------------------------------------------

struct ServerConfig {
  Duration interval = 50ms;   // P
  Duration idle = 150ms;      // I
  std::string address = "127.0.0.1:0";
  int backlog = 4096;
  long nofile = 0;            // RLIMIT_NOFILE soft limit for the child; 0 leaves it alone
};

// Reads a child's command pipe on its loop: 'r' runs `report`, 'q' (or EOF) stops the loop.
class Commands final : public evwheel::IoHandler {
 public:
  Commands(evwheel::Reactor& reactor, int in, std::function<void()> report)
      : reactor_(reactor), in_(in), report_(std::move(report)) {}
  void on_io(uint32_t) override {
    char command = 'q';
    if (::read(in_, &command, 1) != 1) command = 'q';
    if (command == 'r') report_();
    if (command == 'q') {
      reactor_.remove(in_);
      reactor_.stop();
    }
  }

 private:
  evwheel::Reactor& reactor_;
  int in_;
  std::function<void()> report_;
};

// A server child's report: its listener's and endpoint's counters, descriptors and memory.
class ServerReport {
 public:
  ServerReport(evwheel::Endpoint& endpoint, evwheel::Listener& listener, int out)
      : endpoint_(endpoint), listener_(listener), out_(out) {}
  void operator()() const {
    Message r;
    r.kind = 'r';
    r.port = listener_.port();
    r.open = endpoint_.size();
    r.accepted = listener_.stats().accepted;
    r.shed_descriptors = listener_.stats().shed_descriptors;
    r.shed_limit = listener_.stats().shed_limit;
    r.pauses = listener_.stats().pauses;
    const auto& hb = endpoint_.heartbeat_stats();
    r.idle_closes = hb.idle_closes;
    r.pings_sent = hb.pings_sent;
    r.pongs_received = hb.pongs_received;
    r.pings_answered = hb.pings_answered;
    for (int i = 0; i < 8; ++i) r.closes[i] = endpoint_.stats().closes[i];
    r.fds = fds_or_uncounted();
    r.rss_kib = rss_kib();
    send_message(out_, r);
  }

 private:
  evwheel::Endpoint& endpoint_;
  evwheel::Listener& listener_;
  int out_;
};

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
  ServerReport report(endpoint, listener, out);
  Commands commands(reactor, in, report);
  reactor.add(in, EPOLLIN, commands);
  report();
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
class ClientHandler final : public evwheel::ConnectionHandler, public evwheel::IoHandler {
 public:
  ClientHandler(evwheel::Reactor& reactor, int in, int out) : reactor_(reactor), in_(in), out_(out) {}
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
  void on_io(uint32_t) override {
    char command = 'q';
    if (::read(in_, &command, 1) != 1) command = 'q';
    if (command == 'm' && !live_.empty()) live_.front()->pause_reading();
    if (command == 'r') {
      Message r;
      r.kind = 'r';
      r.open = live_.size();
      if (endpoint) r.pings_answered = endpoint->heartbeat_stats().pings_answered;
      r.fds = fds_or_uncounted();
      send_message(out_, r);
    }
    if (command == 'q') {
      reactor_.remove(in_);
      reactor_.stop();
    }
  }
  const evwheel::Endpoint* endpoint = nullptr;  // set once it exists, for reports

 private:
  evwheel::Reactor& reactor_;
  int in_, out_;
  std::vector<evwheel::Connection*> live_;
};

inline int run_clients(const ClientConfig& config, int in, int out) {
  if (!config.netns.empty()) {
    int ns = ::open(config.netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0 || ::setns(ns, CLONE_NEWNET) != 0) return 3;
    ::close(ns);
  }
  evwheel::Reactor reactor;
  ClientHandler handler(reactor, in, out);
  evwheel::Endpoint endpoint(reactor, handler, loopback::options(evwheel::Side::client, config.interval, config.idle));
  handler.endpoint = &endpoint;
  std::vector<std::unique_ptr<evwheel::Connector>> connectors;
  for (int i = 0; i < config.conns; ++i) {
    evwheel::ConnectorOptions o;
    o.address = config.address;
    connectors.push_back(std::make_unique<evwheel::Connector>(endpoint, o));
    connectors.back()->start();
  }
  reactor.add(in, EPOLLIN, handler);
  reactor.run();
  return 0;
}

}  // namespace child
