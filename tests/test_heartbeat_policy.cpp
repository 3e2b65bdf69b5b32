// Unit tests for evwheel::HeartbeatPolicy — validate() and effective_tick() (heartbeat.hpp).
#include <doctest/doctest.h>

#include "evwheel/heartbeat.hpp"

#include <chrono>
#include <stdexcept>
#include <string>

namespace {

using evwheel::Duration;
using evwheel::HeartbeatPolicy;
using namespace std::chrono_literals;

HeartbeatPolicy policy(Duration interval, Duration idle, Duration tick = Duration::zero()) {
  HeartbeatPolicy p;
  p.ping_interval = interval;
  p.idle_timeout = idle;
  p.tick = tick;
  return p;
}

// validate() must throw std::invalid_argument whose message names `field`.
void check_rejected(const HeartbeatPolicy& p, const std::string& field) {
  CAPTURE(field);
  CAPTURE(p.ping_interval.count());
  CAPTURE(p.idle_timeout.count());
  CAPTURE(p.tick.count());
  try {
    p.validate();
    FAIL_CHECK("validate() accepted a policy with a bad ", field);
  } catch (const std::invalid_argument& e) {
    std::string what = e.what();
    CAPTURE(what);
    CHECK(what.find(field) != std::string::npos);
  } catch (...) {
    FAIL_CHECK("validate() threw something other than std::invalid_argument");
  }
}

}  // namespace

TEST_CASE("the default policy is the seed's: ping every 15 s, idle after 30 s, and it validates") {
  HeartbeatPolicy p;
  CHECK(p.ping_interval == 15s);
  CHECK(p.idle_timeout == 30s);
  CHECK(p.tick == Duration::zero());
  CHECK_NOTHROW(p.validate());
}

TEST_CASE("validate() rejects a zero or negative ping_interval, naming it") {
  check_rejected(policy(Duration::zero(), 30s), "ping_interval");
  check_rejected(policy(-1ns, 30s), "ping_interval");
  check_rejected(policy(-15s, 30s), "ping_interval");
}

TEST_CASE("validate() rejects a zero or negative idle_timeout, naming it") {
  check_rejected(policy(15s, Duration::zero()), "idle_timeout");
  check_rejected(policy(15s, -1ns), "idle_timeout");
  check_rejected(policy(15s, -30s), "idle_timeout");
}

TEST_CASE("validate() rejects an idle_timeout not longer than ping_interval, naming idle_timeout") {
  check_rejected(policy(15s, 15s), "idle_timeout");
  check_rejected(policy(15s, 10s), "idle_timeout");
  check_rejected(policy(1ns, 1ns), "idle_timeout");
  CHECK_NOTHROW(policy(15s, 15s + 1ns).validate());
  CHECK_NOTHROW(policy(1ns, 2ns).validate());
}

TEST_CASE("validate() rejects a negative tick or one longer than ping_interval, naming tick") {
  check_rejected(policy(15s, 30s, -1ns), "tick");
  check_rejected(policy(15s, 30s, -1s), "tick");
  check_rejected(policy(15s, 30s, 15s + 1ns), "tick");
  check_rejected(policy(15s, 30s, 20s), "tick");
  // Zero (automatic), anything positive up to and including the interval is fine.
  CHECK_NOTHROW(policy(15s, 30s, Duration::zero()).validate());
  CHECK_NOTHROW(policy(15s, 30s, 1ns).validate());
  CHECK_NOTHROW(policy(15s, 30s, 100ms).validate());
  CHECK_NOTHROW(policy(15s, 30s, 15s).validate());
}

TEST_CASE("validate() accepts every ping mode and skip_when_active") {
  for (evwheel::PingMode mode : {evwheel::PingMode::server, evwheel::PingMode::client, evwheel::PingMode::both}) {
    for (bool skip : {false, true}) {
      HeartbeatPolicy p;
      p.mode = mode;
      p.skip_when_active = skip;
      CHECK_NOTHROW(p.validate());
    }
  }
}

TEST_CASE("effective_tick() is ping_interval / 16, at most 1 s, unless a tick is set") {
  CHECK(policy(15s, 30s).effective_tick() == 937500us);  // 15 s / 16 = 937.5 ms
  CHECK(policy(16s, 30s).effective_tick() == 1s);
  CHECK(policy(32s, 60s).effective_tick() == 1s);        // 2 s, capped at 1 s
  CHECK(policy(1h, 2h).effective_tick() == 1s);
  CHECK(policy(16ms, 32ms).effective_tick() == 1ms);
  CHECK(policy(1600us, 1s).effective_tick() == 100us);
  // Never zero, even for an interval below 16 ns.
  CHECK(policy(10ns, 20ns).effective_tick() == 1ns);
  CHECK(policy(1ns, 2ns).effective_tick() == 1ns);

  // An explicit tick wins, whether shorter or longer than the automatic one.
  CHECK(policy(15s, 30s, 10ms).effective_tick() == 10ms);
  CHECK(policy(15s, 30s, 5s).effective_tick() == 5s);
  CHECK(policy(15s, 30s, 15s).effective_tick() == 15s);
  CHECK(policy(16ms, 32ms, 3ms).effective_tick() == 3ms);
}
