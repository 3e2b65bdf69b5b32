// connection — one nonblocking TCP connection: framed input, queued output, heartbeat state.
//
// Memory: an idle connection holds no buffers (see buffer.hpp) and costs sizeof(Connection)
// (104 bytes on x86-64, heartbeat entry included) in its endpoint's fd-indexed table, plus 16
// bytes in the reactor's descriptor table: 120 bytes of user space.
//
// A Connection knows only the engine below it (src/engine.hpp: reactor, codec, buffers,
// heartbeat) — never the Endpoint that owns it.  On a pong it asks its engine's Heartbeat,
// which updates the connection's HeartbeatEntry and statistics and says whether to ping.
//
// Closing: the descriptor is taken out of epoll and the wheel at once; it is closed (so its
// number can be reused) only when the object is reclaimed.  Idle-timeout, protocol-error and
// output-overflow closes reset the connection (SO_LINGER 0) so the kernel frees its memory at
// once instead of retransmitting a FIN to a peer that is gone or hostile.
//
// Lifetime: connections are created by an Endpoint (from a Listener or a Connector) and
// destroyed by it.  A Connection& is valid from on_open until on_close returns.  close() is
// safe from any callback — the connection's own, another connection's, or a timer's; when
// called from inside the connection's own callback, the object is reclaimed after that
// callback returns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstddef>
#include <string_view>

#include "evwheel/address.hpp"
#include "evwheel/codec.hpp"
#include "evwheel/connection_id.hpp"
#include "evwheel/heartbeat.hpp"
#include "evwheel/reactor.hpp"

namespace evwheel {

class Buffer;
class Connector;
class Endpoint;
namespace detail {
class Engine;
}

enum class CloseReason : uint8_t {
  peer_closed,      // the peer closed (EOF), after our queued output drained
  reset,            // the peer reset the connection (ECONNRESET, EPIPE)
  idle_timeout,     // the heartbeat judged the peer dead
  protocol_error,   // a malformed or oversized frame
  output_overflow,  // queued output passed the hard cap (a peer that does not read)
  local_close,      // Connection::close()
  shutdown,         // the endpoint is shutting down
  error,            // another socket error, or a callback threw
};
const char* to_string(CloseReason reason) noexcept;

class Connection;

// The user's callbacks, one object per endpoint (not per connection).  Exceptions thrown from
// on_open/on_message/on_high_water/on_drain are logged (log.hpp) and close the connection with
// CloseReason::error; the loop keeps running.  Exceptions from on_close are logged and dropped.
class ConnectionHandler {
 public:
  virtual ~ConnectionHandler() = default;
  virtual void on_open(Connection&) {}
  // A data message: framed data, or a WebSocket binary message (whole, however it was
  // fragmented).
  virtual void on_message(Connection&, std::string_view) {}
  // A WebSocket text message (valid UTF-8, whole); by default handed to on_message.
  virtual void on_text(Connection& connection, std::string_view text) { on_message(connection, text); }
  // `error` is the errno behind reset/error closes, else 0.  For a WebSocket connection,
  // Connection::close_code() says the close code.
  virtual void on_close(Connection&, CloseReason, int /*error*/) {}
  // Queued output rose above the endpoint's high-water mark; on_drain follows when it is sent.
  virtual void on_high_water(Connection&, std::size_t /*queued*/) {}
  virtual void on_drain(Connection&) {}
  // A Connector's attempt failed (`error` is the errno; ETIMEDOUT for the connect timeout,
  // EPROTO for a WebSocket handshake the server refused).
  virtual void on_connect_error(Connector&, int /*error*/) {}
};

// Told when a connection it asked to watch closes, after on_close (a Connector keeps its
// connection up this way).  It must outlive the connection or be told nothing.
class CloseObserver {
 public:
  virtual void on_connection_closed(Connection& connection, CloseReason reason) = 0;

 protected:
  ~CloseObserver() = default;
};

class Connection final : private IoHandler, private HeartbeatEntry {
 public:
  Connection(detail::Engine& engine, int fd, TimePoint now) noexcept;
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  int fd() const noexcept { return fd_; }
  // Unique for the life of the process (connection_id.hpp): keep it, not the pointer, to reach
  // this connection later (Endpoint::find, Endpoint::send, ReactorPool::send).
  ConnectionId id() const noexcept;
  bool open() const noexcept { return state() == State::open; }
  Endpoint& endpoint() const noexcept;

  // Sends one data message.  Writes at once when nothing is queued, queues the rest.  Returns
  // false (sending nothing) when the connection is not open, or the codec cannot carry the
  // payload (seed carries no data; framed refuses payloads above its max_frame); may close the
  // connection (output_overflow, reset) and then also returns false.  send() is binary,
  // send_text() text (the same for codecs without message types).
  bool send(std::string_view payload) { return send_message(payload, MessageType::binary); }
  bool send_text(std::string_view text) { return send_message(text, MessageType::text); }
  // Sends a ping now (the heartbeat sends them by itself; this is for client-driven probing).
  bool ping();
  // Half-close: no more sends; our FIN goes out once queued output has drained.  The
  // connection closes when the peer closes too (peer_closed) or the idle timeout hits.
  void shutdown();
  // Closes with reason local_close, dropping queued output.  For a codec with close frames
  // (WebSocket) it sends one (code 1000) and closes when the peer's answers — data that comes
  // meanwhile is dropped — or after the codec's close timeout; on_close runs then.  Otherwise
  // (framed, seed, or a half-closed connection) it closes now and on_close runs before close()
  // returns.
  void close();
  // Backpressure on input: stop reading from the socket, and resume.  While paused the peer
  // is not judged idle (its bytes wait in our socket, they are not missing); pings still go out.
  void pause_reading();
  void resume_reading();
  bool reading_paused() const noexcept { return read_paused_; }

  std::size_t queued() const noexcept;     // output bytes not yet accepted by the kernel
  using HeartbeatEntry::rtt;               // smoothed ping round trip; zero before the first
  using HeartbeatEntry::last_receive;      // when the last byte arrived (the reactor's clock)
  // Inside on_close of a connection whose codec has close frames: the close code — the
  // peer's (1005 when its close frame had none), ours (1000 for close(), 1001 for a drain,
  // 1002/1007/1009 for a protocol error), or 1006 when the connection ended without a close
  // frame.  0 for other codecs, and outside on_close.
  uint16_t close_code() const noexcept;
  // The client's address: the one a PROXY header named (Endpoint::adopt_proxied), else the
  // socket's peer (a Unix client is "unix:", see address.hpp); family AF_UNSPEC when the
  // socket no longer has one (it was reset).
  Address peer_address() const noexcept;
  Address local_address() const noexcept;  // the socket's own address
  // The application's per-connection state: one pointer, set from on_open, read in any
  // callback as the type it was set as (context<Session>()); nothing checks that type.
  template <class T>
  void set_context(T* context) noexcept { context_ = const_cast<void*>(static_cast<const void*>(context)); }
  void set_context(std::nullptr_t) noexcept { context_ = nullptr; }
  template <class T = void>
  T* context() const noexcept { return static_cast<T*>(context_); }

 private:
  friend class Endpoint;
  enum class State : uint8_t {
    open,
    half_closed,  // shutdown(): no more sends
    closing,      // our close frame went out; waiting for the peer's
    closed,       // out of epoll and the wheel; reclaimed once no callback of it runs
  };

  State state() const noexcept { return static_cast<State>(state_); }
  void set_state(State state) noexcept { state_ = static_cast<uint8_t>(state) & 3u; }
  void on_io(uint32_t events) override;
  static void on_heartbeat(TimerEntry& entry);
  void check_liveness();
  bool asking() const noexcept { return state() == State::open; }  // may send a ping
  bool notify_open();  // runs on_open; false if the connection closed (and was reclaimed)
  // send() for a message that does not come from this connection's own callbacks (a letter,
  // a broadcast): an exception from on_high_water closes this connection, not the caller's.
  bool send_guarded(std::string_view payload);
  // Runs a callback scope: user exceptions close the connection (reason error), and a
  // connection closed inside is reclaimed on the way out.  Returns whether it is still open.
  template <class Body>
  bool guarded(Body&& body);
  void read_input();
  bool take_input(char* bytes, std::size_t size);
  bool consume_frames(char* bytes, std::size_t size, std::size_t* used);
  void dispatch_frame(const Frame& frame);
  void assemble(const Frame& frame);
  void deliver(std::string_view payload, MessageType type);
  void on_pong(const Frame& frame);
  void on_close_frame(const Frame& frame);
  void on_protocol_error(uint16_t code);
  void on_peer_eof();
  bool send_message(std::string_view payload, MessageType type);
  bool send_ping(bool scheduled);
  bool send_close_frame(uint16_t code);
  bool send_frame(FrameType type, MessageType message, const char* payload, std::size_t size);
  bool write_parts(const char* head, std::size_t head_size, const char* body, std::size_t body_size);
  bool queue_output(const char* head, std::size_t head_size, const char* body,
                    std::size_t body_size, std::size_t already_sent);
  void flush_output();
  void update_interest();  // epoll interest from peer_eof_, read_paused_ and pending output
  // Starts the close handshake (codecs with close frames) or closes now.
  void close_gracefully(uint16_t code, CloseReason reason);
  void close(CloseReason reason, int error, uint16_t code = 0);
  void fail(int error);   // close for a socket errno: reset or error

  // Field order packs into 104 bytes after the vptr and the 56-byte HeartbeatEntry; keep it so
  // (see the static_assert in connection.cpp).
  uint8_t state_ : 2;                // State
  bool read_armed_ : 1;              // EPOLLIN registered
  bool write_armed_ : 1;             // EPOLLOUT registered
  bool read_paused_ : 1;             // pause_reading()
  bool peer_eof_ : 1;                // the peer sent FIN; close once output drains
  bool high_water_ : 1;              // on_high_water fired, on_drain not yet
  bool closing_shutdown_ : 1;        // closing for a drain (reason shutdown), not close()
  uint8_t busy_ = 0;                 // nested callbacks of this connection running
  CodecState codec_state_;           // the codec's, between frames
  int fd_;
  detail::Engine* engine_;
  Buffer* input_ = nullptr;          // only an incomplete frame
  Buffer* output_ = nullptr;         // only unsent output
  void* context_ = nullptr;
};

}  // namespace evwheel
