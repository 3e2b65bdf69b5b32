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
};

}  // namespace detail
}  // namespace evwheel
