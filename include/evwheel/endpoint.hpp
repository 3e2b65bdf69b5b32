// endpoint — the connections of one side (a server's accepted ones, or a client's): the public
// façade that owns their engine (codec, heartbeat, buffers: src/engine.hpp), their storage,
// their options and statistics.
//
// A Listener or a Connector hands connected sockets to an Endpoint; the Endpoint owns them
// from then on.  Connections live in an FdTable (fd_table.hpp) of fixed-size chunks (no
// allocation per connection once a chunk exists, no allocator overhead per object), reads land
// in one scratch area per endpoint, and buffers come from a pool only while bytes are pending.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "evwheel/address.hpp"
#include "evwheel/codec.hpp"
#include "evwheel/connection.hpp"
#include "evwheel/engine.hpp"
#include "evwheel/fd_table.hpp"
#include "evwheel/heartbeat.hpp"
#include "evwheel/reactor.hpp"

namespace evwheel {

// Kernel-level liveness checks that complement the application heartbeat (see the README):
// keepalive probes an idle connection below the application; user_timeout bounds how long
// written data may stay unacknowledged before the kernel gives up on the connection.
struct SocketOptions {
  bool no_delay = true;                   // TCP_NODELAY: pings and pongs are never held back
  bool keepalive = false;                 // SO_KEEPALIVE with the three values below
  Duration keepalive_idle = std::chrono::seconds(60);
  Duration keepalive_interval = std::chrono::seconds(10);
  int keepalive_count = 5;
  Duration user_timeout = Duration::zero();  // TCP_USER_TIMEOUT; zero: the kernel's default
};

enum class Side : uint8_t { server, client };

struct EndpointOptions {
  Side side = Side::server;
  std::shared_ptr<const Codec> codec;      // null: FramedCodec with its default max_frame
  HeartbeatPolicy heartbeat;
  SocketOptions socket;
  std::size_t high_water = 1u << 20;       // queued output that triggers on_high_water
  std::size_t max_output = 16u << 20;      // queued output that closes (output_overflow)
  std::size_t read_size = 64u << 10;       // the scratch area each read lands in

  // Throws std::invalid_argument naming the bad field (and see HeartbeatPolicy::validate).
  void validate() const;
};

struct EndpointStats {
  uint64_t opened = 0;
  uint64_t closes[8] = {};  // by CloseReason
};

class Endpoint final : private detail::Engine::Owner {
 public:
  // Throws std::invalid_argument on bad options.
  Endpoint(Reactor& reactor, ConnectionHandler& handler, EndpointOptions options = {});
  // Closes every connection with CloseReason::shutdown.
  ~Endpoint();
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  // Takes a connected socket (made nonblocking here), applies the socket options, starts the
  // heartbeat and calls on_open.  Returns null if the socket options cannot be set; the
  // descriptor is closed then.  `observer` (may be null) is told when the connection closes.
  // While draining, adopt() refuses: it closes `fd` and returns null.
  Connection* adopt(int fd, CloseObserver* observer = nullptr);
  // adopt() for a socket whose real client is `client` (a PROXY protocol header named it):
  // Connection::peer_address() reports `client` for this connection, from on_open through
  // on_close.
  Connection* adopt_proxied(int fd, const SocketAddress& client);
  void close_all(CloseReason reason = CloseReason::shutdown);

  // Graceful shutdown of this endpoint's connections (stop its Listener first: see Shutdown).
  // Connections with nothing queued close at once; the others stay fully alive (reading,
  // answering pings, sending) until their queued output has gone to the kernel, and then close.
  // Whatever is still open `deadline` later is reset (SO_LINGER 0: a peer that does not read
  // must not keep kernel memory) — every close has CloseReason::shutdown.  `done` (may be
  // empty) is posted to the reactor once no connection is left, so it may destroy the
  // endpoint; it never runs inside drain(), nor at all if the endpoint is destroyed first.
  // New connections are refused from now on.
  // Throws std::invalid_argument for a negative deadline, std::logic_error if the endpoint is
  // already draining.
  void drain(Duration deadline, std::function<void()> done);
  bool draining() const noexcept { return engine_.draining; }

  std::size_t size() const noexcept { return open_; }
  Reactor& reactor() const noexcept { return reactor_; }
  ConnectionHandler& handler() const noexcept { return handler_; }
  const Codec& codec() const noexcept { return *engine_.codec; }
  const EndpointOptions& options() const noexcept { return options_; }
  const HeartbeatStats& heartbeat_stats() const noexcept { return engine_.heartbeat.stats(); }
  const EndpointStats& stats() const noexcept { return stats_; }

 private:
  // Connections are stored by descriptor number: a closed connection keeps its descriptor open
  // until it is reclaimed, so its slot cannot be claimed twice; chunks never move (the wheel
  // and epoll point into them).
  struct Slot {
    alignas(Connection) unsigned char bytes[sizeof(Connection)];
  };
  static Connection& in(Slot& slot) noexcept;

  Connection* admit(int fd, CloseObserver* observer, const SocketAddress* client);
  void closed(Connection& connection, CloseReason reason, int error) noexcept override;
  void recycle(Connection& connection) noexcept override;  // destroys it, closes its descriptor
  template <class Visit>
  void for_each_live(Visit&& visit);
  void drain_deadline();
  void drained();
  void apply_socket_options(int fd) const;

  Reactor& reactor_;
  ConnectionHandler& handler_;
  EndpointOptions options_;
  detail::Engine engine_;
  FdTable<Slot, 512> connections_;
  FdTable<CloseObserver*, 1024> observers_;  // for connections adopted with an observer
  std::size_t open_ = 0;
  EndpointStats stats_;
  TimerId drain_timer_ = 0;
  std::function<void()> drained_;          // drain()'s `done`, until it is posted
};

}  // namespace evwheel
