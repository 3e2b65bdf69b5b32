// ws_server — a WebSocket echo and heartbeat server that serves its own page: open
// http://HOST:PORT/ in a browser and the page connects to ws://HOST:PORT/ws on the same port,
// sends a few text messages, shows each echo, and shows the round trip the server measured
// with its pings (Connection::rtt), which the server sends to each connection as the text
// message {"rtt_us": N} every --rtt-every-ms.  The browser answers the pings by itself.
//
// Every text or binary message is echoed with its type.  One line per open and per close on
// stdout, as they happen; the counters on stderr at exit.  SIGINT/SIGTERM close every
// connection with code 1001 (going away) and exit 0.
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "cli.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/reactor.hpp"
#include "evwheel/shutdown.hpp"
#include "evwheel/signals.hpp"
#include "evwheel/websocket.hpp"

namespace {

const char kUsage[] =
    "usage: ws_server [--listen HOST:PORT] [--ping-interval-ms P] [--idle-timeout-ms I]\n"
    "                 [--rtt-every-ms R]\n"
    "Serves a page at http://HOST:PORT/ (default 127.0.0.1:8080; port 0: a free one, printed)\n"
    "whose script opens ws://HOST:PORT/ws.  Echoes every message, pings every P ms, closes a\n"
    "peer silent for I ms (defaults 5000 and 15000), and sends each connection the RTT its\n"
    "pings measured every R ms (default 2000) as {\"rtt_us\": N}.  SIGINT/SIGTERM exit 0.\n";

// The page: plain JavaScript.  It tells echoes from RTT reports by the report's prefix.
const char kPage[] = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>evwheel WebSocket echo</title>
<style>
  body { font: 16px system-ui, sans-serif; margin: 2em auto; max-width: 40em; color: #222; }
  dt { float: left; width: 11em; color: #666; }
  dd { margin: 0 0 .4em 11em; font-weight: bold; }
  #log { font-family: monospace; background: #f4f4f4; padding: .5em 2.5em; min-height: 4em; }
</style>
</head>
<body>
<h1>evwheel WebSocket echo</h1>
<dl>
  <dt>Connection</dt><dd id="state">connecting</dd>
  <dt>Echoed</dt><dd><span id="echoed">0</span> of <span id="sent">0</span> sent</dd>
  <dt>Ping round trip</dt><dd id="rtt">not measured yet</dd>
  <dt>RTT reports</dt><dd id="reports">0</dd>
</dl>
<form id="form"><input id="text" value="hello again" autocomplete="off"> <button>Send</button></form>
<ol id="log"></ol>
<script>
"use strict";
const greetings = ["hello", "héllo, wörld", "ping? no: a message ✓"];
const sent = [];
let echoed = 0, reports = 0;
const byId = (id) => document.getElementById(id);
const socket = new WebSocket(`ws://${location.host}/ws`);

function log(line) {
  const item = document.createElement("li");
  item.textContent = line;
  byId("log").append(item);
}
function send(text) {
  sent.push(text);
  socket.send(text);
  byId("sent").textContent = sent.length;
}

socket.onopen = () => {
  byId("state").textContent = "open";
  greetings.forEach(send);
};
socket.onmessage = (event) => {
  if (event.data.startsWith('{"rtt_us":')) {
    const rtt = JSON.parse(event.data).rtt_us;
    byId("rtt").textContent = rtt > 0 ? `${rtt} µs` : "not measured yet";
    byId("reports").textContent = ++reports;
    return;
  }
  if (event.data === sent[echoed]) byId("echoed").textContent = ++echoed;
  log(`echo: ${event.data}`);
};
socket.onclose = (event) => {
  byId("state").textContent = `closed (code ${event.code})`;
};
byId("form").onsubmit = (event) => {
  event.preventDefault();
  if (socket.readyState === WebSocket.OPEN) send(byId("text").value);
};
</script>
</body>
</html>
)html";

class Echo final : public evwheel::ConnectionHandler {
 public:
  void on_open(evwheel::Connection& connection) override {
    std::printf("open fd %d from %s\n", connection.fd(), evwheel::to_string(connection.peer_address()).c_str());
  }
  void on_text(evwheel::Connection& connection, std::string_view text) override { connection.send_text(text); }
  void on_message(evwheel::Connection& connection, std::string_view message) override { connection.send(message); }
  void on_close(evwheel::Connection& connection, evwheel::CloseReason reason, int) override {
    // By descriptor: a socket whose peer has gone may no longer know the peer's address.
    std::printf("close fd %d: %s, code %u, rtt %lld us\n", connection.fd(), evwheel::to_string(reason),
                static_cast<unsigned>(connection.close_code()), static_cast<long long>(rtt_us(connection)));
  }

  static long long rtt_us(const evwheel::Connection& connection) {
    return std::chrono::duration_cast<std::chrono::microseconds>(connection.rtt()).count();
  }
};

evwheel::WebSocketOptions page_and_socket() {
  evwheel::WebSocketOptions options;
  options.on_page = [](const evwheel::WebSocketRequest& request, evwheel::HttpPage& page) {
    if (request.path() != "/") return false;
    page.body = kPage;
    return true;
  };
  options.on_upgrade = [](const evwheel::WebSocketRequest& request, evwheel::UpgradeDecision& decision) {
    decision.accept = request.path() == "/ws";
    decision.refuse_with = 404;
  };
  return options;
}

void report_rtt(evwheel::Endpoint& endpoint) {
  endpoint.for_each([](evwheel::Connection& connection) {
    char report[48];
    int length = std::snprintf(report, sizeof report, "{\"rtt_us\": %lld}", Echo::rtt_us(connection));
    connection.send_text(std::string_view(report, static_cast<std::size_t>(length)));
  });
}

void print_counters(const evwheel::Endpoint& endpoint, const evwheel::Listener& listener) {
  const evwheel::HeartbeatStats& heartbeat = endpoint.heartbeat_stats();
  const evwheel::WebSocketGateStats& handshakes = listener.stats().websocket;
  std::fprintf(stderr, "ws_server: pages %" PRIu64 "  upgrades %" PRIu64 "  refused %" PRIu64 "  pings %" PRIu64
               "  pongs %" PRIu64 "  idle-closes %" PRIu64 "  protocol-errors %" PRIu64 "\n",
               handshakes.pages, handshakes.upgrades, handshakes.refused, heartbeat.pings_sent,
               heartbeat.pongs_received, heartbeat.idle_closes, heartbeat.protocol_errors);
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each line as it happens, even into a file
  cli::Parser flags("ws_server", kUsage);
  std::string listen = "127.0.0.1:8080";
  std::chrono::milliseconds interval(5000), idle(15000), rtt_every(2000);
  flags.text("--listen", &listen);
  flags.duration_ms("--ping-interval-ms", &interval, 1, 86'400'000);
  flags.duration_ms("--idle-timeout-ms", &idle, 1, 86'400'000);
  flags.duration_ms("--rtt-every-ms", &rtt_every, 1, 86'400'000);
  if (std::optional<int> status = flags.parse(argc, argv)) return *status;

  evwheel::EndpointOptions options;
  options.side = evwheel::Side::server;
  options.heartbeat.ping_interval = interval;
  options.heartbeat.idle_timeout = idle;
  evwheel::ListenerOptions listener_options;
  listener_options.address = listen;
  try {
    options.validate();
    options.codec = std::make_shared<evwheel::WebSocketCodec>(page_and_socket());
    evwheel::Reactor reactor;
    Echo echo;
    evwheel::Endpoint endpoint(reactor, echo, options);
    evwheel::Listener listener(endpoint, listener_options);
    evwheel::Shutdown shutdown(reactor);
    shutdown.add(listener);
    shutdown.add(endpoint);
    evwheel::Signals signals(reactor, [&](int) {
      shutdown.start(std::chrono::seconds(2), [&] { reactor.stop(); });
    });
    std::fprintf(stderr, "ws_server: listening on http://%s:%u/\n", listen.substr(0, listen.rfind(':')).c_str(),
                 listener.port());
    reactor.run_every(rtt_every, [&] { report_rtt(endpoint); });
    reactor.run();
    print_counters(endpoint, listener);
  } catch (const std::invalid_argument& error) {
    return flags.fail(cli::without_library_prefix(error.what()));
  } catch (const std::exception& error) {
    flags.fail(cli::without_library_prefix(error.what()));
    return 1;
  }
  return 0;
}
