// metrics_http — the smallest HTTP endpoint a Prometheus server can scrape, on the reactor of
// the service it reports on.  One request per connection (`Connection: close`):
//
//   GET /metrics      200, the text `render()` returns (Prometheus text format 0.0.4); a query
//                     string is ignored (`/metrics?x=1` is /metrics)
//   HEAD /metrics     the same headers (Content-Length included), no body
//   any other path    404
//   another method    405 with `Allow: GET, HEAD` (whatever the path: nothing here takes more)
//   a malformed request line  400;  a request head over kMaxRequest bytes  431
//
// Limits, so a stuck or hostile client cannot pile up descriptors or hold the endpoint: a client
// gets `deadline` from accept to send its request and read the answer, whether it is silent or
// trickles bytes; at most kMaxClients are served at once (more are reset at accept); running out
// of descriptors sheds the new connection without spinning (see listener.hpp: it is a Listener).
//
// It is built from the library's own parts: a Listener (so it binds any address a Listener
// takes) and an Endpoint whose codec frames one request head, with no pings.  Its counters are
// its own, never mixed into the endpoint it reports on.  render() runs on the loop thread; if it
// throws, the scrape's connection is closed (CloseReason::error, logged).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/reactor.hpp"

namespace evwheel {

struct MetricsHttpOptions {
  // HOST:PORT as for ListenerOptions::address; port 0 picks a free one (see port()).  Metrics
  // are for the operator's scraper, so the default is loopback only.
  std::string address = "127.0.0.1:0";
  // From accept to the last byte of the answer; at most an hour.
  Duration deadline = std::chrono::seconds(5);
};

class MetricsHttp final : private ConnectionHandler {
 public:
  static constexpr std::size_t kMaxRequest = 8192;  // request line and headers
  static constexpr std::size_t kMaxClients = 16;

  using Render = std::function<std::string()>;

  // Binds and listens.  Throws std::invalid_argument for a bad address or a deadline outside
  // (0, 1 h], std::system_error when the socket cannot be set up (e.g. EADDRINUSE).
  MetricsHttp(Reactor& reactor, Render render, MetricsHttpOptions options = {});
  MetricsHttp(const MetricsHttp&) = delete;
  MetricsHttp& operator=(const MetricsHttp&) = delete;

  uint16_t port() const noexcept { return listener_.port(); }
  // The accepting side (accepted, shed, pauses) and the clients being served.
  const ListenerStats& listener_stats() const noexcept { return listener_.stats(); }
  std::size_t clients() const noexcept { return endpoint_.size(); }

 private:
  void on_open(Connection& connection) override;
  void on_message(Connection& connection, std::string_view head) override;
  void on_close(Connection& connection, CloseReason reason, int error) override;
  std::string answer(std::string_view head) const;

  Render render_;
  Duration deadline_;
  std::vector<std::pair<Connection*, TimerId>> deadlines_;  // at most kMaxClients
  Endpoint endpoint_;  // after what its callbacks use: it closes its connections when destroyed
  Listener listener_;
};

}  // namespace evwheel
