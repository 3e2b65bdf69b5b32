// connector — one client connection kept up: a nonblocking connect with a timeout, optional
// reconnection with exponential backoff and jitter, and the same Connection type as a server's
// once connected (handed to the Endpoint, which then owns it).
//
// Backoff: attempt n waits min(backoff_max, backoff_initial * 2^(n-1)), of which a random half
// is dropped ("equal jitter"), so clients cut off together do not come back together.  A
// successful connect resets the count.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <random>
#include <string>

#include "evwheel/endpoint.hpp"
#include "evwheel/reactor.hpp"

namespace evwheel {

struct ConnectorOptions {
  std::string address;   // HOST:PORT to connect to
  std::string source;    // optional local IPv4 address to connect from (e.g. 127.0.0.2)
  Duration connect_timeout = std::chrono::seconds(5);
  bool reconnect = false;  // after a failed attempt or a closed connection, try again
  Duration backoff_initial = std::chrono::milliseconds(100);
  Duration backoff_max = std::chrono::seconds(30);
};

class Connector final : private IoHandler, private CloseObserver {
 public:
  enum class State : uint8_t { idle, connecting, connected, waiting, stopped };

  // Throws std::invalid_argument on a bad address or non-positive times.
  Connector(Endpoint& endpoint, ConnectorOptions options);
  // Stops; an established connection is closed (local_close).
  ~Connector();
  Connector(const Connector&) = delete;
  Connector& operator=(const Connector&) = delete;

  void start();  // begins the first attempt (from idle or stopped)
  void stop();   // no further attempts; an established connection stays open
  State state() const noexcept { return state_; }
  Connection* connection() const noexcept { return connection_; }
  uint64_t attempts() const noexcept { return attempts_; }
  int last_error() const noexcept { return last_error_; }

 private:
  void on_io(uint32_t events) override;
  void on_connection_closed(Connection& connection, CloseReason reason) override;
  void attempt();
  void connected();
  void failed(int error);
  void retry_later();
  void cancel_timer() noexcept;
  void abandon_socket() noexcept;
  Duration backoff() noexcept;

  Endpoint& endpoint_;
  Reactor& reactor_;
  ConnectorOptions options_;
  sockaddr_in remote_{};
  sockaddr_in local_{};
  State state_ = State::idle;
  int fd_ = -1;                 // the socket while connecting
  Connection* connection_ = nullptr;
  TimerId timer_ = 0;           // connect timeout or backoff wait
  unsigned failures_ = 0;       // consecutive, for the backoff
  uint64_t attempts_ = 0;
  int last_error_ = 0;
  std::minstd_rand random_;
};

}  // namespace evwheel
