// heartbeat — the rules in include/evwheel/heartbeat.hpp, applied when a connection's single
// wheel entry fires.  Receiving never touches the wheel: it stores last_receive_, and the
// next firing computes the next deadline from it.
#include "evwheel/heartbeat.hpp"

#include <sys/ioctl.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "evwheel/connection.hpp"
#include "evwheel/endpoint.hpp"

namespace evwheel {

namespace {
constexpr std::size_t kMaxPingPayload = 64;
constexpr double kGoldenFraction = 0.6180339887498949;  // spreads k * φ evenly over [0, 1)
}  // namespace

void HeartbeatPolicy::validate() const {
  if (ping_interval <= Duration::zero())
    throw std::invalid_argument("evwheel: heartbeat ping_interval must be > 0");
  if (idle_timeout <= Duration::zero())
    throw std::invalid_argument("evwheel: heartbeat idle_timeout must be > 0");
  if (idle_timeout <= ping_interval)
    throw std::invalid_argument("evwheel: heartbeat idle_timeout must be longer than ping_interval");
  if (tick < Duration::zero() || tick > ping_interval)
    throw std::invalid_argument("evwheel: heartbeat tick must be within 0 (automatic) ..= ping_interval");
}

Duration HeartbeatPolicy::effective_tick() const noexcept {
  if (tick > Duration::zero()) return tick;
  return std::clamp<Duration>(ping_interval / 16, Duration(1), std::chrono::seconds(1));
}

Heartbeat::Heartbeat(const HeartbeatPolicy& policy, bool pings, TimePoint now)
    : policy_(policy),
      grace_(policy.idle_timeout - policy.ping_interval),
      pings_(pings),
      wheel_(now, TimerWheelOptions{policy.effective_tick(), TimerWheel::kDefaultLevels}) {}

bool Heartbeat::asks(const Connection& connection) const noexcept {
  return pings_ && connection.state_ == Connection::State::open;
}

bool Heartbeat::stalled(const Connection& connection, TimePoint now) const noexcept {
  return !connection.stall_credit_ && now - connection.deadline() > grace_ / 2;
}

bool Heartbeat::outstanding(const Connection& connection) const noexcept {
  return connection.ping_sent_ > connection.last_receive_;
}

void Heartbeat::start(Connection& connection, TimePoint now) {
  connection.last_receive_ = now;
  // A virtual last ping, so the first real one falls at a spread point within (0, P].
  double fraction = std::fmod(static_cast<double>(++started_) * kGoldenFraction, 1.0);
  auto offset = Duration(static_cast<Duration::rep>(fraction * static_cast<double>(policy_.ping_interval.count())));
  connection.ping_sent_ = now - policy_.ping_interval + std::max(offset, Duration(1));
  wheel_.schedule(connection, next_check(connection, now));
}

void Heartbeat::on_timer(Connection& connection, TimePoint now) {
  if (connection.read_paused_) {
    // Not listening is our choice, not the peer's silence: judge again after a full timeout.
    connection.last_receive_ = std::max(connection.last_receive_, now - policy_.ping_interval);
  } else if (now >= connection.last_receive_ + policy_.idle_timeout) {
    int waiting = 0;
    if (::ioctl(connection.fd_, FIONREAD, &waiting) == 0 && waiting > 0) {
      // Silent only because we were slow to read: not the peer's fault.
      ++stats_.late_reads;
      connection.read_input();
      if (connection.state_ == Connection::State::closed) return;
    }
  }
  if (now >= connection.last_receive_ + policy_.idle_timeout && !asks(connection) &&
      stalled(connection, now)) {
    // We only listen, and we were not even doing that: the peer's messages to us may be late
    // because we were (a peer in the same stalled process).  Excuse this silence once.
    connection.stall_credit_ = true;
    connection.last_receive_ = now;
  }
  if (now >= connection.last_receive_ + policy_.idle_timeout) {
    if (!asks(connection) || (outstanding(connection) && now >= connection.ping_sent_ + grace_)) {
      ++stats_.idle_closes;
      return connection.close(CloseReason::idle_timeout, 0);
    }
    // We have not asked since it last spoke (our own stall, or skipped pings): ask now and
    // give it a full round before judging.
    if (!outstanding(connection)) send_ping(connection);
  }
  ping_if_due(connection, now);
  if (connection.state_ != Connection::State::closed)
    wheel_.schedule(connection, next_check(connection, now));
}

bool Heartbeat::ping_if_due(Connection& connection, TimePoint now) {
  TimePoint due = ping_due(connection);
  if (!asks(connection) || outstanding(connection) || now < due) return false;
  // Traffic both ways makes the ping redundant: the peer's bytes prove it alive, and ours
  // keep its own idle clock running (a peer that only listens would otherwise judge us dead).
  if (policy_.skip_when_active && connection.sent_since_ping_ &&
      connection.last_receive_ > now - policy_.ping_interval) {
    connection.ping_sent_ = connection.last_receive_;
    connection.sent_since_ping_ = false;
    ++stats_.pings_skipped;
  } else if (send_ping(connection)) {
    stats_.ping_lateness.record(connection.ping_sent_ - due);
  }
  return true;
}

bool Heartbeat::send_ping(Connection& connection) {
  // A fresh clock read, not the iteration's: if the loop was blocked earlier in this
  // iteration, a stale send time would shorten the peer's grace to answer (and the RTT).
  TimePoint now = connection.endpoint_->reactor_.update_now();
  char payload[kMaxPingPayload] = {};
  std::size_t size = std::min(connection.endpoint_->codec_->ping_payload_size(), kMaxPingPayload);
  // Our own send time, echoed by the pong: the pong then names the ping it answers.
  auto stamp = static_cast<uint64_t>(now.time_since_epoch().count());
  for (std::size_t i = 0; i < std::min<std::size_t>(size, 8); ++i)
    payload[i] = static_cast<char>(stamp >> (56 - 8 * i));
  if (!connection.send_frame(FrameType::ping, payload, size)) return false;
  connection.ping_sent_ = now;
  connection.rtt_pending_ = true;
  connection.sent_since_ping_ = false;
  ++stats_.pings_sent;
  return true;
}

void Heartbeat::on_pong(Connection& connection, const char* payload, std::size_t size, TimePoint now) {
  ++stats_.pongs_received;
  if (answers_outstanding_ping(connection, payload, size)) {
    connection.rtt_pending_ = false;
    connection.record_rtt(now - connection.ping_sent_);
  }
  // A pong that comes after the next ping fell due (a slow peer, or a slow loop): the wheel
  // entry sleeps until that ping's judgement, so the overdue ping goes now, and the entry is
  // moved to the next check — the only wheel operation a pong ever causes.
  if (ping_if_due(connection, now) && connection.state_ != Connection::State::closed)
    wheel_.schedule(connection, next_check(connection, now));
}

bool Heartbeat::answers_outstanding_ping(const Connection& connection, const char* payload,
                                         std::size_t size) const noexcept {
  if (!connection.rtt_pending_) return false;
  if (size < 8) return true;  // a token without an id (seed) answers the ping that is out
  uint64_t stamp = 0;
  for (std::size_t i = 0; i < 8; ++i) stamp = stamp << 8 | static_cast<unsigned char>(payload[i]);
  return stamp == static_cast<uint64_t>(connection.ping_sent_.time_since_epoch().count());
}

TimePoint Heartbeat::ping_due(const Connection& connection) const noexcept {
  // From the start of the tick the last ping went out in, not from its exact send time: pings
  // leave a few microseconds after their tick begins, and P after that would fall just past a
  // tick boundary and wait a whole extra tick — every ping one tick late, the interval P + tick.
  Duration since_epoch = connection.ping_sent_.time_since_epoch();
  return TimePoint(since_epoch - since_epoch % wheel_.tick()) + policy_.ping_interval;
}

TimePoint Heartbeat::next_check(const Connection& connection, TimePoint now) const noexcept {
  TimePoint idle_at = connection.last_receive_ + policy_.idle_timeout;
  if (!asks(connection)) return idle_at;
  TimePoint due = ping_due(connection);
  // Nothing outstanding: the next ping is due (at once, if it already is).
  if (!outstanding(connection)) return std::min(due, idle_at);
  // One is outstanding: judge it after its grace, but wake at the next due time too, in case
  // its pong comes first (receiving does not touch the wheel).
  TimePoint judge_at = std::max(idle_at, connection.ping_sent_ + grace_);
  return due > now ? std::min(due, judge_at) : judge_at;
}

}  // namespace evwheel
