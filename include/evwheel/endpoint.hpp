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
  // A close handshake (codecs with close frames: WebSocket) waits this long for the peer's
  // close frame before it resets the connection.
  Duration close_timeout = std::chrono::seconds(5);
  std::size_t read_size = 64u << 10;       // the scratch area each read lands in

  // Throws std::invalid_argument naming the bad field (and see HeartbeatPolicy::validate).
  void validate() const;
};

struct EndpointStats {
  uint64_t opened = 0;
  uint64_t closes[8] = {};        // by CloseReason
  uint64_t mail_dropped = 0;      // letters (send by id) for a connection that had closed
  uint64_t broadcast_skipped = 0; // broadcast copies not queued: the connection was above high_water
};

// What send(id, ...) and broadcast() did.
enum class SendResult : uint8_t {
  sent,           // on the loop thread: handed to the connection (written or queued)
  queued,         // from another thread: in the reactor's mailbox, sent on the loop
  no_connection,  // on the loop thread: the id names no open connection of this endpoint
  refused,        // the connection would not take it (the codec cannot carry it, or it closed)
  mailbox_full,   // from another thread: the reactor's mailbox has no room; nothing was queued
};
const char* to_string(SendResult result) noexcept;

class Endpoint final : private detail::Engine::Owner, private MessageReceiver {
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
  Connection* adopt(int fd, CloseObserver* observer = nullptr) { return adopt(fd, Adoption{observer, nullptr, nullptr}); }
  // adopt() for a socket whose real client is `client` (a PROXY protocol header named it):
  // Connection::peer_address() reports `client` for this connection, from on_open through
  // on_close.
  Connection* adopt_proxied(int fd, const SocketAddress& client) { return adopt(fd, Adoption{nullptr, &client, nullptr}); }
  // Everything adopt() can be told at once.
  struct Adoption {
    CloseObserver* observer = nullptr;      // told when the connection closes
    const SocketAddress* client = nullptr;  // the real client, as a PROXY header named it
    void* context = nullptr;                // Connection::context() from on_open on
  };
  Connection* adopt(int fd, const Adoption& adoption);
  // Changes who is told when `connection` closes (null: nobody) — for an observer that goes
  // away before the connection does (a Connector destroyed while its connection's close
  // handshake is under way).
  void observe(Connection& connection, CloseObserver* observer);
  void close_all(CloseReason reason = CloseReason::shutdown);

  // Connection handles.  find() (loop thread) returns the open connection `id` names, or null
  // when it has closed or belongs to another endpoint.  send() may be called from any thread:
  // on the loop thread it sends at once; from another it queues a copy in the reactor's
  // bounded mailbox (reactor.hpp), never blocking — a full mailbox is SendResult::mailbox_full
  // — and the loop sends it later, or drops and counts it (stats().mail_dropped) if the
  // connection has closed by then.
  Connection* find(const ConnectionId& id) const noexcept;
  SendResult send(const ConnectionId& id, std::string_view payload);
  // One data message to every open connection, from any thread (from another, through the
  // mailbox as for send()).  A connection whose queued output is at or above high_water is
  // behind: it is skipped and counted (stats().broadcast_skipped), so one slow reader neither
  // grows memory nor holds the others back; the hard cap (max_output) still closes a
  // connection that keeps falling behind through its own sends.  On the loop thread returns
  // sent; from another, queued or mailbox_full.
  SendResult broadcast(std::string_view payload);
  // Calls visit(Connection&) for every connection not yet closed (open, half-closed, or in its
  // close handshake), in descriptor order (loop thread).
  // `visit` may send, close, or close others.
  template <class Visit>
  void for_each(Visit&& visit);

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

  void receive(const Mailbox::Letter& letter) override;
  void broadcast_now(std::string_view payload);
  void closed(Connection& connection, CloseReason reason, int error) noexcept override;
  void recycle(Connection& connection) noexcept override;  // destroys it, closes its descriptor
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

template <class Visit>
void Endpoint::for_each(Visit&& visit) {
  reactor_.assert_in_loop_thread();
  // A close may close others (from on_close): the table looks at each slot's bit again.
  connections_.for_each([&](int, Slot& slot) {
    Connection& connection = in(slot);
    if (connection.state() != Connection::State::closed) visit(connection);
  });
}

}  // namespace evwheel
