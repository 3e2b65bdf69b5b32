// heartbeat — the rules in include/evwheel/heartbeat.hpp, judged when a connection's single
// wheel entry fires.  Receiving never touches the wheel: it stores last_receive_, and the
// next firing computes the next deadline from it.
#include "evwheel/heartbeat.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace evwheel {

namespace {
constexpr double kGoldenFraction = 0.6180339887498949;  // spreads k * φ evenly over [0, 1)
// Connections started one after the other share a spread point, kSpreadBlock at a time, so a
// tick pings runs of consecutive connections: their descriptors, their Connection slots and the
// sockets the kernel allocated for them lie together, and the tick's sends walk memory in order.
// Pinging the same connections in a scattered order cost 2-3 µs more per heartbeat at 19000
// connections (the kernel's share, on cache-cold sockets), 20-30 % of the whole.
constexpr uint64_t kSpreadBlock = 64;
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

Heartbeat::Heartbeat(const HeartbeatPolicy& policy, bool pings, std::size_t ping_payload_size, TimePoint now)
    : policy_(policy),
      grace_(policy.idle_timeout - policy.ping_interval),
      pings_(pings),
      ping_payload_size_(std::min(ping_payload_size, kMaxPingPayload)),
      wheel_(now, TimerWheelOptions{policy.effective_tick(), TimerWheel::kDefaultLevels}) {}

bool Heartbeat::stalled(const HeartbeatEntry& entry, TimePoint now) const noexcept {
  return !entry.stall_credit_ && now - entry.deadline() > grace_ / 2;
}

bool Heartbeat::outstanding(const HeartbeatEntry& entry) const noexcept {
  return entry.ping_sent_ > entry.last_receive_;
}

bool Heartbeat::silent(const HeartbeatEntry& entry, TimePoint now) const noexcept {
  return now >= entry.last_receive_ + policy_.idle_timeout;
}

void Heartbeat::start(HeartbeatEntry& entry, TimePoint now) noexcept {
  entry.last_receive_ = now;
  // A virtual last ping, so the first real one falls at its block's spread point within (0, P].
  uint64_t block = started_++ / kSpreadBlock + 1;
  double fraction = std::fmod(static_cast<double>(block) * kGoldenFraction, 1.0);
  auto offset = Duration(static_cast<Duration::rep>(fraction * static_cast<double>(policy_.ping_interval.count())));
  entry.ping_sent_ = now - policy_.ping_interval + std::max(offset, Duration(1));
  wheel_.schedule(entry, next_check(entry, now, pings_));
}

Heartbeat::Verdict Heartbeat::judge(HeartbeatEntry& entry, TimePoint now, bool asking,
                                    bool reading_paused) noexcept {
  asking = asking && pings_;
  if (reading_paused) {
    // Not listening is our choice, not the peer's silence: judge again after a full timeout.
    entry.last_receive_ = std::max(entry.last_receive_, now - policy_.ping_interval);
  }
  if (silent(entry, now) && !asking && stalled(entry, now)) {
    // We only listen, and we were not even doing that: the peer's messages to us may be late
    // because we were (a peer in the same stalled process).  Excuse this silence once.
    entry.stall_credit_ = true;
    entry.last_receive_ = now;
  }
  if (silent(entry, now)) {
    if (!asking || (outstanding(entry) && now >= entry.ping_sent_ + grace_)) {
      ++stats_.idle_closes;
      return Verdict::dead;
    }
    // We have not asked since it last spoke (our own stall, or skipped pings): ask now and
    // give it a full round before judging.
    if (!outstanding(entry)) return Verdict::ping;
  }
  return ping_if_due(entry, now, asking) == Due::ping ? Verdict::ping : Verdict::alive;
}

void Heartbeat::rearm(HeartbeatEntry& entry, TimePoint now, bool asking) noexcept {
  wheel_.schedule(entry, next_check(entry, now, asking && pings_));
}

Heartbeat::Due Heartbeat::ping_if_due(HeartbeatEntry& entry, TimePoint now, bool asking) noexcept {
  if (!asking || outstanding(entry) || now < ping_due(entry)) return Due::not_due;
  // Traffic both ways makes the ping redundant: the peer's bytes prove it alive, and ours
  // keep its own idle clock running (a peer that only listens would otherwise judge us dead).
  if (policy_.skip_when_active && entry.sent_since_ping_ &&
      entry.last_receive_ > now - policy_.ping_interval) {
    entry.ping_sent_ = entry.last_receive_;
    entry.sent_since_ping_ = false;
    ++stats_.pings_skipped;
    return Due::skipped;
  }
  return Due::ping;
}

std::size_t Heartbeat::stamp(TimePoint now, char* payload) const noexcept {
  // Our own send time, echoed by the pong: the pong then names the ping it answers.
  auto stamp = static_cast<uint64_t>(now.time_since_epoch().count());
  for (std::size_t i = 0; i < ping_payload_size_; ++i) payload[i] = static_cast<char>(stamp >> (56 - 8 * i));
  return ping_payload_size_;
}

void Heartbeat::ping_sent(HeartbeatEntry& entry, TimePoint now, bool scheduled) noexcept {
  if (scheduled) stats_.ping_lateness.record(now - ping_due(entry));
  entry.ping_sent_ = now;
  entry.rtt_pending_ = true;
  entry.sent_since_ping_ = false;
  ++stats_.pings_sent;
}

Heartbeat::Verdict Heartbeat::on_pong(HeartbeatEntry& entry, const char* payload, std::size_t size,
                                      TimePoint now, bool asking) noexcept {
  ++stats_.pongs_received;
  if (answers_outstanding_ping(entry, payload, size)) {
    entry.rtt_pending_ = false;
    record_rtt(entry, now - entry.ping_sent_);
  }
  // A pong that comes after the next ping fell due (a slow peer, or a slow loop): the wheel
  // entry sleeps until that ping's judgement, so the overdue ping goes now, and the entry is
  // moved to the next check — the only wheel operation a pong ever causes.
  asking = asking && pings_;
  switch (ping_if_due(entry, now, asking)) {
    case Due::ping: return Verdict::ping;  // the connection sends it, then rearms
    case Due::skipped: rearm(entry, now, asking); break;
    case Due::not_due: break;
  }
  return Verdict::alive;
}

bool Heartbeat::answers_outstanding_ping(const HeartbeatEntry& entry, const char* payload,
                                         std::size_t size) const noexcept {
  if (!entry.rtt_pending_) return false;
  if (size < 8) return true;  // a token without an id (seed) answers the ping that is out
  uint64_t stamp = 0;
  for (std::size_t i = 0; i < 8; ++i) stamp = stamp << 8 | static_cast<unsigned char>(payload[i]);
  return stamp == static_cast<uint64_t>(entry.ping_sent_.time_since_epoch().count());
}

void Heartbeat::record_rtt(HeartbeatEntry& entry, Duration sample) noexcept {
  auto micros = static_cast<uint32_t>(
      std::clamp<int64_t>(std::chrono::duration_cast<std::chrono::microseconds>(sample).count(), 1,
                          UINT32_MAX));
  // The same smoothing as TCP's SRTT (RFC 6298): 7/8 old + 1/8 new.
  entry.rtt_us_ = entry.rtt_us_ == 0 ? micros : static_cast<uint32_t>((uint64_t{entry.rtt_us_} * 7 + micros) / 8);
  stats_.rtt.record(sample);
}

TimePoint Heartbeat::ping_due(const HeartbeatEntry& entry) const noexcept {
  // From the start of the tick the last ping went out in, not from its exact send time: pings
  // leave a few microseconds after their tick begins, and P after that would fall just past a
  // tick boundary and wait a whole extra tick — every ping one tick late, the interval P + tick.
  Duration since_epoch = entry.ping_sent_.time_since_epoch();
  return TimePoint(since_epoch - since_epoch % wheel_.tick()) + policy_.ping_interval;
}

TimePoint Heartbeat::next_check(const HeartbeatEntry& entry, TimePoint now, bool asking) const noexcept {
  TimePoint idle_at = entry.last_receive_ + policy_.idle_timeout;
  if (!asking) return idle_at;
  TimePoint due = ping_due(entry);
  // Nothing outstanding: the next ping is due (at once, if it already is).
  if (!outstanding(entry)) return std::min(due, idle_at);
  // One is outstanding: judge it after its grace, but wake at the next due time too, in case
  // its pong comes first (receiving does not touch the wheel).
  TimePoint judge_at = std::max(idle_at, entry.ping_sent_ + grace_);
  return due > now ? std::min(due, judge_at) : judge_at;
}

}  // namespace evwheel
