// heartbeat — the policy that decides when a connection pings and when a silent peer is dead,
// and the per-endpoint engine that applies it with ONE wheel entry per connection.
//
// Rules, for each connection (P = ping interval, I = idle timeout, G = I - P):
//   * any received byte refreshes the idle clock (one store: the wheel entry is not moved;
//     the entry's next firing recomputes its deadline);
//   * the pinging side sends a ping P after the tick its last ping went out in (with
//     skip_when_active, a ping is skipped while bytes flowed both ways since the last one —
//     the peer's prove it alive, ours keep its idle clock running);
//     one ping is outstanding at a time — TCP does not lose it, so re-asking would only add load;
//   * a peer silent for I is dead, except:
//       - bytes already waiting in its socket (FIONREAD) are read first: a loop that fell
//         behind does not blame the peer for its own lateness;
//       - the pinging side closes only a peer that has left a ping unanswered for G.  If our
//         own loop stalled (SIGSTOP, a blocked callback) we had not asked for a while; the
//         peer then gets a fresh ping and G to answer it, so a stall does not close every peer
//         at once, while a peer that really died is closed one round later;
//       - the side that only answers excuses a silence once if its own check ran more than
//         G/2 late (its peer may share the stalled process): it waits one more idle timeout.
//   * pings of connections opened in one burst are spread over the interval (a low-discrepancy
//     sequence), so they do not all fall into one tick.
// The wheel's tick is min(P/16, 1 s) unless set: an idle close comes at most one tick after its
// deadline, and each tick sends its pings as one burst (one wake-up for many connections).
#pragma once

#include <cstdint>

#include "evwheel/histogram.hpp"
#include "evwheel/timer_wheel.hpp"

namespace evwheel {

enum class PingMode : uint8_t { server, client, both };  // who sends the pings

struct HeartbeatPolicy {
  Duration ping_interval = std::chrono::seconds(15);  // the seed's defaults
  Duration idle_timeout = std::chrono::seconds(30);
  PingMode mode = PingMode::server;
  bool skip_when_active = false;  // no ping while traffic flowed both ways within the interval
  Duration tick = Duration::zero();  // zero: min(ping_interval / 16, 1 s)

  // Throws std::invalid_argument naming the bad field: zero or negative times, an idle timeout
  // not longer than the interval, a tick longer than the interval.
  void validate() const;
  Duration effective_tick() const noexcept;
};

// Counters an endpoint keeps; rtt and ping_lateness are histograms of every sample.
struct HeartbeatStats {
  uint64_t pings_sent = 0;
  uint64_t pongs_received = 0;
  uint64_t pings_answered = 0;   // pings the peer sent us, answered with a pong
  uint64_t pings_skipped = 0;    // skip_when_active: traffic made the ping unnecessary
  uint64_t idle_closes = 0;
  uint64_t protocol_errors = 0;
  uint64_t late_reads = 0;       // a silent-looking peer whose answer was already queued
  Histogram rtt;
  Histogram ping_lateness;       // actual send time - scheduled time
};

class Connection;

// The heartbeat engine of one endpoint (see the rules above).  Used by Endpoint/Connection.
class Heartbeat {
 public:
  Heartbeat(const HeartbeatPolicy& policy, bool pings, TimePoint now);

  void start(Connection& connection, TimePoint now);
  void on_timer(Connection& connection, TimePoint now);
  void on_pong(Connection& connection, const char* payload, std::size_t size, TimePoint now);
  // Sends a ping now (stamped with a fresh clock read); false if the connection cannot send.
  bool send_ping(Connection& connection);

  TimerWheel& wheel() noexcept { return wheel_; }
  const HeartbeatPolicy& policy() const noexcept { return policy_; }
  bool pings() const noexcept { return pings_; }
  HeartbeatStats& stats() noexcept { return stats_; }
  const HeartbeatStats& stats() const noexcept { return stats_; }

 private:
  bool outstanding(const Connection& connection) const noexcept;
  bool asks(const Connection& connection) const noexcept;
  // Our own loop ran this connection's check more than half a grace period late.
  bool stalled(const Connection& connection, TimePoint now) const noexcept;
  TimePoint ping_due(const Connection& connection) const noexcept;
  // Sends (or, with skip_when_active, skips) the ping if one is due and none is outstanding;
  // returns whether one was due.
  bool ping_if_due(Connection& connection, TimePoint now);
  bool answers_outstanding_ping(const Connection& connection, const char* payload,
                                std::size_t size) const noexcept;
  TimePoint next_check(const Connection& connection, TimePoint now) const noexcept;

  HeartbeatPolicy policy_;
  Duration grace_;  // idle_timeout - ping_interval: how long an unanswered ping is given
  bool pings_;
  uint64_t started_ = 0;  // connections started, for spreading their first pings
  TimerWheel wheel_;
  HeartbeatStats stats_;
};

}  // namespace evwheel
