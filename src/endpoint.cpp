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

#include "evwheel/connector.hpp"
#include "evwheel/log.hpp"

namespace evwheel {

struct Endpoint::Chunk {
  uint64_t live[kChunk / 64] = {};
  alignas(Connection) unsigned char storage[kChunk * sizeof(Connection)];

  Connection* at(std::size_t slot) noexcept {
    return std::launder(reinterpret_cast<Connection*>(storage + slot * sizeof(Connection)));
  }
};

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
  if (socket.user_timeout < Duration::zero())
    throw std::invalid_argument("evwheel: user_timeout must not be negative");
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
}  // namespace

Endpoint::Endpoint(Reactor& reactor, ConnectionHandler& handler, EndpointOptions options)
    : reactor_(reactor),
      handler_(handler),
      options_(validated(options)),
      codec_(options_.codec ? options_.codec : std::make_shared<FramedCodec>()),
      heartbeat_(options_.heartbeat, pinging_side(options_), reactor.now()),
      scratch_(new char[options_.read_size]) {
  reactor_.attach(heartbeat_.wheel());
}

Endpoint::~Endpoint() {
  // A drain still under way ends here without its `done`: that promised a live endpoint.
  if (drain_timer_) reactor_.cancel(drain_timer_);
  drain_timer_ = 0;
  draining_ = false;
  close_all(CloseReason::shutdown);
  reactor_.detach(heartbeat_.wheel());
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

Connection* Endpoint::allocate(int fd) {
  auto index = static_cast<std::size_t>(fd);
  std::size_t chunk = index / kChunk;
  if (chunk >= chunks_.size()) chunks_.resize(chunk + 1);
  if (!chunks_[chunk]) chunks_[chunk].reset(new Chunk);
  Chunk& c = *chunks_[chunk];
  std::size_t slot = index % kChunk;
  c.live[slot / 64] |= uint64_t{1} << (slot % 64);
  return new (c.at(slot)) Connection(*this, fd, reactor_.now());
}

void Endpoint::recycle(Connection* connection) noexcept {
  int fd = connection->fd_;
  auto index = static_cast<std::size_t>(fd);
  connection->~Connection();
  Chunk& c = *chunks_[index / kChunk];
  std::size_t slot = index % kChunk;
  c.live[slot / 64] &= ~(uint64_t{1} << (slot % 64));
  ::close(fd);
}

Connection* Endpoint::adopt(int fd, Connector* owner) { return admit(fd, owner, nullptr); }

Connection* Endpoint::adopt_proxied(int fd, const SocketAddress& client) { return admit(fd, nullptr, &client); }

SocketAddress Endpoint::peer_address(const Connection& connection) const noexcept {
  auto index = static_cast<std::size_t>(connection.fd_);
  if (index < proxied_clients_.size() && proxied_clients_[index].any.sa_family != AF_UNSPEC)
    return proxied_clients_[index];
  SocketAddress address{};
  socklen_t length = sizeof address;
  if (::getpeername(connection.fd_, &address.any, &length) < 0) address.any.sa_family = AF_UNSPEC;
  return address;
}

Connection* Endpoint::admit(int fd, Connector* owner, const SocketAddress* client) {
  if (draining_) {
    ::close(fd);
    return nullptr;
  }
  // Written before anything can fail: a descriptor number is reused, and a stale entry from
  // an earlier connection must never show through.
  auto index = static_cast<std::size_t>(fd);
  if (client) {
    if (index >= proxied_clients_.size()) proxied_clients_.resize(index + 1, SocketAddress{});
    proxied_clients_[index] = *client;
  } else if (index < proxied_clients_.size()) {
    proxied_clients_[index].any.sa_family = AF_UNSPEC;
  }
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
  Connection* connection = allocate(fd);
  try {
    reactor_.add(fd, EPOLLIN, *connection);
  } catch (const std::system_error& error) {
    log(LogLevel::warning, "fd %d: dropped, cannot register it: %s", fd, error.what());
    recycle(connection);
    return nullptr;
  }
  ++open_;
  ++stats_.opened;
  if (owner) {
    if (static_cast<std::size_t>(fd) >= owners_.size()) owners_.resize(static_cast<std::size_t>(fd) + 1);
    owners_[static_cast<std::size_t>(fd)] = owner;
  }
  heartbeat_.start(*connection, reactor_.now());
  return connection->notify_open() ? connection : nullptr;
}

void Endpoint::closed(Connection& connection, CloseReason reason, int error) {
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
  auto fd = static_cast<std::size_t>(connection.fd_);
  if (fd < owners_.size() && owners_[fd]) {
    Connector* owner = owners_[fd];
    owners_[fd] = nullptr;
    owner->connection_closed(reason);
  }
  if (draining_ && open_ == 0) drained();
}

template <class Visit>
void Endpoint::for_each_live(Visit&& visit) {
  for (auto& chunk : chunks_) {
    if (!chunk) continue;
    for (std::size_t word = 0; word < kChunk / 64; ++word) {
      for (uint64_t pending = chunk->live[word]; pending; pending &= pending - 1) {
        auto bit = static_cast<std::size_t>(__builtin_ctzll(pending));
        // A close may close others (from on_close): look at the live bit again each time.
        if (!(chunk->live[word] & (uint64_t{1} << bit))) continue;
        visit(*chunk->at(word * 64 + bit));
      }
    }
  }
}

void Endpoint::close_all(CloseReason reason) {
  // close() is a no-op for a connection already closed and awaiting reclaim.
  for_each_live([reason](Connection& connection) { connection.close(reason, 0); });
}

void Endpoint::drain(Duration deadline, std::function<void()> done) {
  if (deadline < Duration::zero()) throw std::invalid_argument("evwheel: drain deadline must not be negative");
  if (draining_) throw std::logic_error("evwheel: Endpoint::drain called twice");
  draining_ = true;
  drained_ = std::move(done);
  // Set before any close: the last close below may already finish the drain (and cancel it).
  drain_timer_ = reactor_.run_after(deadline, [this] {
    drain_timer_ = 0;
    drain_deadline();
  });
  for_each_live([](Connection& connection) {
    if (connection.queued() == 0) connection.close(CloseReason::shutdown, 0);
  });
  if (open_ == 0) drained();
}

void Endpoint::drain_deadline() {
  for_each_live([](Connection& connection) {
    if (connection.state_ == Connection::State::closed) return;
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
