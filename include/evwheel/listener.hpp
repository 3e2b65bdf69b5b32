// listener — a nonblocking listening socket that accepts in bounded batches and hands each
// connection to an Endpoint.
//
// Running out of descriptors (EMFILE/ENFILE) neither spins the loop nor stops accepting for
// good: one descriptor is kept in reserve; when accept fails for lack of descriptors the
// reserve is released, the pending connection is accepted and closed at once (shed, so the
// client learns instead of waiting), and the reserve is taken again.  If even that fails
// (ENOBUFS/ENOMEM, or the reserve cannot be retaken), accepting pauses for `retry_after` and
// resumes by itself.  Connections beyond max_connections are shed the same way.  Sheds (info
// for max_connections, warning for descriptors), pauses and accept errors are logged (log.hpp).
//
// Addresses (address.hpp; docs/addresses.md): numeric only, since binding to a name would
// need a lookup that blocks — IPv4 (plus "localhost" for 127.0.0.1 and "*" for every IPv4
// address), [IPv6] ([::] takes IPv4 clients too unless v6_only), unix:/path and unix:@name.  A
// unix:/path listener clears a stale socket file before it binds (never a file that is not a
// socket, nor a socket someone listens on: see src/socket_file.hpp) and removes its file when
// it closes.  Unix connections get no TCP socket options (the Endpoint skips them).
//
// PROXY protocol (proxy_protocol != off): each accepted socket first waits in a ProxyGate (see
// proxy_gate.hpp) for the header a proxy such as HAProxy sends; the Endpoint gets it, and
// on_open runs, only once the header is in, and Connection::peer_address() then reports the
// client the header named.  WebSocket (the endpoint's codec is a WebSocketCodec): each socket
// then waits in a WebSocketGate (websocket_gate.hpp) until its opening handshake is answered.
// Sockets still waiting in either count toward max_connections.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "evwheel/address.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/proxy_gate.hpp"
#include "evwheel/proxy_protocol.hpp"
#include "evwheel/reactor.hpp"
#include "evwheel/websocket_gate.hpp"

namespace evwheel {

class SocketFile;

struct ListenerOptions {
  std::string address = "127.0.0.1:0";  // see above; port 0 picks a free one (see port())
  int backlog = 4096;                   // capped by the kernel's net.core.somaxconn
  bool reuse_port = false;              // SO_REUSEPORT: several processes/reactors share a port
  bool v6_only = false;                 // IPV6_V6ONLY: an IPv6 listener refuses IPv4 clients
  std::size_t max_connections = 0;      // 0: no limit besides descriptors
  int accept_batch = 64;                // accepts per readiness event, so accepting cannot starve I/O
  Duration retry_after = std::chrono::milliseconds(100);
  ProxyProtocol proxy_protocol = ProxyProtocol::off;  // which PROXY headers to require
  Duration proxy_timeout = std::chrono::seconds(5);    // for the whole header, from accept
  ProxyErrorCallback on_proxy_error = nullptr;         // optional; see ProxyErrorCallback
};

struct ListenerStats {
  uint64_t accepted = 0;
  uint64_t shed_limit = 0;        // over max_connections
  uint64_t shed_descriptors = 0;  // accepted and closed for lack of descriptors
  uint64_t pauses = 0;            // accepting paused for retry_after
  uint64_t accept_errors = 0;     // accept failures other than the transient ones (EAGAIN, EINTR, ...)
  int last_error = 0;
  uint64_t proxy_failures[kProxyErrors] = {};  // by ProxyError: reset before their header was in
  WebSocketGateStats websocket;                // handshakes, when the endpoint speaks WebSocket
};

class Listener final : private IoHandler {
 public:
  // Binds and listens.  Throws std::invalid_argument on bad options (reuse_port with a Unix
  // address included) and std::system_error when the socket cannot be set up: EADDRINUSE,
  // ENOTSOCK for a unix:/path that is some other kind of file, EACCES, ...
  Listener(Endpoint& endpoint, ListenerOptions options);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Stops accepting for good: the socket leaves the reactor and is closed, so new clients are
  // refused by the kernel (connections already accepted are the Endpoint's), and a unix:/path
  // listener removes its file.  Idempotent; the destructor does it too.  port() and address()
  // keep what they had.
  void close() noexcept;
  bool closed() const noexcept { return fd_ < 0; }

  uint16_t port() const noexcept { return address_.port(); }  // 0 for a Unix socket
  // The address bound, with the port the kernel picked for port 0.
  const Address& address() const noexcept { return address_; }
  // The listening socket, for socket options evwheel does not wrap (e.g. a SO_REUSEPORT
  // steering program); do not close it.
  int fd() const noexcept { return fd_; }
  const ListenerStats& stats() const noexcept { return stats_; }
  // Accepted sockets whose PROXY header has not arrived yet, and whose WebSocket handshake is
  // not done yet.
  std::size_t awaiting_header() const noexcept { return gate_ ? gate_->waiting() : 0; }
  std::size_t handshaking() const noexcept { return websocket_gate_ ? websocket_gate_->waiting() : 0; }

 private:
  void on_io(uint32_t events) override;
  void open_socket(const Address& address);
  bool out_of_descriptors(int error);  // false: end this batch (the queue is empty, or accepting paused)
  void pause();
  void shed(int fd) noexcept;
  void admit(int fd, const SocketAddress* client);  // past the PROXY header, if any
  Endpoint& endpoint_;
  Reactor& reactor_;
  ListenerOptions options_;
  int fd_ = -1;
  int reserve_fd_ = -1;
  Address address_;
  std::unique_ptr<SocketFile> socket_file_;  // a unix:/path listener's
  TimerId resume_timer_ = 0;
  ListenerStats stats_;
  // After the members they use.  The WebSocket gate comes second: a PROXY header is first on
  // the wire.
  std::unique_ptr<WebSocketGate> websocket_gate_;  // only when the endpoint speaks WebSocket
  std::unique_ptr<ProxyGate> gate_;                // only with the PROXY protocol
};

}  // namespace evwheel
