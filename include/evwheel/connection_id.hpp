// connection_id — a name for one connection that stays unique while the process lives: where
// a Connection* is reused for the next connection on the same descriptor, its id is not.
//
// An id is the descriptor number, the generation of the descriptor's registration with its
// reactor (64 bits, new for every registration: never repeats in practice), the index of that
// reactor (ReactorOptions::index; ReactorPool numbers its reactors) and the endpoint's number
// on that reactor.  So an id says which reactor to send to, and a stale id — its connection
// closed, the descriptor since reused — finds nothing.  Plain data: copy it to any thread,
// keep it in maps.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace evwheel {

struct ConnectionId {
  uint64_t generation = 0;  // 0: no connection
  int32_t fd = -1;
  uint16_t reactor = 0;
  uint16_t endpoint = 0;

  explicit operator bool() const noexcept { return generation != 0; }
  friend bool operator==(const ConnectionId& a, const ConnectionId& b) noexcept {
    return a.generation == b.generation && a.fd == b.fd && a.reactor == b.reactor && a.endpoint == b.endpoint;
  }
  friend bool operator!=(const ConnectionId& a, const ConnectionId& b) noexcept { return !(a == b); }
};

// "r0.e1.fd12.g345", for logs.
std::string to_string(const ConnectionId& id);

}  // namespace evwheel

template <>
struct std::hash<evwheel::ConnectionId> {
  std::size_t operator()(const evwheel::ConnectionId& id) const noexcept {
    uint64_t mixed = id.generation * 0x9e3779b97f4a7c15u ^ static_cast<uint32_t>(id.fd) ^
                     uint64_t{id.reactor} << 32 ^ uint64_t{id.endpoint} << 48;
    return static_cast<std::size_t>(mixed ^ mixed >> 29);
  }
};
