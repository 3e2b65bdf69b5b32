// endpoint — see include/evwheel/endpoint.hpp.
#include "evwheel/endpoint.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>

#include "evwheel/log.hpp"
#include "evwheel/websocket.hpp"

namespace evwheel {

void EndpointOptions::validate() const {
  heartbeat.validate();
  if (read_size == 0) throw std::invalid_argument("evwheel: endpoint read_size must be > 0");
  if (max_output == 0) throw std::invalid_argument("evwheel: endpoint max_output must be > 0");
  if (high_water > max_output)
    throw std::invalid_argument("evwheel: endpoint high_water must not exceed max_output");
  if (socket.keepalive && (socket.keepalive_idle < std::chrono::seconds(1) ||
                           socket.keepalive_interval < std::chrono::seconds(1) ||
                           socket.keepalive_count < 1))
    throw std::invalid_argument("evwheel: keepalive idle/interval must be >= 1 s and count >= 1");
  if (close_timeout <= Duration::zero()) throw std::invalid_argument("evwheel: endpoint close_timeout must be > 0");
  if (socket.user_timeout < Duration::zero())
    throw std::invalid_argument("evwheel: user_timeout must not be negative");
}

const char* to_string(SendResult result) noexcept {
  switch (result) {
    case SendResult::sent: return "sent";
    case SendResult::queued: return "queued";
    case SendResult::no_connection: return "no connection";
    case SendResult::refused: return "refused";
    case SendResult::mailbox_full: return "mailbox full";
  }
  return "unknown";
}

namespace {
// Closes that point at a misbehaving peer or a socket failure are worth an operator's look;
// the others are routine at any scale.
void log_close(int fd, CloseReason reason, int error) noexcept {
  LogLevel level = reason == CloseReason::error ? LogLevel::warning
                   : reason == CloseReason::protocol_error || reason == CloseReason::output_overflow
                       ? LogLevel::info
                       : LogLevel::debug;
  if (!log_enabled(level)) return;
  if (error)
    log(level, "fd %d closed: %s (%s)", fd, to_string(reason), std::strerror(error));
  else
    log(level, "fd %d closed: %s", fd, to_string(reason));
}

bool pinging_side(const EndpointOptions& options) {
  PingMode mode = options.heartbeat.mode;
  return mode == PingMode::both || (mode == PingMode::server) == (options.side == Side::server);
}

const EndpointOptions& validated(const EndpointOptions& options) {
  options.validate();
  return options;
}

std::shared_ptr<const Codec> codec_for(const EndpointOptions& options) {
  if (!options.codec) return std::make_shared<FramedCodec>();
  // A WebSocket server and client frame differently (only clients mask): the role must match.
  if (auto* websocket = dynamic_cast<const WebSocketCodec*>(options.codec.get())) {
    bool server = websocket->options().role == WebSocketRole::server;
    if (server != (options.side == Side::server))
      throw std::invalid_argument("evwheel: a websocket codec's role must match the endpoint's side");
  }
  return options.codec;
}
}  // namespace

Endpoint::Endpoint(Reactor& reactor, ConnectionHandler& handler, EndpointOptions options)
    : reactor_(reactor),
      handler_(handler),
      options_(validated(options)),
      engine_(reactor, handler, *this, *this, codec_for(options_), options_.heartbeat,
              pinging_side(options_),
              detail::Engine::Limits{options_.read_size, options_.high_water, options_.max_output,
                                     options_.close_timeout}) {
  reactor_.assert_in_loop_thread();
  engine_.number = reactor_.add_receiver(*this);
}

Endpoint::~Endpoint() {
  // A drain still under way ends here without its `done`: that promised a live endpoint.
  if (drain_timer_) reactor_.cancel(drain_timer_);
  drain_timer_ = 0;
  engine_.draining = false;
  close_all(CloseReason::shutdown);
  reactor_.remove_receiver(engine_.number);
}

void Endpoint::apply_socket_options(int fd) const {
  const SocketOptions& socket = options_.socket;
  // Every option here is TCP's.  A Unix domain socket refuses them with EOPNOTSUPP: the first
  // refusal ends the list without error, rather than one more system call per adopt to ask each
  // socket its protocol first.  false: not TCP.
  auto set = [fd](int level, int name, int value) {
    if (::setsockopt(fd, level, name, &value, sizeof value) == 0) return true;
    if (errno == EOPNOTSUPP || errno == ENOPROTOOPT) return false;
    throw std::system_error(errno, std::generic_category(), "evwheel: setsockopt");
  };
  auto seconds = [](Duration d) {
    return static_cast<int>(std::chrono::duration_cast<std::chrono::seconds>(d).count());
  };
  if (socket.no_delay && !set(IPPROTO_TCP, TCP_NODELAY, 1)) return;
  // TCP_KEEPIDLE first: SO_KEEPALIVE alone would succeed on a Unix socket, and mean nothing.
  if (socket.keepalive &&
      !(set(IPPROTO_TCP, TCP_KEEPIDLE, seconds(socket.keepalive_idle)) &&
        set(IPPROTO_TCP, TCP_KEEPINTVL, seconds(socket.keepalive_interval)) &&
        set(IPPROTO_TCP, TCP_KEEPCNT, socket.keepalive_count) && set(SOL_SOCKET, SO_KEEPALIVE, 1)))
    return;
  if (socket.user_timeout > Duration::zero())
    set(IPPROTO_TCP, TCP_USER_TIMEOUT,
        static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(socket.user_timeout).count()));
}

Connection& Endpoint::in(Slot& slot) noexcept {
  return *std::launder(reinterpret_cast<Connection*>(slot.bytes));
}

void Endpoint::recycle(Connection& connection) noexcept {
  int fd = connection.fd_;
  connection.~Connection();
  connections_.release(fd);
  ::close(fd);
}

Connection* Endpoint::adopt(int fd, const Adoption& adoption) {
  reactor_.assert_in_loop_thread();
  if (engine_.draining) {
    ::close(fd);
    return nullptr;
  }
  // Written before anything can fail: a descriptor number is reused, and a stale entry from
  // an earlier connection must never show through.
  if (adoption.client)
    engine_.proxied_clients.claim(fd) = *adoption.client;
  else
    engine_.proxied_clients.release(fd);
  try {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0) throw std::system_error(errno, std::generic_category(), "evwheel: fcntl");
    if (!(flags & O_NONBLOCK) && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
      throw std::system_error(errno, std::generic_category(), "evwheel: fcntl");
    apply_socket_options(fd);
  } catch (const std::system_error& error) {
    log(LogLevel::warning, "fd %d: dropped, cannot set up the socket: %s", fd, error.what());
    ::close(fd);
    return nullptr;
  }
  Connection* connection = new (connections_.claim(fd).bytes) Connection(engine_, fd, reactor_.now());
  try {
    reactor_.add(fd, EPOLLIN, *connection);
  } catch (const std::system_error& error) {
    log(LogLevel::warning, "fd %d: dropped, cannot register it: %s", fd, error.what());
    recycle(*connection);
    return nullptr;
  }
  ++open_;
  ++stats_.opened;
  if (adoption.observer)
    observers_.claim(fd) = adoption.observer;
  else
    observers_.release(fd);
  connection->set_context(adoption.context);
  engine_.heartbeat.start(*connection, reactor_.now());
  return connection->notify_open() ? connection : nullptr;
}

void Endpoint::observe(Connection& connection, CloseObserver* observer) {
  reactor_.assert_in_loop_thread();
  if (observer)
    observers_.claim(connection.fd_) = observer;
  else
    observers_.release(connection.fd_);
}

void Endpoint::closed(Connection& connection, CloseReason reason, int error) noexcept {
  --open_;
  ++stats_.closes[static_cast<std::size_t>(reason)];
  log_close(connection.fd_, reason, error);
  // The connection is gone either way: an exception from on_close is reported, not rethrown.
  try {
    handler_.on_close(connection, reason, error);
  } catch (const std::exception& thrown) {
    log(LogLevel::error, "fd %d: exception in on_close: %s", connection.fd_, thrown.what());
  } catch (...) {
    log(LogLevel::error, "fd %d: non-standard exception in on_close", connection.fd_);
  }
  if (CloseObserver** observer = observers_.find(connection.fd_)) {
    CloseObserver* told = *observer;
    observers_.release(connection.fd_);
    try {
      told->on_connection_closed(connection, reason);
    } catch (...) {
      log(LogLevel::error, "fd %d: exception in a close observer", connection.fd_);
    }
  }
  if (engine_.draining && open_ == 0) drained();
}

Connection* Endpoint::find(const ConnectionId& id) const noexcept {
  if (id.reactor != reactor_.index() || id.endpoint != engine_.number) return nullptr;
  Slot* slot = connections_.find(id.fd);
  if (!slot) return nullptr;
  Connection& connection = in(*slot);
  // A closed connection awaiting reclaim is out of epoll, but its registration's generation
  // stays until the descriptor is registered again: its state tells it apart.
  if (!connection.open() || reactor_.generation(id.fd) != id.generation) return nullptr;
  return &connection;
}

SendResult Endpoint::send(const ConnectionId& id, std::string_view payload) {
  if (!reactor_.in_loop_thread())
    return reactor_.mail({engine_.number, Mailbox::Target::one, id, payload}) ? SendResult::queued
                                                                                : SendResult::mailbox_full;
  Connection* connection = find(id);
  if (!connection) return SendResult::no_connection;
  return connection->send_guarded(payload) ? SendResult::sent : SendResult::refused;
}

SendResult Endpoint::broadcast(std::string_view payload) {
  if (!reactor_.in_loop_thread())
    return reactor_.mail({engine_.number, Mailbox::Target::all, {}, payload}) ? SendResult::queued
                                                                               : SendResult::mailbox_full;
  broadcast_now(payload);
  return SendResult::sent;
}

void Endpoint::broadcast_now(std::string_view payload) {
  std::size_t behind = options_.high_water;
  for_each([&](Connection& connection) {
    if (connection.queued() >= behind)
      ++stats_.broadcast_skipped;
    else
      connection.send_guarded(payload);
  });
}

void Endpoint::receive(const Mailbox::Letter& letter) {
  if (letter.target == Mailbox::Target::all) return broadcast_now(letter.bytes);
  Connection* connection = find(letter.id);
  if (!connection) {
    ++stats_.mail_dropped;
    return;
  }
  connection->send_guarded(letter.bytes);
}

void Endpoint::close_all(CloseReason reason) {
  reactor_.assert_in_loop_thread();
  // close() is a no-op for a connection already closed and awaiting reclaim.
  for_each([reason](Connection& connection) { connection.close(reason, 0); });
}

void Endpoint::drain(Duration deadline, std::function<void()> done) {
  reactor_.assert_in_loop_thread();
  if (deadline < Duration::zero()) throw std::invalid_argument("evwheel: drain deadline must not be negative");
  if (engine_.draining) throw std::logic_error("evwheel: Endpoint::drain called twice");
  engine_.draining = true;
  drained_ = std::move(done);
  // Set before any close: the last close below may already finish the drain (and cancel it).
  drain_timer_ = reactor_.run_after(deadline, [this] {
    drain_timer_ = 0;
    drain_deadline();
  });
  for_each([](Connection& connection) {
    if (connection.queued() == 0) connection.close_gracefully(1001, CloseReason::shutdown);
  });
  if (open_ == 0) drained();
}

void Endpoint::drain_deadline() {
  for_each([](Connection& connection) {
    linger abort{1, 0};
    ::setsockopt(connection.fd_, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
    connection.close(CloseReason::shutdown, 0);
  });
}

void Endpoint::drained() {
  if (!drained_ && !drain_timer_) return;  // finished already
  if (drain_timer_) reactor_.cancel(drain_timer_);
  drain_timer_ = 0;
  if (drained_) reactor_.post(std::move(drained_));
  drained_ = nullptr;
}

}  // namespace evwheel
