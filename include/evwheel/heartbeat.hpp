// heartbeat — the policy that decides when a connection pings and when a silent peer is dead,
// the per-connection state it needs (one wheel entry each), and the per-endpoint engine that
// applies it.
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
//     sequence), so they do not all fall into one tick; runs of 64 consecutive connections
//     share a spread point, so each tick pings neighbours in memory, in order.
// The wheel's tick is min(P/16, 1 s) unless set: an idle close comes at most one tick after its
// deadline, and each tick sends its pings as one burst (one wake-up for many connections).
#pragma once

#include <cstddef>
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

// Counters an endpoint keeps; rtt and ping_lateness are histograms of every sample.  Only
// Heartbeat writes them.
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

class Heartbeat;

// One connection's heartbeat: its single wheel entry and the clock readings the rules need.
// Embedded in the Connection (56 bytes on x86-64 with the entry), so it costs no allocation.
class HeartbeatEntry : public TimerEntry {
 public:
  explicit HeartbeatEntry(Callback on_expire, TimePoint now) noexcept
      : TimerEntry(on_expire), rtt_pending_(false), stall_credit_(false), sent_since_ping_(false),
        last_receive_(now), ping_sent_(now) {}

  TimePoint last_receive() const noexcept { return last_receive_; }
  Duration rtt() const noexcept { return std::chrono::microseconds(rtt_us_); }  // smoothed; 0 before the first

  // The receive path: one store, the wheel entry is not moved.
  void received(TimePoint now) noexcept {
    last_receive_ = now;
    stall_credit_ = false;
  }
  // The connection wrote something (skip_when_active counts it as traffic our way).
  void sent() noexcept { sent_since_ping_ = true; }

 private:
  friend class Heartbeat;
  // Field order packs the bits and rtt_us_ into the entry's tail padding.
  bool rtt_pending_ : 1;       // a ping stamped with ping_sent_ is out (seed pongs carry no id)
  bool stall_credit_ : 1;      // this silence was already excused once by our own stall
  bool sent_since_ping_ : 1;   // we wrote something since the last ping (skip_when_active)
  uint32_t rtt_us_ = 0;        // smoothed, microseconds
  TimePoint last_receive_;
  TimePoint ping_sent_;        // the outstanding or last ping (virtual for skipped ones)
};

// The heartbeat engine of one endpoint: the rules above, its wheel and its statistics.  It
// decides; the connection acts.  When an entry fires, the connection asks silent() — and if so
// reads whatever already waits in its socket — then judge(), sends the ping or closes as told,
// and calls rearm() if it is still open.  A pong goes to on_pong(), which may ask for the
// overdue next ping.  Nothing here does I/O or knows the connection type.
class Heartbeat {
 public:
  enum class Verdict : uint8_t {
    alive,  // nothing to do but rearm()
    ping,   // send a ping now (send_ping with the stamp()), then ping_sent() and rearm()
    dead,   // close the connection: idle timeout
  };

  // `pings`: this side sends pings; `ping_payload_size`: bytes of the codec's ping payload.
  Heartbeat(const HeartbeatPolicy& policy, bool pings, std::size_t ping_payload_size, TimePoint now);

  // A new connection: its first ping falls at a spread point within (0, P].
  void start(HeartbeatEntry& entry, TimePoint now) noexcept;
  void stop(HeartbeatEntry& entry) noexcept { wheel_.cancel(entry); }

  // Silent for the idle timeout: before judge() the connection reads bytes already waiting (a
  // loop that fell behind must not blame the peer) and reports them with late_read().
  bool silent(const HeartbeatEntry& entry, TimePoint now) const noexcept;
  void late_read() noexcept { ++stats_.late_reads; }
  // `asking`: the connection is open for sending and this side pings.
  Verdict judge(HeartbeatEntry& entry, TimePoint now, bool asking, bool reading_paused) noexcept;
  void rearm(HeartbeatEntry& entry, TimePoint now, bool asking) noexcept;

  // A ping's payload for one sent at `now` (our own send time, so its pong names it); returns
  // the payload size, at most kMaxPingPayload.
  static constexpr std::size_t kMaxPingPayload = 8;
  std::size_t stamp(TimePoint now, char* payload) const noexcept;
  // The ping stamped `now` went out; `scheduled`: the heartbeat's own (its lateness is recorded).
  void ping_sent(HeartbeatEntry& entry, TimePoint now, bool scheduled) noexcept;
  // A pong arrived: matches it to the outstanding ping (RTT).  Verdict::ping when the next ping
  // is already overdue (the entry sleeps until that ping's judgement otherwise).
  Verdict on_pong(HeartbeatEntry& entry, const char* payload, std::size_t size, TimePoint now,
                  bool asking) noexcept;
  void ping_answered() noexcept { ++stats_.pings_answered; }
  void protocol_error() noexcept { ++stats_.protocol_errors; }

  TimerWheel& wheel() noexcept { return wheel_; }
  const HeartbeatPolicy& policy() const noexcept { return policy_; }
  bool pings() const noexcept { return pings_; }
  const HeartbeatStats& stats() const noexcept { return stats_; }

 private:
  bool outstanding(const HeartbeatEntry& entry) const noexcept;
  // Our own loop ran this connection's check more than half a grace period late.
  bool stalled(const HeartbeatEntry& entry, TimePoint now) const noexcept;
  TimePoint ping_due(const HeartbeatEntry& entry) const noexcept;
  // Whether a ping is due with none outstanding; with skip_when_active and traffic both ways
  // a due ping is skipped here (marked as if sent).
  enum class Due : uint8_t { not_due, skipped, ping };
  Due ping_if_due(HeartbeatEntry& entry, TimePoint now, bool asking) noexcept;
  bool answers_outstanding_ping(const HeartbeatEntry& entry, const char* payload,
                                std::size_t size) const noexcept;
  void record_rtt(HeartbeatEntry& entry, Duration sample) noexcept;
  TimePoint next_check(const HeartbeatEntry& entry, TimePoint now, bool asking) const noexcept;

  HeartbeatPolicy policy_;
  Duration grace_;  // idle_timeout - ping_interval: how long an unanswered ping is given
  bool pings_;
  std::size_t ping_payload_size_;
  uint64_t started_ = 0;  // connections started, for spreading their first pings
  TimerWheel wheel_;
  HeartbeatStats stats_;
};

}  // namespace evwheel
