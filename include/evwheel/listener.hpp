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
// PROXY protocol (proxy_protocol != off): each accepted socket first waits in a ProxyGate (see
// proxy_gate.hpp) for the header a proxy such as HAProxy sends; the Endpoint gets it, and
// on_open runs, only once the header is in, and Connection::peer_address() then reports the
// client the header named.  Sockets still waiting count toward max_connections.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "evwheel/endpoint.hpp"
#include "evwheel/proxy_gate.hpp"
#include "evwheel/proxy_protocol.hpp"
#include "evwheel/reactor.hpp"

namespace evwheel {

struct ListenerOptions {
  std::string address = "127.0.0.1:0";  // HOST:PORT; port 0 picks a free one (see port())
  int backlog = 4096;                   // capped by the kernel's net.core.somaxconn
  bool reuse_port = false;              // SO_REUSEPORT: several processes/reactors share a port
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
};

class Listener final : private IoHandler {
 public:
  // Binds and listens.  Throws std::invalid_argument on bad options and std::system_error
  // (e.g. EADDRINUSE) when the socket cannot be set up.
  Listener(Endpoint& endpoint, ListenerOptions options);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Stops accepting for good: the socket leaves the reactor and is closed, so new clients are
  // refused by the kernel (connections already accepted are the Endpoint's).  Idempotent; the
  // destructor does it too.  port() keeps the number it had.
  void close() noexcept;
  bool closed() const noexcept { return fd_ < 0; }

  uint16_t port() const noexcept { return port_; }
  // The listening socket, for socket options evwheel does not wrap (e.g. a SO_REUSEPORT
  // steering program); do not close it.
  int fd() const noexcept { return fd_; }
  const ListenerStats& stats() const noexcept { return stats_; }
  // Accepted sockets whose PROXY header has not arrived yet.
  std::size_t awaiting_header() const noexcept { return gate_ ? gate_->waiting() : 0; }

 private:
  void on_io(uint32_t events) override;
  bool out_of_descriptors(int error);  // false: end this batch (the queue is empty, or accepting paused)
  void pause();
  void shed(int fd) noexcept;

  Endpoint& endpoint_;
  Reactor& reactor_;
  ListenerOptions options_;
  int fd_ = -1;
  int reserve_fd_ = -1;
  uint16_t port_ = 0;
  TimerId resume_timer_ = 0;
  ListenerStats stats_;
  std::unique_ptr<ProxyGate> gate_;  // only with the PROXY protocol; after the members it uses
};

}  // namespace evwheel
