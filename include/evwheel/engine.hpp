// engine — what the connections of one endpoint share: the one piece of the connection engine
// that sits below Connection.  Internal: endpoint.hpp includes it, applications never need to.
//
// Layers, each including only those below it:
//   timer_wheel, fd_table, buffer, codec, histogram, log, address
//   reactor                      (epoll + timerfd + eventfd; fd-indexed registrations)
//   heartbeat                    (policy, per-connection entry, decisions and statistics)
//   engine                       (this: reactor, codec, buffers, scratch, heartbeat, limits)
//   connection                   (one socket: reads, frames, writes; asks the heartbeat, acts)
//   endpoint, listener, connector, proxy_gate, ...   (the public façade and its feeders)
// A Connection knows its Engine and nothing above it; the Endpoint that owns the engine and
// the connections' storage is told of closes through Engine::Owner.
//
// Every member is used on the loop thread only.
#pragma once

#include <cstddef>
#include <memory>

#include "evwheel/address.hpp"
#include "evwheel/buffer.hpp"
#include "evwheel/codec.hpp"
#include "evwheel/fd_table.hpp"
#include "evwheel/heartbeat.hpp"
#include "evwheel/reactor.hpp"

namespace evwheel {

class Connection;
class ConnectionHandler;
class Endpoint;
enum class CloseReason : uint8_t;

namespace detail {

class Engine {
 public:
  // The owner of the connections' storage and bookkeeping (the Endpoint).
  class Owner {
   public:
    // After a connection closed (it is out of epoll and the wheel): count, report, on_close.
    virtual void closed(Connection& connection, CloseReason reason, int error) noexcept = 0;
    // Destroys a closed connection and frees its slot and descriptor.
    virtual void recycle(Connection& connection) noexcept = 0;

   protected:
    ~Owner() = default;
  };

  struct Limits {
    std::size_t read_size;   // the scratch area each read lands in
    std::size_t high_water;  // queued output that triggers on_high_water
    std::size_t max_output;  // queued output that closes (output_overflow)
    Duration close_timeout;  // how long a close handshake waits for the peer's close frame
  };

  Engine(Reactor& reactor, ConnectionHandler& handler, Owner& owner, Endpoint& endpoint,
         std::shared_ptr<const Codec> codec, const HeartbeatPolicy& policy, bool pings, Limits limits);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  Reactor& reactor;
  ConnectionHandler& handler;
  Owner& owner;
  Endpoint& endpoint;  // only handed back to users (Connection::endpoint()), never called
  const std::shared_ptr<const Codec> codec;
  Heartbeat heartbeat;
  BufferPool buffers;
  const std::unique_ptr<char[]> scratch;  // reads land here; only partial frames are copied out
  const Limits limits;
  bool draining = false;                   // a connection whose output drained closes
  uint16_t number = 0;                     // the endpoint's receiver number on the reactor (ConnectionId)
  // Clients named by PROXY headers, by descriptor (Endpoint::adopt_proxied).  Chunks appear
  // only when proxied connections come, so endpoints without the PROXY protocol pay nothing.
  FdTable<SocketAddress, 256> proxied_clients;
  // Fragmented messages being put together, by descriptor: like the buffers, borrowed only
  // while a connection is in the middle of one.
  FdTable<Buffer*, 256> messages;
  const bool close_frames;   // the codec has close frames (WebSocket): closes say goodbye
  uint16_t close_code = 0;   // of the connection whose on_close runs (Connection::close_code)

  // Four fresh random bytes to mask a payload with (a codec that masks_payload()): taken from
  // getrandom(2) in batches, so a mask costs no system call of its own.  Throws
  // std::system_error if getrandom fails.
  void mask_key(uint8_t key[4]);

 private:
  static bool has_close_frames(const Codec& codec) noexcept;
  static constexpr std::size_t kRandomBatch = 256;
  std::unique_ptr<uint8_t[]> random_;
  std::size_t random_left_ = 0;
};

}  // namespace detail
}  // namespace evwheel
