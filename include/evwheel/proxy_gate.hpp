// proxy_gate — where a Listener with the PROXY protocol keeps accepted sockets until their
// header has arrived.  It then takes exactly the header's bytes off the socket (it only peeks
// before that), so application bytes that came in the same segment stay for the Connection,
// and hands the socket on (to the Endpoint, or a WebSocketGate) with the client the header named.  A socket whose
// header is refused by the parser, is not complete within the timeout, or whose peer leaves
// first, is reset (SO_LINGER 0), counted by ProxyError and reported to the error callback.
//
// A socket is first looked at as it is accepted: a proxy sends its header right after
// connecting, so usually it is complete already and the socket goes straight on.  Otherwise it
// waits in a WaitingRoom (waiting_room.hpp): edge-triggered, so each peek sees everything
// received so far and a new edge comes only with new bytes, and timed on the reactor's wheel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "evwheel/address.hpp"
#include "evwheel/proxy_protocol.hpp"
#include "evwheel/reactor.hpp"
#include "evwheel/timer_wheel.hpp"
#include "evwheel/waiting_room.hpp"

namespace evwheel {

// Told about each refused socket: the reason and the socket's own peer (the proxy, or whoever
// connected directly).  Exceptions it throws are swallowed; it must not destroy the Listener.
using ProxyErrorCallback = std::function<void(ProxyError, const SocketAddress& peer)>;

class ProxyGate {
 public:
  // Where a socket goes once its header is in: `client` is the client the header named, null
  // for a LOCAL header (a health check from the proxy itself).
  using Next = std::function<void(int fd, const SocketAddress* client)>;

  // `failures` (counts by ProxyError) and `on_error` (may be empty) must outlive the gate.
  ProxyGate(Reactor& reactor, Next next, ProxyProtocol accepted, Duration timeout,
            uint64_t (&failures)[kProxyErrors], const ProxyErrorCallback& on_error);
  // Sockets still waiting are reset (not counted as failures).
  ProxyGate(const ProxyGate&) = delete;
  ProxyGate& operator=(const ProxyGate&) = delete;

  // Takes an accepted socket; it goes on once its header is in.
  void hold(int fd);
  std::size_t waiting() const noexcept { return room_.size(); }

 private:
  struct Waiting final : WaitingSocket {
    Waiting() noexcept : WaitingSocket(&ProxyGate::expired) {}
    void on_io(uint32_t events) override { gate->examine(*this, events); }
    ProxyGate* gate = nullptr;
  };

  static void expired(TimerEntry& entry);
  // Peeks and acts on what has arrived; true while the socket still waits for more.  False
  // after it was passed on or refused, when the gate itself may be gone (see pass()).
  bool examine(Waiting& waiting, uint32_t events);
  void pass(Waiting& waiting, const ProxyHeader& header, char* scratch);
  void refuse(Waiting& waiting, ProxyError reason);

  Next next_;
  ProxyProtocol accepted_;
  uint64_t (&failures_)[kProxyErrors];
  const ProxyErrorCallback& on_error_;
  WaitingRoom<Waiting> room_;
};

}  // namespace evwheel
