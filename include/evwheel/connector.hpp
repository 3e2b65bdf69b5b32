// connector — one client connection kept up: a nonblocking connect with a timeout, optional
// reconnection with exponential backoff and jitter, and the same Connection type as a server's
// once connected (handed to the Endpoint, which then owns it).
//
// Addresses: any form of address.hpp (IPv4, [IPv6], unix:/path, unix:@name), or NAME:PORT with
// a host name.  An attempt (a "pass") tries the addresses in order: the next one as soon as one
// fails (refused, unreachable, its connect_timeout), and only when all have failed does the pass
// fail: on_connect_error then reports the last address's error once, and the backoff starts.
//
// Host names are resolved at the start of every pass (so a reconnect follows a DNS change), by
// getaddrinfo on a short-lived helper thread that posts the answer back to the loop
// (Reactor::post): the loop never blocks on DNS, and a connector can be made and started from
// inside any callback.  The alternative, one blocking lookup before the loop starts, would stall
// the loop of whoever starts a connector later, and would freeze the addresses for good.  The
// lookup takes as long as the system resolver does (resolv.conf's timeout and attempts); it is
// not part of connect_timeout.  Destroying or stopping a connector whose lookup is in flight is
// safe: the answer, when it comes, is dropped.  A name that does not resolve fails the pass with
// a negative error: the getaddrinfo code (EAI_NONAME: no such host; EAI_AGAIN: the DNS server
// did not answer) — errno values are positive, and connect_error_string() names both.
//
// WebSocket: when the endpoint's codec is a WebSocketCodec, the Connector sends the opening
// handshake once TCP is up and hands the socket over only after a valid 101 (within the same
// connect_timeout); a refused or malformed answer fails that address with EPROTO (logged with
// the reason), and the next address is tried, as for any other failure.
//
// Backoff: pass n waits min(backoff_max, backoff_initial * 2^(n-1)), of which a random half is
// dropped ("equal jitter"), so clients cut off together do not come back together.  A
// successful connect resets the count.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "evwheel/address.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/reactor.hpp"
#include "evwheel/websocket.hpp"

namespace evwheel {

class Lookup;

struct ConnectorOptions {
  std::string address;   // where to connect: an address.hpp form, or NAME:PORT (resolved)
  // Optional local IP address to connect from, numeric, no port (127.0.0.2, ::1 or [::1]); only
  // addresses of its family are tried (a name is resolved to that family only).  Not for Unix.
  std::string source;
  Duration connect_timeout = std::chrono::seconds(5);  // for each address tried
  bool reconnect = false;  // after a failed pass or a closed connection, try again
  Duration backoff_initial = std::chrono::milliseconds(100);
  Duration backoff_max = std::chrono::seconds(30);
};

// The text of an on_connect_error code: strerror for an errno (positive), gai_strerror for a
// resolution failure (negative).
const char* connect_error_string(int error) noexcept;

class Connector final : private IoHandler, private CloseObserver {
 public:
  enum class State : uint8_t { idle, resolving, connecting, connected, waiting, stopped };

  // Throws std::invalid_argument on a bad address or source, a source with a Unix address or
  // of the other family than a numeric address, or non-positive times.  Nothing blocks here.
  Connector(Endpoint& endpoint, ConnectorOptions options);
  // Stops (a lookup in flight is abandoned); an established connection is closed (local_close).
  ~Connector();
  Connector(const Connector&) = delete;
  Connector& operator=(const Connector&) = delete;

  void start();  // begins the first pass (from idle or stopped)
  void stop();   // no further attempts; an established connection stays open
  State state() const noexcept { return state_; }
  Connection* connection() const noexcept { return connection_; }
  // Attempts (passes) begun: each ends in a connection or in one on_connect_error.
  uint64_t attempts() const noexcept { return attempts_; }
  // The last failure as on_connect_error reports it (see connect_error_string), 0 before any.
  int last_error() const noexcept { return last_error_; }
  // The address being tried, connected to, or tried last; AF_UNSPEC before the first.
  const Address& remote() const noexcept { return remote_; }

 private:
  void on_io(uint32_t events) override;
  void on_connection_closed(Connection& connection, CloseReason reason) override;
  void attempt();  // starts a pass: resolves the name, or tries the fixed address
  void resolved(int error, std::vector<Address> addresses);
  void try_next();  // connects to the next untried address of the pass, or fails the pass
  bool open_socket(const Address& remote);  // false: failed at once (last_error_ set)
  void connected();
  void start_handshake();
  void read_handshake(uint32_t events);
  void address_failed(int error);
  void pass_failed(int error);
  void retry_later();
  void cancel_timer() noexcept;
  void cancel_lookup() noexcept;
  void abandon_socket() noexcept;
  Duration backoff() noexcept;

  Endpoint& endpoint_;
  Reactor& reactor_;
  ConnectorOptions options_;
  const WebSocketCodec* websocket_;  // the endpoint's codec, when it speaks WebSocket
  bool handshaking_ = false;         // TCP is up; the WebSocket handshake is not done
  std::array<char, 24> websocket_key_{};  // Sec-WebSocket-Key of the handshake under way
  std::optional<HostName> name_;   // set when options_.address is NAME:PORT
  std::vector<Address> addresses_;  // this pass's, in the order they are tried
  std::size_t next_address_ = 0;
  Address remote_;
  Address local_;                  // from options_.source; AF_UNSPEC: the kernel picks
  State state_ = State::idle;
  int fd_ = -1;                 // the socket while connecting
  Connection* connection_ = nullptr;
  TimerId timer_ = 0;           // connect timeout or backoff wait
  std::shared_ptr<Lookup> lookup_;  // while resolving
  unsigned failures_ = 0;       // consecutive failed passes, for the backoff
  uint64_t attempts_ = 0;
  int last_error_ = 0;
  std::minstd_rand random_;
};

}  // namespace evwheel
