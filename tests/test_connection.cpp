// Connection and heartbeat behaviour over real loopback sockets: idle closes, keep-alive by
// traffic, both codecs, close reasons, backpressure, RTT, ping modes, closing from callbacks,
// and no false closes when the loop itself stalls.  Peers are either raw sockets driven from the
// test body or a Connector-made client in the same reactor (one thread throughout).
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "evwheel/codec.hpp"
#include "evwheel/connection.hpp"
#include "evwheel/connector.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/reactor.hpp"
#include "fd_count.hpp"
#include "loop_clock.hpp"
#include "loopback.hpp"

using namespace evwheel;
using namespace loopback;

namespace {

constexpr auto kServer = Side::server;
constexpr auto kClient = Side::client;

// A server (endpoint + listener) and a Connector client in one reactor.  `client_first`
// constructs the client endpoint first, so its heartbeat wheel runs before the server's.
struct Pair {
  Reactor reactor;
  Recorder server, client;
  std::optional<Endpoint> server_ep, client_ep;
  std::optional<Listener> listener;
  std::optional<Connector> connector;

  Pair(const EndpointOptions& server_options, const EndpointOptions& client_options,
       bool client_first = false) {
    if (client_first) client_ep.emplace(reactor, client, client_options);
    server_ep.emplace(reactor, server, server_options);
    if (!client_first) client_ep.emplace(reactor, client, client_options);
    listener.emplace(*server_ep, ListenerOptions{});
    ConnectorOptions co;
    co.address = "127.0.0.1:" + std::to_string(listener->port());
    connector.emplace(*client_ep, co);
    connector->start();
  }
  ~Pair() {
    connector.reset();
    listener.reset();
    client_ep.reset();
    server_ep.reset();
  }
  bool connected() const { return server.live.size() == 1 && client.live.size() == 1; }
  const HeartbeatStats& shb() const { return server_ep->heartbeat_stats(); }
  const HeartbeatStats& chb() const { return client_ep->heartbeat_stats(); }
};

// A server endpoint and listener in their own reactor, for raw-socket peers.
struct Server {
  Reactor reactor;
  Recorder handler;
  Endpoint endpoint;
  Listener listener;
  explicit Server(const EndpointOptions& options, ReactorOptions reactor_options = {})
      : reactor(reactor_options), endpoint(reactor, handler, options), listener(endpoint, ListenerOptions{}) {}
  // A raw peer connected to this server, once the server has opened its side.
  int connect(int rcvbuf = 0) {
    std::size_t before = handler.opens;
    int fd = raw_connect(listener.port(), rcvbuf);
    REQUIRE(fd >= 0);
    REQUIRE(pump_until(reactor, [&] { return handler.opens > before; }));
    return fd;
  }
  const HeartbeatStats& hb() const { return endpoint.heartbeat_stats(); }
};

std::size_t occurrences(const std::string& text, std::string_view token) {
  std::size_t n = 0;
  for (auto at = text.find(token); at != std::string::npos; at = text.find(token, at + token.size())) ++n;
  return n;
}

}  // namespace

// --- liveness ------------------------------------------------------------------------------

TEST_CASE("a responsive peer is never closed over 20 ping intervals") {
  const std::size_t fds = open_fd_count();
  {
    Pair p(options(kServer, 20ms, 60ms), options(kClient, 20ms, 60ms));
    REQUIRE(pump_until(p.reactor, [&] { return p.connected(); }));
    // One ping is outstanding at a time and pings are >= P apart: 20 pongs span >= 19 intervals.
    REQUIRE(pump_until(p.reactor, [&] { return p.shb().pongs_received >= 20; }, 10s));
    CHECK(p.server.closes.empty());
    CHECK(p.client.closes.empty());
    CHECK(p.shb().idle_closes == 0);
    CHECK(p.chb().idle_closes == 0);
    CHECK(p.chb().pings_answered >= 20);
    CHECK(p.chb().pings_sent == 0);  // PingMode::server: the client only answers
  }
  CHECK(open_fd_count() == fds);
}

// --- idle close timing, on the reactor's own clock --------------------------------------------
//
// The promise: a peer silent since its last byte L is closed no earlier than L + I, and in the
// first loop iteration whose clock reaches the wheel tick that L + I falls in — at most one tick
// late, plus on the pinging side however late its last ping left (the peer has G = I - P from
// that ping to answer; the endpoint's ping_lateness histogram says how late pings were).  Each
// sample checks that on Reactor::now() itself, so a loaded machine cannot fail it.  A close a
// tick early or late is only visible when some iteration's clock fell inside that tick: a
// sample counts as judged for a direction only then, and each test needs one of each.

namespace {

// A raw peer speaking either codec's heartbeat by hand.
struct HandPeer {
  int fd = -1;
  bool seed = false;
  std::string in;
  std::string last_ping;  // framed: the payload a pong must echo
  int end = kOpen;        // how the socket ended: kEof or the errno (ECONNRESET after a reset)

  // How many pings arrived since the last call.
  int take_pings() {
    int status = drain(fd, in);
    if (status != kOpen && end == kOpen) end = status;
    int pings = 0;
    if (seed) {
      for (; in.size() >= 4; in.erase(0, 4)) pings += in.compare(0, 4, "ping") == 0;
      return pings;
    }
    for (auto& [type, payload] : take_frames(in)) {
      if (type != FrameType::ping) continue;
      ++pings;
      last_ping = payload;
    }
    return pings;
  }
  void ping() { REQUIRE(write_all(fd, seed ? std::string("ping") : frame(FrameType::ping, "12345678"))); }
  void pong() { REQUIRE(write_all(fd, seed ? std::string("pong") : frame(FrameType::pong, last_ping))); }
};

struct Judged {
  int early = 0;  // samples in which a close a tick early would have shown
  int late = 0;   // samples in which a close a tick late would have shown
};

// One connection: a few heartbeat exchanges, a last byte placed mid-tick, then silence until
// the server closes it.  `pinging`: the server pings (the peer answers); else the peer pings.
void idle_close_sample(bool seed, bool pinging, Judged& judged) {
  const Duration P = 40ms, I = 120ms, tick = 10ms, G = I - P;
  auto o = options(kServer, P, I, pinging ? PingMode::server : PingMode::client);
  o.heartbeat.tick = tick;
  if (seed) o.codec = std::make_shared<SeedCodec>();
  Server s(o);
  TimePoint close_now{}, last_byte{};
  s.handler.close_hook = [&](Connection& c, CloseReason) {
    close_now = s.reactor.now();
    last_byte = c.last_receive();
  };
  HandPeer peer{s.connect(), seed, {}, {}, kOpen};
  const auto never = TimePoint::max();
  int exchanges = 0;                           // warm-up round trips done
  TimePoint next_ping = Clock::now();          // answering side: when the peer pings
  TimePoint answered_ping{};                   // pinging side: when the ping the last byte answers arrived
  TimePoint last_word = never;                 // when the peer sends its last byte
  bool silent = false;                         // it did
  // Mid-tick, no earlier than `from`: then a tick early is a whole half tick before the deadline.
  auto mid_tick_from = [&](TimePoint from) {
    TimePoint t = loop_clock::tick_start(from, tick) + tick / 2;
    return t < from ? t + tick : t;
  };
  loop_clock::Timeline timeline;
  REQUIRE(pump_until(s.reactor, [&] {
    const TimePoint now = Clock::now();  // the reactor's clock: CLOCK_MONOTONIC
    int pings = peer.take_pings();
    if (last_word == never) {
      if (pinging && pings > 0) {
        if (exchanges < 2) {
          peer.pong();
          ++exchanges;
        } else {
          // Answered P/4 .. P/2 after the ping: its successor is not due yet, and goes out
          // well before the deadline, so the deadline is L + I.
          answered_ping = now;
          last_word = mid_tick_from(now + P / 4);
        }
      } else if (!pinging && now >= next_ping) {
        if (exchanges < 2) {
          peer.ping();
          ++exchanges;
          next_ping = now + P;
        } else {
          last_word = mid_tick_from(now);
        }
      }
    }
    if (!silent && now >= last_word) {
      pinging ? peer.pong() : peer.ping();
      silent = true;
    }
    bool closed = !s.handler.closes.empty();
    timeline.note(s.reactor.now(), closed);
    return closed;
  }, 5s));
  REQUIRE(s.handler.closes.size() == 1);
  CHECK(s.handler.closes[0].reason == CloseReason::idle_timeout);
  CHECK(s.hb().idle_closes == 1);

  const TimePoint deadline = last_byte + I;
  const TimePoint boundary = loop_clock::tick_boundary(deadline, tick);
  // The pinging side waits for its ping after the last byte to go unanswered for G too: that
  // ping was due P after the tick the answered one left in, and left at most `lateness` late.
  const Duration lateness = s.hb().ping_lateness.max();
  const TimePoint ping_judged = loop_clock::tick_start(answered_ping, tick) + P + lateness + G;
  const TimePoint allowed = pinging ? std::max(deadline, ping_judged) : deadline;
  INFO("closed " << ms_between(last_byte, close_now) << " ms after the last byte (I = 120 ms, tick 10 ms), "
       << ms_between(boundary, close_now) << " ms after the deadline's tick began; the last iteration that left it "
       << "open ran at " << (timeline.last_before() == TimePoint::min() ? 0.0 : ms_between(boundary, timeline.last_before()))
       << " ms from that tick; pings left up to " << ms_between(TimePoint{}, TimePoint{} + lateness) << " ms late");
  CHECK(close_now - last_byte >= I);
  CHECK(timeline.last_before() < loop_clock::tick_boundary(allowed, tick));
  // Judged: an iteration ran where a close a tick early would have happened (a wrong close
  // needs the ping's grace over too), and the close came in the deadline's own tick.
  const TimePoint early_from = loop_clock::tick_boundary(pinging ? std::max(deadline - tick, ping_judged) : deadline - tick, tick);
  judged.early += timeline.ran_within(early_from, deadline);
  judged.late += loop_clock::tick_boundary(allowed, tick) == boundary && close_now < boundary + tick;
  if (peer.end == kOpen) peer.end = read_to_end(peer.fd);
  CHECK(peer.end == ECONNRESET);  // idle closes reset the connection
  ::close(peer.fd);
}

// Samples until both directions were judged (a loaded machine may need more than one).
void idle_close_timing(bool seed, bool pinging) {
  const std::size_t fds = open_fd_count();
  Judged judged;
  for (int sample = 0; sample < 8 && (judged.early == 0 || judged.late == 0); ++sample) {
    CAPTURE(sample);
    idle_close_sample(seed, pinging, judged);
  }
  INFO("judged: " << judged.early << " for a close a tick early, " << judged.late << " for one a tick late");
  CHECK(judged.early > 0);
  CHECK(judged.late > 0);
  CHECK(open_fd_count() == fds);
}

}  // namespace

TEST_CASE("a silent peer is closed for idle_timeout not before I after its last byte, and in the iteration that reaches that tick (pinging side, framed)") {
  idle_close_timing(false, true);
}

TEST_CASE("a silent peer is closed for idle_timeout not before I after its last byte, and in the iteration that reaches that tick (pinging side, seed)") {
  idle_close_timing(true, true);
}

TEST_CASE("a silent peer is closed for idle_timeout not before I after its last byte, and in the iteration that reaches that tick (answering side, framed)") {
  idle_close_timing(false, false);
}

TEST_CASE("a silent peer is closed for idle_timeout not before I after its last byte, and in the iteration that reaches that tick (answering side, seed)") {
  idle_close_timing(true, false);
}

TEST_CASE("data traffic alone keeps a connection alive: a peer that never answers pings but sends data every P/2") {
  const std::size_t fds = open_fd_count();
  {
    const Duration P = 50ms, I = 150ms;
    Server s(options(kServer, P, I));
    int peer = s.connect();
    auto end = Clock::now() + 12 * P;
    auto next_send = Clock::now();
    int sent = 0;
    REQUIRE(pump_until(s.reactor, [&] {
      if (Clock::now() >= next_send) {
        REQUIRE(write_all(peer, frame(FrameType::data, "tick")));
        ++sent;
        next_send += P / 2;
      }
      return Clock::now() >= end;
    }, 10s));
    CHECK(s.handler.closes.empty());
    CHECK(s.handler.live.size() == 1);
    CHECK(s.hb().pongs_received == 0);  // it never answered a ping...
    CHECK(s.hb().pings_sent >= 1);      // ...that was sent
    CHECK(s.hb().idle_closes == 0);
    CHECK(pump_until(s.reactor, [&] { return s.handler.messages.size() == static_cast<std::size_t>(sent); }));
    // Once the data stops, the unanswered pings make it dead.
    REQUIRE(pump_until(s.reactor, [&] { return s.handler.closes.size() == 1; }, 3s));
    CHECK(s.handler.closes[0].reason == CloseReason::idle_timeout);
    ::close(peer);
  }
  CHECK(open_fd_count() == fds);
}

// --- seed codec ----------------------------------------------------------------------------

TEST_CASE("seed codec: split and coalesced tokens from a hand-driven peer are handled") {
  const std::size_t fds = open_fd_count();
  {
    auto o = options(kServer, 50ms, 150ms);
    o.codec = std::make_shared<SeedCodec>();
    Server s(o);
    int peer = s.connect();
    std::string in;
    auto pings_seen = [&](std::size_t n) {
      return pump_until(s.reactor, [&] {
        drain(peer, in);
        return occurrences(in, "ping") >= n;
      });
    };

    // A pong split across two writes, with the loop running in between.
    REQUIRE(pings_seen(1));
    CHECK(in == "ping");
    REQUIRE(write_all(peer, "po"));
    pump_for(s.reactor, 20ms);
    CHECK(s.hb().pongs_received == 0);
    REQUIRE(write_all(peer, "ng"));
    REQUIRE(pump_until(s.reactor, [&] { return s.hb().pongs_received == 1; }));
    CHECK(s.hb().rtt.count() == 1);  // seed pongs match the one outstanding ping
    REQUIRE(s.handler.live.size() == 1);
    CHECK(s.handler.live[0]->rtt() > Duration::zero());

    // Two pongs coalesced into one write: both are counted.
    REQUIRE(pings_seen(2));
    REQUIRE(write_all(peer, "pongpong"));
    REQUIRE(pump_until(s.reactor, [&] { return s.hb().pongs_received == 3; }));

    // The peer pings too, split and then coalesced: each ping gets its pong.
    in.clear();
    REQUIRE(write_all(peer, "pi"));
    pump_for(s.reactor, 10ms);
    REQUIRE(write_all(peer, "ng"));
    REQUIRE(pump_until(s.reactor, [&] { drain(peer, in); return occurrences(in, "pong") >= 1; }));
    REQUIRE(write_all(peer, "pingping"));
    REQUIRE(pump_until(s.reactor, [&] { drain(peer, in); return occurrences(in, "pong") >= 3; }));
    CHECK(s.hb().pings_answered == 3);

    CHECK(s.handler.closes.empty());
    CHECK(s.hb().protocol_errors == 0);
    ::close(peer);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("send() on a seed connection returns false; framed refuses payloads above max_frame") {
  const std::size_t fds = open_fd_count();
  {
    SUBCASE("seed") {
      auto o = options(kServer, 1s, 3s);
      o.codec = std::make_shared<SeedCodec>();
      Server s(o);
      int peer = s.connect();
      REQUIRE(s.handler.live.size() == 1);
      Connection& c = *s.handler.live[0];
      CHECK_FALSE(c.send("data"));
      CHECK_FALSE(c.send(""));
      CHECK(c.open());
      CHECK(c.queued() == 0);
      ::close(peer);
    }
    SUBCASE("framed") {
      auto o = options(kServer, 1s, 3s);
      o.codec = std::make_shared<FramedCodec>(16);
      Server s(o);
      int peer = s.connect();
      REQUIRE(s.handler.live.size() == 1);
      Connection& c = *s.handler.live[0];
      CHECK_FALSE(c.send(std::string(17, 'x')));
      CHECK(c.open());
      CHECK(c.send(std::string(16, 'x')));
      std::string in;
      REQUIRE(pump_until(s.reactor, [&] { drain(peer, in); return in.size() >= 21; }));
      auto frames = take_frames(in);
      REQUIRE(frames.size() == 1);
      CHECK(frames[0].first == FrameType::data);
      CHECK(frames[0].second == std::string(16, 'x'));
      ::close(peer);
    }
  }
  CHECK(open_fd_count() == fds);
}

// --- close reasons -------------------------------------------------------------------------

TEST_CASE("a peer that resets the connection closes it with reason reset") {
  const std::size_t fds = open_fd_count();
  {
    Server s(options(kServer, 1s, 3s));
    int peer = s.connect();
    reset_close(peer);
    REQUIRE(pump_until(s.reactor, [&] { return s.handler.closes.size() == 1; }));
    CHECK(s.handler.closes[0].reason == CloseReason::reset);
    CHECK(s.handler.closes[0].error == ECONNRESET);
    CHECK(s.endpoint.size() == 0);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a peer that half-closes gets peer_closed, after output queued before is delivered") {
  const std::size_t fds = open_fd_count();
  {
    Server s(options(kServer, 1s, 3s));  // heartbeat not under test here
    SUBCASE("nothing queued: closed at once, the peer sees EOF") {
      int peer = s.connect();
      REQUIRE(::shutdown(peer, SHUT_WR) == 0);
      REQUIRE(pump_until(s.reactor, [&] { return s.handler.closes.size() == 1; }));
      CHECK(s.handler.closes[0].reason == CloseReason::peer_closed);
      CHECK(read_to_end(peer) == kEof);
      ::close(peer);
    }
    SUBCASE("output queued in user space: all of it arrives, then peer_closed") {
      int peer = s.connect(4096);  // a small receive buffer, so most output stays queued
      REQUIRE(s.handler.live.size() == 1);
      Connection* c = s.handler.live[0];
      // Send until the kernel stops taking it (loopback buffers are large), then a few more.
      const std::size_t kSize = 64 * 1024;
      std::size_t frames_sent = 0, extra = 4;
      while (frames_sent < 1024 && (c->queued() == 0 || extra-- > 0)) {
        REQUIRE(c->send(std::string(kSize, static_cast<char>('a' + frames_sent % 26))));
        ++frames_sent;
      }
      REQUIRE(c->queued() > 0);
      REQUIRE(::shutdown(peer, SHUT_WR) == 0);
      pump_for(s.reactor, 50ms);
      // The EOF was seen, but the connection waits for its output to drain.
      CHECK(s.handler.closes.empty());
      REQUIRE(s.handler.live.size() == 1);
      CHECK(c->queued() > 0);

      std::string in;
      int status = kOpen;
      REQUIRE(pump_until(s.reactor, [&] { return (status = drain(peer, in)) != kOpen; }));
      CHECK(status == kEof);
      auto frames = take_frames(in);
      CHECK(in.empty());
      std::size_t data = 0;
      for (const auto& [type, payload] : frames) {
        if (type != FrameType::data) continue;
        CHECK(payload == std::string(kSize, static_cast<char>('a' + data % 26)));
        ++data;
      }
      CHECK(data == frames_sent);
      REQUIRE(s.handler.closes.size() == 1);
      CHECK(s.handler.closes[0].reason == CloseReason::peer_closed);
      ::close(peer);
    }
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a malformed frame closes with protocol_error and the peer sees a reset") {
  const std::size_t fds = open_fd_count();
  {
    auto o = options(kServer, 1s, 3s);
    std::string garbage;
    SUBCASE("framed: length above max_frame") {
      o.codec = std::make_shared<FramedCodec>(1024);
      garbage = frame(FrameType::data, "", 1025);  // the header alone is enough to refuse it
    }
    SUBCASE("framed: unknown type byte") {
      o.codec = std::make_shared<FramedCodec>(1024);
      garbage = frame(static_cast<FrameType>(7), "abc");
    }
    SUBCASE("seed: bytes that are neither ping nor pong") {
      o.codec = std::make_shared<SeedCodec>();
      garbage = "pinx";
    }
    Server s(o);
    int peer = s.connect();
    REQUIRE(write_all(peer, garbage));
    REQUIRE(pump_until(s.reactor, [&] { return s.handler.closes.size() == 1; }));
    CHECK(s.handler.closes[0].reason == CloseReason::protocol_error);
    CHECK(s.hb().protocol_errors == 1);
    CHECK(s.handler.messages.empty());
    CHECK(read_to_end(peer) == ECONNRESET);
    ::close(peer);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("backpressure: a peer that never reads triggers on_high_water, then output_overflow") {
  const std::size_t fds = open_fd_count();
  {
    auto o = options(kServer, 1s, 3s);
    o.high_water = 64 * 1024;
    o.max_output = 256 * 1024;
    Server s(o);
    int peer = s.connect(4096);
    REQUIRE(s.handler.live.size() == 1);
    Connection* c = s.handler.live[0];
    std::size_t high_waters_at_close = 0;
    s.handler.close_hook = [&](Connection&, CloseReason) { high_waters_at_close = s.handler.high_waters.size(); };
    const std::string chunk(8 * 1024, 'z');
    std::size_t sent = 0, max_queued = 0;
    // Returns false once the connection closed; `c` must not be used after that.
    while (sent < (64u << 20) && c->send(chunk)) {
      sent += chunk.size();
      max_queued = std::max(max_queued, c->queued());
    }
    REQUIRE(s.handler.closes.size() == 1);
    CHECK(s.handler.closes[0].reason == CloseReason::output_overflow);
    // Memory is bounded by the cap: a send that would pass it closes instead of queueing, and
    // the queue had really reached the cap (within one frame of it) when that happened.
    INFO("max queued " << max_queued << " of max_output " << o.max_output);
    CHECK(max_queued <= o.max_output);
    CHECK(max_queued + chunk.size() + 5 > o.max_output);
    REQUIRE(s.handler.high_waters.size() == 1);
    CHECK(high_waters_at_close == 1);  // high water came first
    CHECK(s.handler.high_waters[0] >= o.high_water);
    CHECK(s.handler.high_waters[0] <= o.max_output);
    CHECK(s.handler.drains == 0);
    CHECK(s.endpoint.size() == 0);
    CHECK(read_to_end(peer) == ECONNRESET);
    ::close(peer);
  }
  CHECK(open_fd_count() == fds);
}

// --- RTT and ping modes --------------------------------------------------------------------

TEST_CASE("framed pings carry 8 bytes that the pong echoes; a matching pong gives an RTT") {
  const std::size_t fds = open_fd_count();
  {
    Server s(options(kServer, 50ms, 150ms));
    int peer = s.connect();
    std::string in;
    std::vector<std::pair<FrameType, std::string>> frames;
    auto next_ping = [&] {
      REQUIRE(pump_until(s.reactor, [&] {
        drain(peer, in);
        for (auto& f : take_frames(in)) frames.push_back(std::move(f));
        return !frames.empty();
      }));
      auto f = frames.front();
      frames.erase(frames.begin());
      return f;
    };
    auto [type1, payload1] = next_ping();
    CHECK(type1 == FrameType::ping);
    REQUIRE(payload1.size() == 8);
    REQUIRE(write_all(peer, frame(FrameType::pong, payload1)));
    REQUIRE(pump_until(s.reactor, [&] { return s.hb().pongs_received == 1; }));
    CHECK(s.hb().rtt.count() == 1);
    REQUIRE(s.handler.live.size() == 1);
    CHECK(s.handler.live[0]->rtt() > Duration::zero());
    const Duration first_rtt = s.handler.live[0]->rtt();

    // A pong that does not echo the ping's bytes is counted but gives no RTT sample.
    auto [type2, payload2] = next_ping();
    CHECK(type2 == FrameType::ping);
    REQUIRE(payload2.size() == 8);
    CHECK(payload2 != payload1);
    REQUIRE(write_all(peer, frame(FrameType::pong, "12345678")));
    REQUIRE(pump_until(s.reactor, [&] { return s.hb().pongs_received == 2; }));
    CHECK(s.hb().rtt.count() == 1);
    CHECK(s.handler.live[0]->rtt() == first_rtt);
    CHECK(s.handler.closes.empty());
    ::close(peer);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("PingMode::client: the client pings, the server answers and never pings") {
  const std::size_t fds = open_fd_count();
  {
    Pair p(options(kServer, 20ms, 60ms, PingMode::client), options(kClient, 20ms, 60ms, PingMode::client));
    REQUIRE(pump_until(p.reactor, [&] { return p.connected(); }));
    REQUIRE(pump_until(p.reactor, [&] { return p.chb().pongs_received >= 10; }, 10s));
    CHECK(p.shb().pings_sent == 0);
    CHECK(p.shb().pings_answered >= 10);
    CHECK(p.chb().rtt.count() >= 1);
    REQUIRE(p.client.live.size() == 1);
    CHECK(p.client.live[0]->rtt() > Duration::zero());
    CHECK(p.server.closes.empty());
    CHECK(p.client.closes.empty());
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("PingMode::both: each side pings and answers, and both get an RTT") {
  const std::size_t fds = open_fd_count();
  {
    Pair p(options(kServer, 20ms, 60ms, PingMode::both), options(kClient, 20ms, 60ms, PingMode::both));
    REQUIRE(pump_until(p.reactor, [&] { return p.connected(); }));
    REQUIRE(pump_until(p.reactor, [&] {
      return p.chb().pongs_received >= 10 && p.shb().pongs_received >= 10;
    }, 10s));
    CHECK(p.shb().pings_answered >= 10);
    CHECK(p.chb().pings_answered >= 10);
    CHECK(p.shb().rtt.count() >= 1);
    CHECK(p.chb().rtt.count() >= 1);
    REQUIRE(p.server.live.size() == 1);
    REQUIRE(p.client.live.size() == 1);
    CHECK(p.server.live[0]->rtt() > Duration::zero());
    CHECK(p.client.live[0]->rtt() > Duration::zero());
    CHECK(p.server.closes.empty());
    CHECK(p.client.closes.empty());
  }
  CHECK(open_fd_count() == fds);
}

// Whether a ping is due with traffic in flight depends on how often the loop ran, so each
// ping that does go out is checked against the loop's clock instead: none may leave in an
// iteration less than P after the server last read data (which it echoed, so it also sent).
TEST_CASE("skip_when_active: with steady data traffic both ways, pings are skipped, not sent") {
  const std::size_t fds = open_fd_count();
  {
    const Duration P = 30ms;
    auto so = options(kServer, P, 90ms);
    so.heartbeat.skip_when_active = true;
    Pair p(so, options(kClient, P, 90ms));
    p.server.message_hook = [](Connection& c, std::string_view m) { c.send(m); };  // echo
    REQUIRE(pump_until(p.reactor, [&] { return p.connected(); }));
    TimerId traffic = p.reactor.run_every(7ms, [&] {
      if (!p.client.live.empty()) p.client.live[0]->send("busy");
    });
    std::size_t messages = p.server.messages.size();
    uint64_t pings = p.shb().pings_sent;
    TimePoint last_data = TimePoint::min();  // the clock of the last iteration that read data
    int needless = 0;                        // pings sent with data read less than P before
    REQUIRE(pump_until(p.reactor, [&] {
      const bool data = p.server.messages.size() > messages, pinged = p.shb().pings_sent > pings;
      if (pinged && (data || last_data > p.reactor.now() - P)) ++needless;
      if (data && !pinged) last_data = p.reactor.now();  // a ping re-reads the clock
      messages = p.server.messages.size();
      pings = p.shb().pings_sent;
      return p.shb().pings_skipped >= 10 || !p.connected();
    }, 5s));
    p.reactor.cancel(traffic);
    INFO("pings sent " << p.shb().pings_sent << ", skipped " << p.shb().pings_skipped);
    CHECK(p.shb().pings_skipped >= 10);
    CHECK(needless == 0);
    CHECK(p.server.messages.size() >= 20);
    CHECK(p.client.messages.size() >= 20);
    CHECK(p.server.closes.empty());
    CHECK(p.client.closes.empty());
  }
  CHECK(open_fd_count() == fds);
}

// Regression: skip_when_active used to skip whenever the peer had sent something, so a server
// that only receives sent nothing at all and the answering client closed it for idle_timeout.
TEST_CASE("skip_when_active with one-way client-to-server traffic: the server still pings and the answering client does not close by idle") {
  const std::size_t fds = open_fd_count();
  {
    auto so = options(kServer, 30ms, 90ms);
    so.heartbeat.skip_when_active = true;
    Pair p(so, options(kClient, 30ms, 90ms));  // the server only receives
    REQUIRE(pump_until(p.reactor, [&] { return p.connected(); }));
    TimerId traffic = p.reactor.run_every(7ms, [&] {
      if (!p.client.live.empty()) p.client.live[0]->send("upload");
    });
    // Until the server has pinged three times (12 intervals of one-way traffic when the loop
    // keeps up); with the old rule it never pings and the client closes it for idle instead.
    pump_until(p.reactor, [&] { return p.shb().pings_sent >= 3 || !p.connected(); });
    p.reactor.cancel(traffic);
    INFO("server pings sent " << p.shb().pings_sent << ", skipped " << p.shb().pings_skipped);
    CHECK(p.chb().idle_closes == 0);
    CHECK(p.client.closes.empty());
    CHECK(p.server.closes.empty());
    CHECK(p.shb().pings_sent >= 3);  // nothing else goes the client's way
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("pause_reading on the client: the server closes it for idle_timeout, the client never closes by idle") {
  const std::size_t fds = open_fd_count();
  {
    const Duration P = 20ms, I = 60ms;
    const auto started = Clock::now();  // before the server's side can open (its idle clock)
    Pair p(options(kServer, P, I), options(kClient, P, I));
    p.client.open_hook = [&](Connection& c) {
      c.pause_reading();  // before it has read anything: it never answers a ping
      CHECK(c.reading_paused());
    };
    REQUIRE(pump_until(p.reactor, [&] { return p.server.closes.size() == 1; }, 3s));
    CHECK(p.server.closes[0].reason == CloseReason::idle_timeout);
    CHECK(p.server.closes[0].at - started >= I);
    CHECK(p.shb().pongs_received == 0);
    // Well past the client's own idle timeout: whatever ends it, it is not idle judgement.
    pump_for(p.reactor, 4 * I);
    CHECK(p.chb().idle_closes == 0);
    CHECK(p.client.closed_with(CloseReason::idle_timeout) == 0);
    // The server reset it (idle closes use SO_LINGER 0); the client learns that, even paused.
    REQUIRE(pump_until(p.reactor, [&] { return !p.client.closes.empty(); }));
    REQUIRE(p.client.closes.size() == 1);
    CHECK(p.client.closes[0].reason == CloseReason::reset);
  }
  CHECK(open_fd_count() == fds);
}

// --- closing from callbacks (run these under ASan) -----------------------------------------

TEST_CASE("close() from inside the connection's own on_message, with more frames in the same read") {
  const std::size_t fds = open_fd_count();
  {
    Server s(options(kServer, 1s, 3s));
    s.handler.message_hook = [](Connection& c, std::string_view) {
      c.close();
      CHECK_FALSE(c.open());
      CHECK_FALSE(c.send("after close"));
    };
    int peer = s.connect();
    REQUIRE(write_all(peer, frame(FrameType::data, "one") + frame(FrameType::data, "two") +
                                frame(FrameType::data, "three")));
    REQUIRE(pump_until(s.reactor, [&] { return s.handler.closes.size() == 1; }));
    pump_for(s.reactor, 20ms);
    CHECK(s.handler.messages == std::vector<std::string>{"one"});
    CHECK(s.handler.closes[0].reason == CloseReason::local_close);
    CHECK(s.endpoint.size() == 0);
    CHECK(read_to_end(peer) != kOpen);
    ::close(peer);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("close() of another connection from a callback, and from on_close, and close_all from a callback") {
  const std::size_t fds = open_fd_count();
  {
    Server s(options(kServer, 1s, 3s));
    int a = s.connect();
    int b = s.connect();
    int c = s.connect();
    REQUIRE(s.handler.live.size() == 3);
    SUBCASE("on_message closes every other connection (their events may be in the same batch)") {
      s.handler.message_hook = [&](Connection& self, std::string_view) {
        auto others = s.handler.live;  // on_close edits live
        for (Connection* other : others)
          if (other != &self) other->close();
      };
      for (int fd : {a, b, c}) REQUIRE(write_all(fd, frame(FrameType::data, "hi")));
      REQUIRE(pump_until(s.reactor, [&] { return s.handler.closes.size() == 2; }));
      pump_for(s.reactor, 20ms);
      CHECK(s.handler.messages.size() == 1);
      CHECK(s.handler.live.size() == 1);
      CHECK(s.handler.closed_with(CloseReason::local_close) == 2);
    }
    SUBCASE("on_close of one closes the next") {
      s.handler.close_hook = [&](Connection&, CloseReason) {
        if (!s.handler.live.empty()) s.handler.live.front()->close();
      };
      s.handler.message_hook = [](Connection& self, std::string_view) { self.close(); };
      REQUIRE(write_all(b, frame(FrameType::data, "bye")));
      REQUIRE(pump_until(s.reactor, [&] { return s.handler.closes.size() == 3; }));
      CHECK(s.handler.closed_with(CloseReason::local_close) == 3);
      CHECK(s.endpoint.size() == 0);
    }
    SUBCASE("close_all from inside on_message") {
      s.handler.message_hook = [&](Connection&, std::string_view) {
        s.endpoint.close_all(CloseReason::local_close);
      };
      REQUIRE(write_all(c, frame(FrameType::data, "all")));
      REQUIRE(pump_until(s.reactor, [&] { return s.handler.closes.size() == 3; }));
      CHECK(s.endpoint.size() == 0);
    }
    pump_for(s.reactor, 10ms);
    for (int fd : {a, b, c}) ::close(fd);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("close() from a reactor timer and from inside on_open") {
  const std::size_t fds = open_fd_count();
  {
    Server s(options(kServer, 1s, 3s));
    SUBCASE("timer") {
      int peer = s.connect();
      REQUIRE(s.handler.live.size() == 1);
      Connection* c = s.handler.live[0];
      bool fired = false;
      s.reactor.run_after(5ms, [&] {
        c->close();
        fired = true;
      });
      REQUIRE(pump_until(s.reactor, [&] { return fired; }));
      REQUIRE(s.handler.closes.size() == 1);
      CHECK(s.handler.closes[0].reason == CloseReason::local_close);
      CHECK(read_to_end(peer) == kEof);
      ::close(peer);
    }
    SUBCASE("on_open") {
      s.handler.open_hook = [](Connection& c) { c.close(); };
      int peer = s.connect();
      REQUIRE(s.handler.closes.size() == 1);
      CHECK(s.handler.closes[0].reason == CloseReason::local_close);
      CHECK(s.endpoint.size() == 0);
      CHECK(read_to_end(peer) == kEof);
      ::close(peer);
    }
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a closed connection leaves no heartbeat deadline behind: the loop sleeps through its old deadlines") {
  const std::size_t fds = open_fd_count();
  {
    const Duration P = 40ms, I = 120ms;
    Server s(options(kServer, P, I));
    int peer = s.connect();
    REQUIRE(s.handler.live.size() == 1);
    s.handler.live[0]->close();
    REQUIRE(s.handler.closes.size() == 1);
    // Every deadline the connection could have had (its first ping, its idle close) lies
    // within I and a tick (P / 16 by default) of now.  Nothing else is registered or timed that
    // could wake the loop: an entry left on the heartbeat wheel would, through the timerfd.
    const TimePoint past_every_deadline = s.reactor.update_now() + I + P / 8;
    int dispatched = 0, iterations = 0;
    while (s.reactor.now() < past_every_deadline) {
      dispatched += s.reactor.run_once(past_every_deadline - s.reactor.now());
      ++iterations;
    }
    INFO(iterations << " iterations");
    CHECK(dispatched == 0);
    ::close(peer);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("an exception from on_message closes that connection with reason error; others are still served") {
  const std::size_t fds = open_fd_count();
  {
    Server s(options(kServer, 1s, 3s));
    s.handler.message_hook = [](Connection& c, std::string_view m) {
      if (m == "boom") throw std::runtime_error("handler failed");
      c.send(m);  // echo
    };
    int bad = s.connect();
    int good = s.connect();
    REQUIRE(write_all(bad, frame(FrameType::data, "boom")));
    REQUIRE(pump_until(s.reactor, [&] { return s.handler.closes.size() == 1; }));
    CHECK(s.handler.closes[0].reason == CloseReason::error);
    CHECK(s.endpoint.size() == 1);
    CHECK(read_to_end(bad) != kOpen);

    std::string in;
    for (std::string_view message : {"hello", "again"}) {
      REQUIRE(write_all(good, frame(FrameType::data, message)));
      REQUIRE(pump_until(s.reactor, [&] {
        drain(good, in);
        auto frames = take_frames(in);
        for (auto& f : frames)
          if (f.first == FrameType::data) return f.second == message;
        return false;
      }));
    }
    CHECK(s.handler.closes.size() == 1);
    ::close(bad);
    ::close(good);
  }
  CHECK(open_fd_count() == fds);
}

// --- options -------------------------------------------------------------------------------

TEST_CASE("invalid endpoint options throw std::invalid_argument at Endpoint construction") {
  const std::size_t fds = open_fd_count();
  {
    Reactor reactor;
    Recorder handler;
    auto o = options(kServer, 20ms, 60ms);
    SUBCASE("idle_timeout equal to ping_interval") { o.heartbeat.idle_timeout = 20ms; }
    SUBCASE("idle_timeout shorter than ping_interval") { o.heartbeat.idle_timeout = 10ms; }
    SUBCASE("zero ping_interval") { o.heartbeat.ping_interval = Duration::zero(); }
    SUBCASE("zero idle_timeout") { o.heartbeat.idle_timeout = Duration::zero(); }
    SUBCASE("high_water above max_output") {
      o.high_water = 2048;
      o.max_output = 1024;
    }
    SUBCASE("tick longer than ping_interval") { o.heartbeat.tick = 30ms; }
    CHECK_THROWS_AS(Endpoint(reactor, handler, o), std::invalid_argument);
    CHECK(handler.opens == 0);
  }
  CHECK(open_fd_count() == fds);
}

// --- no false closes under overload ---------------------------------------------------------

namespace {

// Blocks the loop for `stall` from inside a reactor timer callback, and waits for it to end.
Clock::time_point stall_loop(Reactor& reactor, Duration stall) {
  bool done = false;
  Clock::time_point ended{};
  reactor.run_after(1ms, [&] {
    std::this_thread::sleep_for(stall);
    ended = Clock::now();
    done = true;
  });
  REQUIRE(pump_until(reactor, [&] { return done; }));
  return ended;
}

void survive_stalls(PingMode mode, bool client_first) {
  const Duration P = 20ms, I = 60ms;
  Pair p(options(kServer, P, I, mode), options(kClient, P, I, mode), client_first);
  REQUIRE(pump_until(p.reactor, [&] { return p.connected(); }));
  auto pongs = [&] { return mode == PingMode::server ? p.shb().pongs_received : p.chb().pongs_received + p.shb().pongs_received; };
  REQUIRE(pump_until(p.reactor, [&] { return pongs() >= 3; }));
  for (int round = 0; round < 3; ++round) {
    stall_loop(p.reactor, 300ms);  // much longer than I
    auto before = pongs();
    // A few round trips after each stall: the heartbeat is really running again.
    REQUIRE(pump_until(p.reactor, [&] { return pongs() >= before + 3 || !p.connected(); }));
  }
  // Nothing reaches a socket while this one thread is blocked, so what spares the peers here
  // is the fresh ping after a stall (and, on the answering side, the excused silence); bytes
  // that do arrive meanwhile are the late-reads test's case, below.
  CHECK(p.server.closes.empty());
  CHECK(p.client.closes.empty());
  CHECK(p.shb().idle_closes == 0);
  CHECK(p.chb().idle_closes == 0);
}

}  // namespace

TEST_CASE("no false closes when the loop stalls for longer than the idle timeout (PingMode::server)") {
  const std::size_t fds = open_fd_count();
  survive_stalls(PingMode::server, false);
  CHECK(open_fd_count() == fds);
}

TEST_CASE("no false closes when the loop stalls for longer than the idle timeout (PingMode::both)") {
  const std::size_t fds = open_fd_count();
  survive_stalls(PingMode::both, false);
  CHECK(open_fd_count() == fds);
}

TEST_CASE("no false closes after a stall with the client endpoint constructed first (PingMode::both)") {
  const std::size_t fds = open_fd_count();
  survive_stalls(PingMode::both, true);
  CHECK(open_fd_count() == fds);
}

// Regression: the client endpoint (the answering, non-pinging side) constructed first runs its
// heartbeat wheel before the server's in the iteration after the stall: its last byte is > I old
// and FIONREAD is 0 (the stalled server has not pinged yet).  It must excuse that silence.
TEST_CASE("no false closes after a stall with the client endpoint constructed first (PingMode::server)") {
  const std::size_t fds = open_fd_count();
  survive_stalls(PingMode::server, true);
  CHECK(open_fd_count() == fds);
}

// A loop that fell behind must not blame a peer whose answer is already in its socket.  With
// one event per epoll_wait batch, the first iteration after a stall dispatches one socket and
// then judges all three connections, each silent for longer than I with a ping older than G:
// the two whose pongs were not dispatched are read on the spot (FIONREAD, late_reads) and kept.
TEST_CASE("answers already waiting when a late loop judges their connections are read, not closed (late_reads)") {
  const std::size_t fds = open_fd_count();
  {
    // G = I - P is long: collecting one held ping per peer (about P) must not outlast it.
    const Duration P = 50ms, I = 800ms, tick = 10ms;
    auto o = options(kServer, P, I);
    o.heartbeat.tick = tick;
    bool seed = false;
    SUBCASE("framed") {}
    SUBCASE("seed") {
      seed = true;
      o.codec = std::make_shared<SeedCodec>();
    }
    ReactorOptions one_event;
    one_event.max_events = 1;
    Server s(o, one_event);
    std::vector<HandPeer> peers;
    for (int i = 0; i < 3; ++i) peers.push_back({s.connect(), seed, {}, {}, kOpen});
    // Warm-up: every peer answers two pings at once.
    std::vector<int> answered(peers.size()), held(peers.size());
    REQUIRE(pump_until(s.reactor, [&] {
      bool done = true;
      for (std::size_t i = 0; i < peers.size(); ++i) {
        for (int pings = peers[i].take_pings(); pings > 0; --pings, ++answered[i]) peers[i].pong();
        done = done && answered[i] >= 2;
      }
      return done;
    }));
    // Then each holds the next ping it gets, until all three hold one (within about P).
    REQUIRE(pump_until(s.reactor, [&] {
      bool all = true;
      for (std::size_t i = 0; i < peers.size(); ++i) {
        held[i] += peers[i].take_pings();
        all = all && held[i] > 0;
      }
      return all;
    }));
    REQUIRE(s.handler.closes.empty());
    // All answer now; the loop does not run again until every connection's silence passed I
    // and every held ping is older than G (both began before this point).
    for (HandPeer& peer : peers) peer.pong();
    std::this_thread::sleep_for(I + 2 * tick);
    const uint64_t pongs_before = s.hb().pongs_received;
    s.reactor.run_once(Duration::zero());
    INFO("late reads " << s.hb().late_reads << ", pongs read " << s.hb().pongs_received - pongs_before);
    CHECK(s.hb().late_reads >= 2);
    CHECK(s.hb().pongs_received - pongs_before == 3);
    CHECK(s.hb().idle_closes == 0);
    CHECK(s.handler.closes.empty());
    // And they go on: each answers two more pings, nobody is closed.
    std::fill(answered.begin(), answered.end(), 0);
    REQUIRE(pump_until(s.reactor, [&] {
      bool done = true;
      for (std::size_t i = 0; i < peers.size(); ++i) {
        for (int pings = peers[i].take_pings(); pings > 0; --pings, ++answered[i]) peers[i].pong();
        done = done && answered[i] >= 2;
      }
      return done || !s.handler.closes.empty();
    }));
    CHECK(s.handler.closes.empty());
    for (HandPeer& peer : peers) ::close(peer.fd);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("a peer that died during a stall is still closed afterwards, one fresh round later") {
  const std::size_t fds = open_fd_count();
  {
    // Longer than the other stall tests, so the dead peer's first ping (at ~0.24 P after its
    // open) is not yet due in the iteration that stalls.
    const Duration P = 50ms, I = 150ms, G = I - P;
    Pair p(options(kServer, P, I), options(kClient, P, I));
    REQUIRE(pump_until(p.reactor, [&] { return p.connected(); }));
    REQUIRE(pump_until(p.reactor, [&] { return p.shb().pongs_received >= 2; }));

    // A raw peer that never answers; the loop stalls right after the server opens it.
    Clock::time_point stall_end{};
    bool stalled = false;
    p.server.open_hook = [&](Connection&) {
      p.reactor.run_after(Duration::zero(), [&] {
        std::this_thread::sleep_for(300ms);
        stall_end = Clock::now();
        stalled = true;
      });
    };
    int dead = raw_connect(p.listener->port());
    REQUIRE(dead >= 0);
    REQUIRE(pump_until(p.reactor, [&] { return stalled; }));
    // Its first ping comes after the stall (the peer reads the send time in it); it is closed
    // G after that ping, in the first iteration whose clock reaches that tick.
    HandPeer peer{dead, false, {}, {}, kOpen};
    loop_clock::Timeline timeline;
    REQUIRE(pump_until(p.reactor, [&] {
      peer.take_pings();
      timeline.note(p.reactor.now(), !p.server.closes.empty());
      return timeline.happened();
    }, 3s));
    REQUIRE(p.server.closes.size() == 1);
    CHECK(p.server.closes[0].reason == CloseReason::idle_timeout);
    REQUIRE(peer.last_ping.size() == 8);
    int64_t stamp = 0;
    for (char c : peer.last_ping) stamp = stamp << 8 | static_cast<unsigned char>(c);
    const TimePoint fresh_ping{Duration(stamp)};
    // Not at once after the stall: it got a fresh ping and G to answer it.
    INFO("closed " << ms_between(stall_end, p.server.closes[0].at) << " ms after the stall, "
                   << ms_between(fresh_ping, timeline.at()) << " ms after its ping");
    CHECK(p.server.closes[0].at - stall_end >= G);
    CHECK(fresh_ping >= stall_end);
    CHECK(timeline.at() >= fresh_ping + G);
    CHECK(timeline.last_before() < loop_clock::tick_boundary(fresh_ping + G, P / 16));
    // The live client is not.
    CHECK(p.server.live.size() == 1);
    CHECK(p.client.closes.empty());
    if (peer.end == kOpen) peer.end = read_to_end(dead);
    CHECK(peer.end == ECONNRESET);
    ::close(dead);
  }
  CHECK(open_fd_count() == fds);
}

TEST_CASE("an answering client whose server really died during a stall is closed one idle timeout after it") {
  const std::size_t fds = open_fd_count();
  {
    const Duration P = 20ms, I = 60ms;
    // The "server" is a raw listening socket: accepted, never a byte sent.
    sockaddr_in a{};
    int server = raw_listen(4, &a);
    REQUIRE(server >= 0);

    Reactor reactor;
    Recorder client;
    Endpoint endpoint(reactor, client, options(kClient, P, I));
    Clock::time_point stall_end{};
    bool stalled = false;
    client.open_hook = [&](Connection&) {
      reactor.run_after(Duration::zero(), [&] {
        std::this_thread::sleep_for(300ms);
        stall_end = Clock::now();
        stalled = true;
      });
    };
    ConnectorOptions co;
    co.address = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
    Connector connector(endpoint, co);
    connector.start();
    REQUIRE(pump_until(reactor, [&] { return stalled; }));
    int accepted = ::accept4(server, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(accepted >= 0);
    TimePoint last_receive{};
    client.close_hook = [&](Connection& c, CloseReason) { last_receive = c.last_receive(); };
    loop_clock::Timeline timeline;
    REQUIRE(pump_until(reactor, [&] {
      timeline.note(reactor.now(), !client.closes.empty());
      return timeline.happened();
    }, 3s));
    REQUIRE(client.closes.size() == 1);
    CHECK(client.closes[0].reason == CloseReason::idle_timeout);
    INFO("closed " << ms_between(stall_end, client.closes[0].at) << " ms after the stall");
    // The silence is excused once (our own stall: the idle clock restarts after it), then
    // judged again a full I later, in the first iteration that reaches that tick.
    CHECK(client.closes[0].at - stall_end >= I);
    CHECK(last_receive >= stall_end);
    CHECK(timeline.at() >= last_receive + I);
    CHECK(timeline.last_before() < loop_clock::tick_boundary(last_receive + I, P / 16));
    ::close(accepted);
    ::close(server);
  }
  CHECK(open_fd_count() == fds);
}

// A ping that falls due in the same loop iteration as a blocking callback is sent after the
// stall; it must be stamped with the time it really left (not the iteration's pre-stall now()),
// or the next iteration would judge it G old and close a peer whose pong is merely in flight.
// Made deterministic with tick = 1 ms: the stall timer is put in the same 1 ms tick as the ping.
TEST_CASE("a peer whose ping falls due in the same iteration as a stall still gets G to answer it") {
  const std::size_t fds = open_fd_count();
  {
    const Duration P = 20ms, I = 60ms, kLatency = 5ms;
    auto o = options(kServer, P, I);
    o.heartbeat.tick = 1ms;  // the same tick as the reactor's own timers
    Server s(o);
    int peer = s.connect();
    std::string in;
    std::vector<std::pair<Clock::time_point, std::string>> held;  // pongs to send, and when
    int64_t last_stamp = 0;
    auto answer = [&] {  // the peer: answers every ping kLatency after it arrives
      drain(peer, in);
      for (auto& [type, payload] : take_frames(in)) {
        if (type != FrameType::ping || payload.size() != 8) continue;
        last_stamp = 0;
        for (char c : payload) last_stamp = last_stamp << 8 | static_cast<unsigned char>(c);
        held.emplace_back(Clock::now() + kLatency, frame(FrameType::pong, payload));
      }
      while (!held.empty() && held.front().first <= Clock::now()) {
        REQUIRE(write_all(peer, held.front().second));
        held.erase(held.begin());
      }
    };
    // The next ping is due P after the start of the tick it was sent in (its stamp floored to
    // the tick), i.e. at the end of 1 ms tick B;
    // wait for a ping answered early enough that the stall timer can still be put into tick B.
    const int64_t tick = 1'000'000;
    const int64_t interval = std::chrono::duration_cast<std::chrono::nanoseconds>(P).count();
    auto mono_ns = [] { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); };
    int64_t boundary = 0, now = 0;
    for (uint64_t pongs = 3; pongs < 20; ++pongs) {
      REQUIRE(pump_until(s.reactor, [&] { answer(); return s.hb().pongs_received >= pongs && held.empty(); }));
      boundary = last_stamp / tick * tick + interval;
      now = mono_ns();
      if (boundary - tick > now) break;
    }
    REQUIRE(boundary - tick > now);
    const uint64_t pongs_before = s.hb().pongs_received;
    bool stalled = false;
    uint64_t pings_at_stall = 0;
    int64_t stall_end = 0;
    s.reactor.run_after(Duration(boundary - tick / 2 - now), [&] {  // into tick B, as the ping
      pings_at_stall = s.hb().pings_sent;
      std::this_thread::sleep_for(300ms);
      stall_end = mono_ns();
      stalled = true;
    });
    // Returns once the stalled iteration is over (its heartbeat wheel ran after the stall).
    REQUIRE(pump_until(s.reactor, [&] { return stalled; }));
    const uint64_t pings_in_stalled_iteration = s.hb().pings_sent - pings_at_stall;
    CHECK(pump_until(s.reactor, [&] { answer(); return s.hb().pongs_received >= pongs_before + 3 || !s.handler.closes.empty(); }));
    CHECK(s.hb().pongs_received >= pongs_before + 3);
    INFO("pings sent in the stalled iteration, after the stall: " << pings_in_stalled_iteration
         << "; that ping's stamp is " << (stall_end - last_stamp) / 1000000 << " ms before the stall ended");
    CHECK(s.handler.closes.empty());
    CHECK(s.hb().idle_closes == 0);
    ::close(peer);
  }
  CHECK(open_fd_count() == fds);
}

// Pings keep their interval: each is due P after the start of the tick the previous one went
// out in, and leaves in the first loop iteration whose clock reaches that (once the previous
// one was answered).  Due P after the exact send time, every ping would wait for the next
// tick: an interval of P + tick.  Send times are the stamps the pings carry.
TEST_CASE("pings go out every P, not every P plus a tick") {
  const std::size_t fds = open_fd_count();
  {
    const Duration P = 40ms, I = 400ms, kTick = 10ms;
    auto o = options(kServer, P, I);
    o.heartbeat.tick = kTick;
    Server s(o);
    int peer = s.connect();
    std::string in;
    std::vector<TimePoint> sent;  // each ping's send time
    struct Iteration {
      TimePoint now;
      uint64_t pings, pongs;  // by its end
    };
    std::vector<Iteration> iterations;
    REQUIRE(pump_until(s.reactor, [&] {
      iterations.push_back({s.reactor.now(), s.hb().pings_sent, s.hb().pongs_received});
      drain(peer, in);
      for (auto& [type, payload] : take_frames(in)) {
        if (type != FrameType::ping) continue;
        int64_t stamp = 0;
        for (char c : payload) stamp = stamp << 8 | static_cast<unsigned char>(c);
        sent.push_back(TimePoint(Duration(stamp)));
        REQUIRE(write_all(peer, frame(FrameType::pong, payload)));
      }
      return sent.size() >= 12;
    }, 10s));
    int judged = 0;
    for (std::size_t k = 1; k < sent.size(); ++k) {
      CAPTURE(k);
      const TimePoint due = loop_clock::tick_start(sent[k - 1], kTick) + P;
      CHECK(sent[k] >= due);
      // No iteration that had read the answer to ping k - 1 and reached `due` ended without ping k.
      auto missed = std::find_if(iterations.begin(), iterations.end(), [&](const Iteration& it) {
        return it.pings <= k && it.pongs >= k && it.now >= due;
      });
      INFO("an iteration " << (missed == iterations.end() ? 0.0 : ms_between(due, missed->now))
                           << " ms past the due time did not send it");
      CHECK(missed == iterations.end());
      // Judged: an iteration ran within the due tick (where a ping a tick late would show).
      judged += std::any_of(iterations.begin(), iterations.end(), [&](const Iteration& it) {
        return it.pongs >= k && it.now >= due && it.now < due + kTick;
      });
    }
    INFO("pings judged: " << judged << " of " << sent.size() - 1);
    CHECK(judged > 0);
    ::close(peer);
  }
  CHECK(open_fd_count() == fds);
}

// A peer that stops answering is closed one idle timeout after its last answer (plus at most
// a tick), wherever in the ping cycle it stopped — never a grace period later.  Peers that
// never answer at all are among them: their first ping must go out on time too.
TEST_CASE("a peer that stops answering is closed I after its last answer, wherever it stopped") {
  const std::size_t fds = open_fd_count();
  {
    const Duration P = 100ms, I = 300ms, kTick = 10ms;
    auto o = options(kServer, P, I);
    o.heartbeat.tick = kTick;
    Server s(o);
    struct Detection {
      TimePoint last_byte, closed;
    };
    std::vector<Detection> detection;
    s.handler.close_hook = [&](evwheel::Connection& c, CloseReason reason) {
      if (reason == CloseReason::idle_timeout) detection.push_back({c.last_receive(), s.reactor.now()});
    };
    // The loop's clock at the end of each iteration that sent no ping (sending one re-reads the
    // clock, so only these show the time the heartbeat judged at).
    std::vector<TimePoint> iterations;
    uint64_t pings = 0;
    struct Peer {
      int fd;
      int answers_left;
      std::string in;
    };
    std::vector<Peer> peers;
    for (int i = 0; i < 80; ++i) peers.push_back({s.connect(), i % 4, {}});
    REQUIRE(pump_until(s.reactor, [&] {
      if (s.hb().pings_sent == pings) iterations.push_back(s.reactor.now());
      pings = s.hb().pings_sent;
      for (Peer& peer : peers) {
        drain(peer.fd, peer.in);
        for (auto& [type, payload] : take_frames(peer.in)) {
          if (type != FrameType::ping || peer.answers_left == 0) continue;
          --peer.answers_left;
          REQUIRE(write_all(peer.fd, frame(FrameType::pong, payload)));
        }
      }
      return detection.size() == peers.size();
    }, 10s));
    // Each close comes in the first iteration that reaches the tick of last byte + I + how
    // late pings left (loop_clock::idle_close_due); waiting for a second grace (I - P =
    // 200 ms) would take about I + 200 ms.
    const Duration lateness = s.hb().ping_lateness.max();
    double worst_ms = 0;
    for (const Detection& d : detection) {
      worst_ms = std::max(worst_ms, ms_between(d.last_byte, d.closed));
      CHECK(d.closed - d.last_byte >= I);
      auto at = std::lower_bound(iterations.begin(), iterations.end(), d.closed);
      const TimePoint before = at == iterations.begin() ? TimePoint::min() : *std::prev(at);
      CHECK(before < loop_clock::idle_close_due(o.heartbeat, d.last_byte, lateness));
    }
    INFO("worst detection " << worst_ms << " ms; pings left up to " << ms_between(TimePoint{}, TimePoint{} + lateness) << " ms late");
    CHECK(detection.size() == peers.size());
    CHECK(s.handler.closed_with(CloseReason::idle_timeout) == peers.size());
    for (Peer& peer : peers) ::close(peer.fd);
  }
  CHECK(open_fd_count() == fds);
}

// A peer slower than the interval: its pong comes after the next ping fell due.  That ping
// goes out in the very loop iteration that reads the pong — not when the grace for the
// answered one would have run out (580 ms later).
TEST_CASE("a pong that arrives after the next ping fell due releases that ping at once") {
  const std::size_t fds = open_fd_count();
  {
    const Duration P = 20ms, I = 600ms, kLatency = 30ms;  // the grace, I - P, is 580 ms
    auto o = options(kServer, P, I);
    o.heartbeat.tick = 5ms;
    Server s(o);
    int peer = s.connect();
    std::string in;
    std::vector<std::pair<Clock::time_point, std::string>> held;  // pongs to send, and when
    struct Counts {
      uint64_t pongs, pings;
    };
    std::vector<Counts> after;  // the counters at the end of each iteration
    REQUIRE(pump_until(s.reactor, [&] {
      after.push_back({s.hb().pongs_received, s.hb().pings_sent});
      drain(peer, in);
      for (auto& [type, payload] : take_frames(in))
        if (type == FrameType::ping) held.emplace_back(Clock::now() + kLatency, frame(FrameType::pong, payload));
      while (!held.empty() && held.front().first <= Clock::now()) {
        REQUIRE(write_all(peer, held.front().second));
        held.erase(held.begin());
      }
      return s.hb().pongs_received >= 8 || !s.handler.closes.empty();
    }, 10s));
    // Every pong is 30 ms late with P = 20 ms: each iteration that read one sent the next ping.
    std::size_t pongs = 0, released = 0;
    for (std::size_t i = 1; i < after.size(); ++i) {
      if (after[i].pongs == after[i - 1].pongs) continue;
      ++pongs;
      released += after[i].pings > after[i - 1].pings;
    }
    CHECK(pongs >= 7);
    CHECK(released == pongs);
    CHECK(s.handler.closes.empty());
    ::close(peer);
  }
  CHECK(open_fd_count() == fds);
}
