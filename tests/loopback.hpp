// loopback — helpers shared by the tests over real sockets: a loop driver, raw peer sockets on
// 127.0.0.1, framed bytes, a handler that records what happened, and a server and a client
// side on one reactor.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "evwheel/address.hpp"
#include "evwheel/codec.hpp"
#include "evwheel/connection.hpp"
#include "evwheel/connector.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/reactor.hpp"
#include "evwheel/waiting_room.hpp"

namespace loopback {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using evwheel::CloseReason;
using evwheel::Duration;
using evwheel::FrameType;

// Milliseconds between two steady_clock points, as a double (for messages and bounds).
inline double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// Runs `reactor` in slices of at most 2 ms until `done()` holds or `timeout` passes; returns done().
template <class Done>
bool pump_until(evwheel::Reactor& reactor, Done&& done, Duration timeout = 5s) {
  auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() >= deadline) return done();
    reactor.run_once(2ms);
  }
  return true;
}

// Runs `reactor` for `span` of wall time, whatever happens.
inline void pump_for(evwheel::Reactor& reactor, Duration span) {
  auto end = Clock::now() + span;
  pump_until(reactor, [&] { return Clock::now() >= end; }, span + 1s);
}

// A raw listening socket on 127.0.0.1 with a kernel-chosen port (stored in *address); -1 on failure.
inline int raw_listen(int backlog, sockaddr_in* address) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  *address = sockaddr_in{};
  address->sin_family = AF_INET;
  address->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof *address;
  if (::bind(fd, reinterpret_cast<sockaddr*>(address), sizeof *address) < 0 || ::listen(fd, backlog) < 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(address), &length) < 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A socket bound to `address` (port 0: a free one; see Address::local_of for which) but not
// listening: connects to it are refused, and nobody else can take the port meanwhile; -1 on
// failure.
inline int bound_not_listening(const evwheel::Address& address) {
  int fd = ::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && ::bind(fd, address.get(), address.length()) == 0) return fd;
  if (fd >= 0) ::close(fd);
  return -1;
}

// Whether this machine has an IPv6 loopback (::1) to bind to: tests that need one say so and
// skip without it.
inline bool ipv6_loopback_available() {
  int fd = bound_not_listening(evwheel::Address::parse("[::1]:0"));
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// A blocking TCP socket connected to 127.0.0.1:port (from `source` if given; SO_RCVBUF set
// before connecting when rcvbuf > 0); -1 on failure.
inline int raw_connect(uint16_t port, int rcvbuf = 0, const char* source = nullptr) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  if (source) {
    ::inet_pton(AF_INET, source, &address.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) {
      ::close(fd);
      return -1;
    }
  }
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Writes all of `bytes` to a blocking socket; false on error.
inline bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t sent = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(sent));
  }
  return true;
}

constexpr int kOpen = 0;   // drain(): nothing more to read for now
constexpr int kEof = -1;   // drain(): the peer closed (FIN)

// Appends everything waiting on `fd` to `out` without blocking; kOpen, kEof or the errno.
inline int drain(int fd, std::string& out) {
  char chunk[16384];
  for (;;) {
    ssize_t got = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (got > 0) {
      out.append(chunk, static_cast<std::size_t>(got));
    } else if (got == 0) {
      return kEof;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return kOpen;
    } else if (errno != EINTR) {
      return errno;
    }
  }
}

// Reads `fd` until EOF or an error, for at most `timeout` (no reactor involved); kEof, the errno,
// or kOpen on timeout.
inline int read_to_end(int fd, std::string* out = nullptr, Duration timeout = 3s) {
  std::string sink;
  auto deadline = Clock::now() + timeout;
  for (;;) {
    int status = drain(fd, out ? *out : sink);
    if (status != kOpen) return status;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return kOpen;
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left));
  }
}

// Waits for the first thing a raw client hears: 1 = a framed ping (it is served), 0 = a reset or
// EOF (it was shed), -1 = nothing within `timeout`.  `pump` runs the server's loop, if in-process.
template <class Pump>
inline int first_word(int fd, Pump&& pump, Duration timeout = 3s) {
  std::string in;
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    int status = drain(fd, in);
    if (in.size() >= 5) return in[4] == static_cast<char>(FrameType::ping) ? 1 : -1;
    if (status != kOpen) return 0;
    pump();
  }
  return -1;
}

// Closes `fd` with SO_LINGER {1, 0}: the peer gets a reset instead of a FIN.
using evwheel::reset_close;

// The address of the peer of socket `fd`, as dotted quad.
inline std::string peer_host(int fd) {
  sockaddr_in address{};
  socklen_t length = sizeof address;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length) < 0) return "?";
  char host[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &address.sin_addr, host, sizeof host);
  return host;
}

// The local address of socket `fd` as HOST:PORT (what the peer sees as its client address).
inline std::string local_address(int fd) { return evwheel::to_string(evwheel::Address::local_of(fd)); }

// One frame of the framed codec: 4-byte big-endian length, type byte, payload (length may lie).
inline std::string frame(FrameType type, std::string_view payload, uint32_t length = UINT32_MAX) {
  if (length == UINT32_MAX) length = static_cast<uint32_t>(payload.size());
  std::string out{static_cast<char>(length >> 24), static_cast<char>(length >> 16),
                  static_cast<char>(length >> 8), static_cast<char>(length),
                  static_cast<char>(type)};
  return out.append(payload);
}

// Removes the whole framed frames at the front of `bytes` and returns them as (type, payload).
inline std::vector<std::pair<FrameType, std::string>> take_frames(std::string& bytes) {
  std::vector<std::pair<FrameType, std::string>> frames;
  std::size_t at = 0;
  while (bytes.size() - at >= 5) {
    auto b = [&](std::size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[at + i])); };
    uint32_t length = b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
    if (bytes.size() - at - 5 < length) break;
    frames.emplace_back(static_cast<FrameType>(b(4)), bytes.substr(at + 5, length));
    at += 5 + length;
  }
  bytes.erase(0, at);
  return frames;
}

// Heartbeat-configured endpoint options: side, ping interval P, idle timeout I, ping mode.
inline evwheel::EndpointOptions options(evwheel::Side side, Duration interval, Duration idle,
                                        evwheel::PingMode mode = evwheel::PingMode::server) {
  evwheel::EndpointOptions o;
  o.side = side;
  o.heartbeat.ping_interval = interval;
  o.heartbeat.idle_timeout = idle;
  o.heartbeat.mode = mode;
  return o;
}

// A handler that records opens, messages, closes and connect errors; hooks add behaviour.
struct Recorder : evwheel::ConnectionHandler {
  struct Close {
    int fd;
    CloseReason reason;
    int error;
    Clock::time_point at;
  };
  std::vector<evwheel::Connection*> live;  // open connections, in the order they opened
  std::vector<std::string> messages;
  std::vector<Close> closes;
  std::vector<int> connect_errors;
  std::vector<std::size_t> high_waters;  // the `queued` each on_high_water reported
  std::size_t opens = 0, drains = 0;
  std::function<void(evwheel::Connection&)> open_hook;
  std::function<void(evwheel::Connection&, std::string_view)> message_hook;
  std::function<void(evwheel::Connection&, CloseReason)> close_hook;

  void on_open(evwheel::Connection& c) override {
    ++opens;
    live.push_back(&c);
    if (open_hook) open_hook(c);
  }
  void on_message(evwheel::Connection& c, std::string_view m) override {
    messages.emplace_back(m);
    if (message_hook) message_hook(c, m);
  }
  void on_close(evwheel::Connection& c, CloseReason reason, int error) override {
    live.erase(std::remove(live.begin(), live.end(), &c), live.end());
    closes.push_back({c.fd(), reason, error, Clock::now()});
    if (close_hook) close_hook(c, reason);
  }
  void on_high_water(evwheel::Connection&, std::size_t queued) override { high_waters.push_back(queued); }
  void on_drain(evwheel::Connection&) override { ++drains; }
  void on_connect_error(evwheel::Connector&, int error) override { connect_errors.push_back(error); }

  std::size_t closed_with(CloseReason reason) const {
    return static_cast<std::size_t>(std::count_if(closes.begin(), closes.end(),
                                                  [&](const Close& c) { return c.reason == reason; }));
  }
};

// One reactor with a server endpoint and a client endpoint, each recorded, the heartbeat out of
// the way (1 s / 3 s); listen() and connect() add a listener and a connector (replacing the
// previous one), destroyed before the endpoints.
struct Sides {
  evwheel::Reactor reactor;
  Recorder server, client;
  evwheel::Endpoint server_ep{reactor, server, options(evwheel::Side::server, 1s, 3s)};
  evwheel::Endpoint client_ep{reactor, client, options(evwheel::Side::client, 1s, 3s)};
  std::optional<evwheel::Listener> listener;
  std::optional<evwheel::Connector> connector;

  evwheel::Listener& listen(const std::string& address, bool v6_only = false) {
    evwheel::ListenerOptions o;
    o.address = address;
    o.v6_only = v6_only;
    return listener.emplace(server_ep, o);
  }
  // Starts a connector to `address` (from `source` if not empty).
  evwheel::Connector& connect(const std::string& address, const std::string& source = "") {
    evwheel::ConnectorOptions o;
    o.address = address;
    o.source = source;
    connector.reset();
    connector.emplace(client_ep, o);
    connector->start();
    return *connector;
  }
  // Pumps until the connector is connected and the server has a connection open.
  bool opened() {
    return pump_until(reactor, [&] { return connector && connector->connection() && !server.live.empty(); });
  }
  // Sends `text` over the connector's connection and back from the server's newest one; true
  // when it arrived both ways.
  bool exchange(const std::string& text) {
    if (!opened()) return false;
    std::size_t to_server = server.messages.size(), to_client = client.messages.size();
    return connector->connection()->send(text) &&
           pump_until(reactor, [&] { return server.messages.size() > to_server; }) &&
           server.messages.back() == text && server.live.back()->send(text) &&
           pump_until(reactor, [&] { return client.messages.size() > to_client; }) && client.messages.back() == text;
  }
};

}  // namespace loopback
