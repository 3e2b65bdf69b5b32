// A server and a client speaking different codecs (seed and framed) over real loopback
// sockets: each end refuses the other's first bytes, so both close with protocol_error at once,
// instead of the framed end waiting for a fifth byte until its idle timeout.
#include <doctest/doctest.h>

#include <memory>

#include "evwheel/codec.hpp"
#include "evwheel/connector.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/reactor.hpp"
#include "fd_count.hpp"
#include "loopback.hpp"

using namespace evwheel;
using namespace loopback;

namespace {

// Both ends ping as soon as they open, so each has the other's bytes in hand before either can
// close; the heartbeat itself is far away (idle timeout 60 s), so no close can be an idle one.
EndpointOptions speaking(Side side, std::shared_ptr<const Codec> codec) {
  EndpointOptions o = options(side, 30s, 60s);
  o.codec = std::move(codec);
  return o;
}

void check_mismatch(std::shared_ptr<const Codec> server_codec, std::shared_ptr<const Codec> client_codec) {
  const std::size_t fds = open_fd_count();
  {
    Reactor reactor;
    Recorder server, client;
    server.open_hook = [](Connection& c) { c.ping(); };
    client.open_hook = [](Connection& c) { c.ping(); };
    Endpoint server_ep(reactor, server, speaking(Side::server, std::move(server_codec)));
    Endpoint client_ep(reactor, client, speaking(Side::client, std::move(client_codec)));
    Listener listener(server_ep, ListenerOptions{});
    ConnectorOptions o;
    o.address = "127.0.0.1:" + std::to_string(listener.port());
    Connector connector(client_ep, o);
    connector.start();
    REQUIRE(pump_until(reactor, [&] { return server.closes.size() == 1 && client.closes.size() == 1; }));
    CHECK(server.opens == 1);
    CHECK(client.opens == 1);
    CHECK(server.closes[0].reason == CloseReason::protocol_error);
    CHECK(client.closes[0].reason == CloseReason::protocol_error);
    CHECK(server_ep.heartbeat_stats().protocol_errors == 1);
    CHECK(client_ep.heartbeat_stats().protocol_errors == 1);
    CHECK(server_ep.stats().closes[static_cast<int>(CloseReason::protocol_error)] == 1);
    CHECK(client_ep.stats().closes[static_cast<int>(CloseReason::protocol_error)] == 1);
    CHECK(server_ep.heartbeat_stats().idle_closes == 0);
    CHECK(client_ep.heartbeat_stats().idle_closes == 0);
  }
  CHECK(open_fd_count() == fds);
}

}  // namespace

TEST_CASE("a seed server and a framed client both close with protocol_error, neither by idle timeout") {
  check_mismatch(std::make_shared<SeedCodec>(), std::make_shared<FramedCodec>());
}

TEST_CASE("a framed server and a seed client both close with protocol_error, neither by idle timeout") {
  check_mismatch(std::make_shared<FramedCodec>(), std::make_shared<SeedCodec>());
}
