// websocket_gate — where a Listener whose endpoint speaks WebSocket keeps accepted sockets
// until their opening handshake is done.  It answers the HTTP request itself — 101 and the
// socket goes to the Endpoint (on_open runs then), or a page, 400, 403, 404, 426 or 431 and
// the socket closes — so a Connection only ever sees frames.
//
// Like the ProxyGate it only peeks until the request's head is whole, then takes exactly the
// head's bytes off the socket: frames a client sends right behind its request stay for the
// Connection.  A socket is looked at as it is accepted (a client sends its request at once);
// otherwise it waits registered edge-triggered, one wake-up per piece of request, with a
// timer on the reactor's wheel (a WaitingRoom, waiting_room.hpp): a handshake not complete
// within handshake_timeout (slowloris) or whose peer leaves is reset.  The request's bytes
// live in the socket, not here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "evwheel/address.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/reactor.hpp"
#include "evwheel/timer_wheel.hpp"
#include "evwheel/waiting_room.hpp"
#include "evwheel/websocket.hpp"

namespace evwheel {

struct WebSocketGateStats {
  uint64_t upgrades = 0;            // handshakes answered 101: connections opened
  uint64_t refused = 0;             // upgrade requests answered 400, 403, 426 or 431
  uint64_t pages = 0;               // plain requests answered (a page, or 404)
  uint64_t abandoned = 0;           // reset: not complete within handshake_timeout, or the peer left
};

class WebSocketGate {
 public:
  // `codec` is the endpoint's; `stats` must outlive the gate.  Sockets still handshaking when
  // the gate goes are reset (not counted as abandoned).
  WebSocketGate(Endpoint& endpoint, const WebSocketCodec& codec, WebSocketGateStats& stats);
  ~WebSocketGate();
  WebSocketGate(const WebSocketGate&) = delete;
  WebSocketGate& operator=(const WebSocketGate&) = delete;

  // Takes an accepted socket; `client` is the client a PROXY header named, if any.
  void hold(int fd, const SocketAddress* client);
  std::size_t waiting() const noexcept { return room_.size(); }

 private:
  struct Waiting;

  static void expired(TimerEntry& entry);
  // Peeks and acts on what has arrived; true while the socket still waits for more.  False
  // after it was answered or dropped, when the gate itself may be gone (see finish()).
  bool examine(Waiting& waiting, uint32_t events);
  // Answers the whole head of `length` bytes at the front of `head`.
  void answer(Waiting& waiting, const char* head, std::size_t length);
  // Takes the head off the socket, sends `response_` (counted in `answered`), then adopts the
  // socket or closes it.
  void finish(Waiting& waiting, std::size_t head_length, bool upgraded, void* context, uint64_t& answered);
  void drop(Waiting& waiting) noexcept;  // resets the socket

  Endpoint& endpoint_;
  const WebSocketCodec& codec_;
  WebSocketGateStats& stats_;
  std::unique_ptr<char[]> peek_;  // max_request + 1 bytes: one more tells a head too large
  std::string response_;           // reused for every answer
  WaitingRoom<Waiting> room_;  // after what its slots use: emptied first
};

}  // namespace evwheel
