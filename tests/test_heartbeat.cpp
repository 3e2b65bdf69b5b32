// Unit tests for evwheel::Heartbeat (heartbeat.hpp) on a manual clock: the engine decides, the
// test plays the connection (sends the pings it is told to, answers or stays silent).  No
// sockets and no wall clock, so every bound is exact: an idle close one tick early or one tick
// late fails here every time.
#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "evwheel/heartbeat.hpp"

namespace {

using evwheel::Duration;
using evwheel::Heartbeat;
using evwheel::HeartbeatEntry;
using evwheel::HeartbeatPolicy;
using evwheel::TimePoint;
using evwheel::TimerEntry;
using namespace std::chrono_literals;

constexpr TimePoint kStart = TimePoint(1000s);

HeartbeatPolicy policy(Duration interval, Duration idle, Duration tick) {
  HeartbeatPolicy p;
  p.ping_interval = interval;
  p.idle_timeout = idle;
  p.tick = tick;
  return p;
}

// A connection as the engine sees it: what Connection::check_liveness does, without a socket.
struct Peer : HeartbeatEntry {
  Peer(Heartbeat& engine, TimePoint now) : HeartbeatEntry(&Peer::fire, now), heartbeat(&engine) {}

  static void fire(TimerEntry& entry) {
    auto& peer = static_cast<Peer&>(static_cast<HeartbeatEntry&>(entry));
    peer.check(*peer.now);
  }

  void check(TimePoint at) {
    switch (heartbeat->judge(*this, at, true, false)) {
      case Heartbeat::Verdict::dead:
        closed_at = at;
        return;
      case Heartbeat::Verdict::ping:
        send_ping(at);
        break;
      case Heartbeat::Verdict::alive:
        break;
    }
    heartbeat->rearm(*this, at, true);
  }

  void send_ping(TimePoint at) {
    char payload[Heartbeat::kMaxPingPayload];
    last_stamp.assign(payload, heartbeat->stamp(at, payload));
    heartbeat->ping_sent(*this, at, true);
    pings.push_back(at);
  }

  // The peer's answer to the latest ping arrives at `at`.
  void pong(TimePoint at) {
    received(at);
    if (heartbeat->on_pong(*this, last_stamp.data(), last_stamp.size(), at, true) == Heartbeat::Verdict::ping) {
      send_ping(at);
      heartbeat->rearm(*this, at, true);
    }
  }

  Heartbeat* heartbeat;
  const TimePoint* now = nullptr;
  std::string last_stamp;
  std::vector<TimePoint> pings;
  std::optional<TimePoint> closed_at;
};

// Drives `heartbeat`'s wheel tick by tick, as a punctual reactor would, until `until`.
struct Clock {
  Heartbeat& heartbeat;
  TimePoint now = kStart;
  void run_until(TimePoint until, Duration step) {
    while (now < until) {
      now += step;
      heartbeat.wheel().advance(now);
    }
  }
};

// The answering side's whole rule: closed within [I, I + tick) of the last byte.
void check_answering_side_close(Duration interval, Duration idle, Duration tick, Duration last_byte_offset) {
  CAPTURE(interval.count());
  CAPTURE(idle.count());
  CAPTURE(tick.count());
  CAPTURE(last_byte_offset.count());
  Heartbeat heartbeat(policy(interval, idle, tick), /*pings=*/false, 8, kStart);
  Clock clock{heartbeat};
  Peer peer(heartbeat, clock.now);
  peer.now = &clock.now;
  heartbeat.start(peer, clock.now);
  clock.run_until(kStart + last_byte_offset, 1ms);
  TimePoint last_byte = clock.now;
  peer.received(last_byte);
  clock.run_until(last_byte + idle + 3 * tick, 1ms);
  REQUIRE(peer.closed_at.has_value());
  Duration silence = *peer.closed_at - last_byte;
  CHECK(silence >= idle);
  CHECK(silence < idle + tick);
  CHECK(peer.pings.empty());
  CHECK(heartbeat.stats().idle_closes == 1);
}

}  // namespace

TEST_CASE("the answering side closes a silent peer no earlier than the idle timeout and less than a tick after") {
  for (Duration offset : {0ms, 1ms, 37ms, 99ms, 100ms, 250ms})
    check_answering_side_close(1s, 3s, 100ms, offset);
  check_answering_side_close(200ms, 500ms, 10ms, 3ms);
}

TEST_CASE("the pinging side closes a peer that stops answering within [I, I + tick) of its last byte") {
  for (Duration answer_delay : {1ms, 20ms, 99ms}) {
    CAPTURE(answer_delay.count());
    Duration interval = 1s, idle = 3s, tick = 100ms;
    Heartbeat heartbeat(policy(interval, idle, tick), /*pings=*/true, 8, kStart);
    Clock clock{heartbeat};
    Peer peer(heartbeat, clock.now);
    peer.now = &clock.now;
    heartbeat.start(peer, clock.now);
    // Answer the first five pings, each `answer_delay` after it went out, then go silent.
    TimePoint last_byte{};
    while (peer.pings.size() < 5) {
      std::size_t before = peer.pings.size();
      clock.run_until(clock.now + 1ms, 1ms);
      if (peer.pings.size() > before) {
        clock.run_until(clock.now + answer_delay, 1ms);
        last_byte = clock.now;
        peer.pong(last_byte);
      }
      REQUIRE(clock.now < kStart + 30s);
    }
    clock.run_until(last_byte + idle + 3 * tick, 1ms);
    REQUIRE(peer.closed_at.has_value());
    Duration silence = *peer.closed_at - last_byte;
    CHECK(silence >= idle);
    CHECK(silence < idle + tick);
    // It kept asking while the peer was silent: one ping, unanswered, before the close.
    CHECK(peer.pings.size() == 6);
    CHECK(heartbeat.stats().rtt.count() == 5);
  }
}

TEST_CASE("pings go out every interval, on the tick they are due, while the peer answers") {
  Duration interval = 1s, idle = 3s, tick = 100ms;
  Heartbeat heartbeat(policy(interval, idle, tick), true, 8, kStart);
  Clock clock{heartbeat};
  Peer peer(heartbeat, clock.now);
  peer.now = &clock.now;
  heartbeat.start(peer, clock.now);
  std::size_t answered = 0;
  while (clock.now < kStart + 20s) {
    clock.run_until(clock.now + 1ms, 1ms);
    if (peer.pings.size() > answered) {
      answered = peer.pings.size();
      peer.pong(clock.now);
    }
  }
  CHECK_FALSE(peer.closed_at.has_value());
  REQUIRE(peer.pings.size() >= 19);
  for (std::size_t i = 1; i < peer.pings.size(); ++i) CHECK(peer.pings[i] - peer.pings[i - 1] == interval);
  CHECK(heartbeat.stats().ping_lateness.max() == Duration::zero());
}

TEST_CASE("after a stall of the loop, the pinging side asks once more and gives the peer the grace to answer") {
  Duration interval = 1s, idle = 3s, tick = 100ms;
  Heartbeat heartbeat(policy(interval, idle, tick), true, 8, kStart);
  Clock clock{heartbeat};
  Peer peer(heartbeat, clock.now);
  peer.now = &clock.now;
  heartbeat.start(peer, clock.now);
  clock.run_until(kStart + 2s, 1ms);
  REQUIRE(!peer.pings.empty());
  peer.pong(clock.now);
  std::size_t pings_before = peer.pings.size();
  // The loop is stopped for 10 s (no advance), then catches up in one step.
  clock.now += 10s;
  heartbeat.wheel().advance(clock.now);
  CHECK_FALSE(peer.closed_at.has_value());
  REQUIRE(peer.pings.size() == pings_before + 1);
  TimePoint asked = peer.pings.back();
  // The peer is really dead: closed once the fresh ping has been unanswered for I - P.
  clock.run_until(asked + (idle - interval) + 2 * tick, 1ms);
  REQUIRE(peer.closed_at.has_value());
  CHECK(*peer.closed_at - asked >= idle - interval);
  CHECK(*peer.closed_at - asked < idle - interval + tick);
}

TEST_CASE("a pong after the next ping fell due releases that ping at once") {
  Duration interval = 1s, idle = 3s, tick = 100ms;
  Heartbeat heartbeat(policy(interval, idle, tick), true, 8, kStart);
  Clock clock{heartbeat};
  Peer peer(heartbeat, clock.now);
  peer.now = &clock.now;
  heartbeat.start(peer, clock.now);
  clock.run_until(kStart + 1s + tick, 1ms);
  REQUIRE(peer.pings.size() == 1);
  TimePoint first = peer.pings[0];
  clock.run_until(first + interval + 300ms, 1ms);  // the next ping is overdue, unanswered one out
  REQUIRE(peer.pings.size() == 1);
  peer.pong(clock.now);
  REQUIRE(peer.pings.size() == 2);
  CHECK(peer.pings[1] == clock.now);
}

TEST_CASE("a read-paused connection is not judged idle") {
  Duration interval = 1s, idle = 3s, tick = 100ms;
  Heartbeat heartbeat(policy(interval, idle, tick), false, 8, kStart);
  Peer peer(heartbeat, kStart);
  heartbeat.start(peer, kStart);
  for (TimePoint t = kStart; t < kStart + 60s; t += tick)
    CHECK(heartbeat.judge(peer, t, true, /*reading_paused=*/true) == Heartbeat::Verdict::alive);
  CHECK(heartbeat.stats().idle_closes == 0);
}

TEST_CASE("a burst of connections is spread over the interval in runs of consecutive connections, each run on one tick") {
  const Duration interval = 1s, idle = 3s, tick = 62500us;  // 16 ticks per interval
  constexpr std::size_t kTicks = 16, kRun = 64, kPeers = 2 * kTicks * kRun;
  Heartbeat heartbeat(policy(interval, idle, tick), true, 8, kStart);
  Clock clock{heartbeat};
  std::vector<std::unique_ptr<Peer>> peers;
  for (std::size_t i = 0; i < kPeers; ++i) {
    peers.push_back(std::make_unique<Peer>(heartbeat, clock.now));
    peers.back()->now = &clock.now;
    heartbeat.start(*peers.back(), clock.now);
  }
  clock.run_until(kStart + interval, 1ms);
  std::vector<std::size_t> per_tick(kTicks + 1);
  for (std::size_t i = 0; i < kPeers; ++i) {
    CAPTURE(i);
    REQUIRE(peers[i]->pings.size() == 1);
    // A run shares its first ping's tick: the tick pings neighbours together.
    CHECK(peers[i]->pings[0] == peers[i / kRun * kRun]->pings[0]);
    ++per_tick[static_cast<std::size_t>((peers[i]->pings[0] - kStart) / tick)];
  }
  // 32 runs over 16 ticks by a low-discrepancy sequence: every tick has one to three runs,
  // none is left empty and none takes a pile.
  for (std::size_t t = 0; t < kTicks; ++t) {
    CAPTURE(t);
    CHECK(per_tick[t] >= kRun);
    CHECK(per_tick[t] <= 3 * kRun);
  }
  CHECK(per_tick[kTicks] == 0);
}
