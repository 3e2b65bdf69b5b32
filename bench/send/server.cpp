// send — the server on its loop thread (see server.hpp).
#include "server.hpp"

#include <time.h>

#include <exception>

#include "evwheel/listener.hpp"
#include "evwheel/reactor.hpp"

namespace bench {
namespace send {
namespace {

int64_t thread_cpu_ns() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

evwheel::EndpointOptions endpoint_options(const conns::Options& options) {
  evwheel::EndpointOptions endpoint;
  endpoint.side = evwheel::Side::server;
  endpoint.codec = conns::make_codec(options.codec, endpoint.side);
  endpoint.heartbeat.ping_interval = std::chrono::milliseconds(options.ping_ms);
  endpoint.heartbeat.idle_timeout = std::chrono::milliseconds(options.idle_ms);
  return endpoint;
}

evwheel::ListenerOptions listen_options(uint16_t port) {
  evwheel::ListenerOptions listen;
  listen.address = "127.0.0.1:" + std::to_string(port);
  listen.reuse_port = true;  // joins the port's reservation (conns::reserve_port)
  return listen;
}

}  // namespace

struct Server::Loop {
  Loop(const conns::Options& options, uint16_t port)
      : endpoint(reactor, handler, endpoint_options(options)), listener(endpoint, listen_options(port)) {}

  void broadcast() {
    broadcast_targets += endpoint.size();
    ++broadcasts;
    int64_t start = thread_cpu_ns();
    endpoint.broadcast(message);
    broadcast_cpu_ns += thread_cpu_ns() - start;
  }

  evwheel::Reactor reactor;
  evwheel::ConnectionHandler handler;  // the server only heartbeats and sends
  evwheel::Endpoint endpoint;
  evwheel::Listener listener;
  std::string message;
  evwheel::TimerId broadcast_timer = 0;
  uint64_t broadcasts = 0, broadcast_targets = 0;
  int64_t broadcast_cpu_ns = 0;
};

Server::Server(const conns::Options& options, uint16_t port, int cpu) {
  std::future<std::string> listening = started_.get_future();
  thread_ = std::thread([this, &options, port, cpu] { run(options, port, cpu); });
  error_ = listening.get();
}

// The loop thread destroys the Loop once run() returns, which it does only after this stop().
Server::~Server() {
  if (loop_) loop_->reactor.stop();
  thread_.join();
}

void Server::run(const conns::Options& options, uint16_t port, int cpu) {
  if (cpu >= 0 && !sys::pin_to_cpu(cpu)) {
    started_.set_value("cannot pin the loop thread to cpu " + std::to_string(cpu));
    return;
  }
  try {
    loop_ = std::make_unique<Loop>(options, port);
  } catch (const std::exception& e) {
    started_.set_value(std::string("server: ") + e.what());
    return;
  }
  Loop& loop = *loop_;
  loop.reactor.run_every(conns::kPollInterval, [this, &loop] {
    open_.store(loop.endpoint.size(), std::memory_order_relaxed);
  });
  // Posted, so the reactor knows its loop thread before anyone else can post to it.
  loop.reactor.post([this] { started_.set_value(""); });
  loop.reactor.run();
  loop_.reset();  // on the loop thread, as the endpoint's closes must be
}

template <class Task>
auto Server::on_loop(Task task) -> decltype(task()) {
  std::promise<decltype(task())> done;
  std::future<decltype(task())> result = done.get_future();
  loop_->reactor.post([&task, &done] { done.set_value(task()); });
  return result.get();
}

Snapshot Server::snapshot() {
  return on_loop([this] {
    const Loop& loop = *loop_;
    const evwheel::HeartbeatStats& heartbeat = loop.endpoint.heartbeat_stats();
    Snapshot s;
    s.at_ns = sys::monotonic_ns();
    s.loop = sys::thread_cpu_times();
    s.open = loop.endpoint.size();
    s.pings_sent = heartbeat.pings_sent;
    s.pongs_received = heartbeat.pongs_received;
    s.rtt = heartbeat.rtt;
    s.lateness = heartbeat.ping_lateness;
    s.mail_dropped = loop.endpoint.stats().mail_dropped;
    s.mailbox_refused = loop.reactor.mailbox().refused();
    s.broadcasts = loop.broadcasts;
    s.broadcast_targets = loop.broadcast_targets;
    s.broadcast_skipped = loop.endpoint.stats().broadcast_skipped;
    s.broadcast_cpu_ns = loop.broadcast_cpu_ns;
    return s;
  });
}

std::vector<evwheel::ConnectionId> Server::ids() {
  return on_loop([this] {
    std::vector<evwheel::ConnectionId> ids;
    loop_->endpoint.for_each([&ids](evwheel::Connection& connection) {
      if (connection.open()) ids.push_back(connection.id());
    });
    return ids;
  });
}

evwheel::SendResult Server::send(const evwheel::ConnectionId& id, std::string_view message) {
  return loop_->endpoint.send(id, message);
}

void Server::start_broadcasts(std::chrono::milliseconds interval, std::string message) {
  on_loop([this, interval, &message] {
    loop_->message = std::move(message);
    loop_->broadcast_timer = loop_->reactor.run_every(interval, [this] { loop_->broadcast(); });
    return true;
  });
}

void Server::stop_broadcasts() {
  on_loop([this] { return loop_->reactor.cancel(loop_->broadcast_timer); });
}

}  // namespace send
}  // namespace bench
