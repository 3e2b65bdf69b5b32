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
  explicit Server(const EndpointOptions& options)
      : endpoint(reactor, handler, options), listener(endpoint, ListenerOptions{}) {}
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

TEST_CASE("a silent peer is closed for idle_timeout no earlier than I after its last byte, within a tick plus slack") {
  const std::size_t fds = open_fd_count();
  {
    const Duration P = 30ms, I = 90ms;
    Server s(options(kServer, P, I));
    const Duration tick = s.endpoint.options().heartbeat.effective_tick();
    CHECK(tick == P / 16);
    const Duration slack = 3 * tick + 50ms;

    // Peer a never sends a byte: its idle clock starts when the server opens it.
    int a = raw_connect(s.listener.port());
    REQUIRE(a >= 0);
    auto a_connected = Clock::now();  // before the server can have opened it (one thread)
    REQUIRE(pump_until(s.reactor, [&] { return s.handler.opens == 1; }));
    auto a_opened = Clock::now();     // after the server opened it
    // Peer b sends one data frame a little later, then goes silent.
    int b = s.connect();
    Clock::time_point b_received{};
    s.handler.message_hook = [&](Connection&, std::string_view) { b_received = Clock::now(); };
    pump_for(s.reactor, 40ms);
    auto b_sent = Clock::now();
    REQUIRE(write_all(b, frame(FrameType::data, "last words")));

    REQUIRE(pump_until(s.reactor, [&] { return s.handler.closes.size() == 2; }, 3s));
    REQUIRE(s.handler.messages.size() == 1);
    for (const auto& c : s.handler.closes) CHECK(c.reason == CloseReason::idle_timeout);
    CHECK(s.hb().idle_closes == 2);
    // In deadline order: a (silent since ~0 ms) before b (last byte at ~40 ms).
    const Recorder::Close* close_a = &s.handler.closes[0];
    const Recorder::Close* close_b = &s.handler.closes[1];
    CHECK(close_a->fd != close_b->fd);

    double a_after = ms_between(a_connected, close_a->at);
    double b_after = ms_between(b_sent, close_b->at);
    INFO("a closed " << a_after << " ms after connecting; b " << b_after << " ms after its last byte");
    // Never early: the server's own clock for the open/receive is at or after these marks.
    CHECK(close_a->at - a_connected >= I);
    CHECK(close_b->at - b_sent >= I);
    // At most one tick late, plus scheduling slack for a noisy machine.
    CHECK(close_a->at - a_opened <= I + tick + slack);
    CHECK(close_b->at - b_received <= I + tick + slack);

    // Idle closes reset the connection: the peer sees ECONNRESET (after the pings it never read).
    CHECK(read_to_end(a) == ECONNRESET);
    CHECK(read_to_end(b) == ECONNRESET);
    ::close(a);
    ::close(b);
  }
  CHECK(open_fd_count() == fds);
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
    pump_until(s.reactor, [&] {
      if (Clock::now() >= next_send) {
        REQUIRE(write_all(peer, frame(FrameType::data, "tick")));
        ++sent;
        next_send += P / 2;
      }
      return Clock::now() >= end;
    }, 10s);
    CHECK(s.handler.closes.empty());
    CHECK(s.handler.live.size() == 1);
    CHECK(s.hb().pongs_received == 0);  // it never answered a ping...
    CHECK(s.hb().pings_sent >= 1);      // ...that was sent
    CHECK(s.hb().idle_closes == 0);
    pump_until(s.reactor, [&] { return s.handler.messages.size() == static_cast<std::size_t>(sent); });
    CHECK(s.handler.messages.size() == static_cast<std::size_t>(sent));
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

TEST_CASE("skip_when_active: with steady data traffic both ways, pings are skipped, not sent") {
  const std::size_t fds = open_fd_count();
  {
    auto so = options(kServer, 30ms, 90ms);
    so.heartbeat.skip_when_active = true;
    Pair p(so, options(kClient, 30ms, 90ms));
    p.server.message_hook = [](Connection& c, std::string_view m) { c.send(m); };  // echo
    REQUIRE(pump_until(p.reactor, [&] { return p.connected(); }));
    TimerId traffic = p.reactor.run_every(7ms, [&] {
      if (!p.client.live.empty()) p.client.live[0]->send("busy");
    });
    REQUIRE(pump_until(p.reactor, [&] { return p.shb().pings_skipped >= 10 || !p.connected(); }, 5s));
    p.reactor.cancel(traffic);
    INFO("pings sent " << p.shb().pings_sent << ", skipped " << p.shb().pings_skipped);
    CHECK(p.shb().pings_skipped >= 10);
    CHECK(p.shb().pings_sent <= 2);
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
    pump_until(p.reactor, [&] { return !p.connected(); }, 12 * 30ms);
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
    for (const auto& c : p.client.closes) CHECK(c.reason == CloseReason::reset);
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
  INFO("late reads: server " << p.shb().late_reads << ", client " << p.chb().late_reads);
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
    REQUIRE(pump_until(p.reactor, [&] { return p.server.closes.size() == 1; }, 3s));
    CHECK(p.server.closes[0].reason == CloseReason::idle_timeout);
    // Not at once after the stall: it got a fresh ping and G to answer it.
    INFO("closed " << ms_between(stall_end, p.server.closes[0].at) << " ms after the stall");
    CHECK(p.server.closes[0].at - stall_end >= G);
    CHECK(p.server.closes[0].at - stall_end <= 1s);
    // The live client is not.
    CHECK(p.server.live.size() == 1);
    CHECK(p.client.closes.empty());
    CHECK(read_to_end(dead) == ECONNRESET);
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
    REQUIRE(pump_until(reactor, [&] { return client.closes.size() == 1; }, 3s));
    CHECK(client.closes[0].reason == CloseReason::idle_timeout);
    INFO("closed " << ms_between(stall_end, client.closes[0].at) << " ms after the stall");
    // The silence is excused once (our own stall), then judged again a full I later.
    CHECK(client.closes[0].at - stall_end >= I);
    CHECK(client.closes[0].at - stall_end <= 1s);
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
    pump_until(s.reactor, [&] { answer(); return s.hb().pongs_received >= pongs_before + 3 || !s.handler.closes.empty(); });
    INFO("pings sent in the stalled iteration, after the stall: " << pings_in_stalled_iteration
         << "; that ping's stamp is " << (stall_end - last_stamp) / 1000000 << " ms before the stall ended");
    CHECK(s.handler.closes.empty());
    CHECK(s.hb().idle_closes == 0);
    ::close(peer);
  }
  CHECK(open_fd_count() == fds);
}

// Pings keep their interval: the next one is due P after the tick the last one went out in.
// (Due P after its exact send time, every ping would fall just past a tick boundary and wait
// one extra tick: an interval of P + tick.)  Stamps are the server's send times.
TEST_CASE("pings go out every P, not every P plus a tick") {
  const std::size_t fds = open_fd_count();
  {
    const Duration P = 40ms, I = 400ms, kTick = 10ms;
    auto o = options(kServer, P, I);
    o.heartbeat.tick = kTick;
    Server s(o);
    int peer = s.connect();
    std::string in;
    std::vector<int64_t> ticks;  // each ping's send time, in ticks
    REQUIRE(pump_until(s.reactor, [&] {
      drain(peer, in);
      for (auto& [type, payload] : take_frames(in)) {
        if (type != FrameType::ping) continue;
        int64_t stamp = 0;
        for (char c : payload) stamp = stamp << 8 | static_cast<unsigned char>(c);
        ticks.push_back(stamp / kTick.count());
        REQUIRE(write_all(peer, frame(FrameType::pong, payload)));
      }
      return ticks.size() >= 12;
    }, 5s));
    std::vector<int64_t> gaps;
    for (std::size_t i = 2; i < ticks.size(); ++i) gaps.push_back(ticks[i] - ticks[i - 1]);
    std::sort(gaps.begin(), gaps.end());
    std::string shown;
    for (int64_t gap : gaps) shown += std::to_string(gap) + " ";
    INFO("gaps in ticks, sorted: " << shown);
    // A loaded machine may make one ping late; most go exactly P / tick ticks apart.
    CHECK(gaps[gaps.size() / 2] == P / kTick);
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
    std::vector<Duration> detection;
    s.handler.close_hook = [&](evwheel::Connection& c, CloseReason reason) {
      if (reason == CloseReason::idle_timeout) detection.push_back(s.reactor.now() - c.last_receive());
    };
    struct Peer {
      int fd;
      int answers_left;
      std::string in;
    };
    std::vector<Peer> peers;
    for (int i = 0; i < 80; ++i) peers.push_back({s.connect(), i % 4, {}});
    REQUIRE(pump_until(s.reactor, [&] {
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
    Duration worst = *std::max_element(detection.begin(), detection.end());
    INFO("worst detection " << std::chrono::duration_cast<std::chrono::milliseconds>(worst).count() << " ms");
    // The grace for an unanswered ping is I - P = 200 ms: a detection that waited for it
    // again would take about I + 200 ms.  Slack for a loaded machine: 100 ms.
    CHECK(worst <= I + kTick + 100ms);
    CHECK(s.handler.closed_with(CloseReason::idle_timeout) == peers.size());
    for (Peer& peer : peers) ::close(peer.fd);
  }
  CHECK(open_fd_count() == fds);
}

// A peer slower than the interval: its pong comes after the next ping fell due.  That ping
// goes out as the pong arrives — not when the grace for the answered one would have run out.
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
    const auto end = Clock::now() + 600ms;
    pump_until(s.reactor, [&] {
      drain(peer, in);
      for (auto& [type, payload] : take_frames(in))
        if (type == FrameType::ping) held.emplace_back(Clock::now() + kLatency, frame(FrameType::pong, payload));
      while (!held.empty() && held.front().first <= Clock::now()) {
        REQUIRE(write_all(peer, held.front().second));
        held.erase(held.begin());
      }
      return Clock::now() >= end;
    }, 2s);
    // One ping per round trip (~30 ms): about 20 in 600 ms.  Waiting for the grace instead
    // would allow 2.
    CHECK(s.hb().pings_sent >= 8);
    CHECK(s.handler.closes.empty());
    ::close(peer);
  }
  CHECK(open_fd_count() == fds);
}
