// WebSocket on loopback (websocket.hpp, websocket_gate.hpp): evwheel's own client and server,
// and a raw client that writes the handshake and frames byte by byte, so each protocol rule
// is seen from the wire: the close code that comes back, the close reason evwheel reports.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../src/websocket_frame.hpp"
#include "evwheel/connector.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/websocket.hpp"
#include "loopback.hpp"

using namespace evwheel;
using namespace loopback;
namespace ws = evwheel::websocket;

namespace {

std::shared_ptr<const WebSocketCodec> server_codec(WebSocketOptions options = {}) {
  options.role = WebSocketRole::server;
  return std::make_shared<WebSocketCodec>(options);
}

EndpointOptions server_options(Duration interval = 10s, Duration idle = 30s, WebSocketOptions ws_options = {}) {
  EndpointOptions o = options(Side::server, interval, idle);
  o.codec = server_codec(ws_options);
  o.close_timeout = 300ms;
  return o;
}

// A client endpoint's options: evwheel's WebSocket client, asking for `path`.
EndpointOptions client_endpoint_options(Duration interval, Duration idle, std::string path = "/") {
  EndpointOptions o = options(Side::client, interval, idle);
  WebSocketOptions websocket;
  websocket.role = WebSocketRole::client;
  websocket.path = std::move(path);
  o.codec = std::make_shared<WebSocketCodec>(websocket);
  return o;
}

// A recorder that also keeps each close code and each message's type.
struct WsRecorder : Recorder {
  std::vector<uint16_t> close_codes;
  std::vector<std::string> texts;
  void on_text(Connection& c, std::string_view text) override {
    texts.emplace_back(text);
    if (message_hook) message_hook(c, text);
  }
  void on_close(Connection& c, CloseReason reason, int error) override {
    close_codes.push_back(c.close_code());
    Recorder::on_close(c, reason, error);
  }
};

struct Server {
  explicit Server(EndpointOptions endpoint_options = server_options(), ListenerOptions listener_options = {})
      : endpoint(reactor, handler, std::move(endpoint_options)), listener(endpoint, std::move(listener_options)) {}
  Reactor reactor;
  WsRecorder handler;
  Endpoint endpoint;
  Listener listener;
};

constexpr const char* kUpgrade =
    "GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

// A raw client: writes what a test tells it, reads what the server sends.
struct RawClient {
  Server& server;
  int fd;
  std::string in;

  explicit RawClient(Server& s) : server(s), fd(raw_connect(s.listener.port())) { REQUIRE(fd >= 0); }
  ~RawClient() {
    if (fd >= 0) ::close(fd);
  }
  // Runs the server until `bytes` more arrived or the peer closed; returns what is buffered.
  std::string& read_until(std::size_t at_least, Duration timeout = 5s) {
    pump_until(server.reactor, [&] { return drain(fd, in) != kOpen || in.size() >= at_least; }, timeout);
    return in;
  }
  // Runs the server until the connection is closed by it (EOF or reset).
  bool wait_closed(Duration timeout = 5s) {
    int status = kOpen;
    pump_until(server.reactor, [&] { return (status = drain(fd, in)) != kOpen; }, timeout);
    return status != kOpen;
  }
  void upgrade() {
    REQUIRE(write_all(fd, kUpgrade));
    std::string& got = read_until(1);
    REQUIRE(pump_until(server.reactor, [&] { drain(fd, in); return in.find("\r\n\r\n") != std::string::npos; }));
    std::size_t end = got.find("\r\n\r\n");
    REQUIRE(got.compare(0, 12, "HTTP/1.1 101") == 0);
    CHECK(got.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != std::string::npos);
    in.erase(0, end + 4);
  }
  // A masked client frame.
  void send_frame(ws::Opcode opcode, std::string_view payload, bool fin = true, bool masked = true) {
    ws::MaskKey key{0x12, 0x34, 0x56, 0x78};
    std::string frame(ws::kMaxFrameHeader + payload.size(), '\0');
    frame.resize(ws::write_frame(opcode, fin, payload, masked ? &key : nullptr, frame.data()));
    REQUIRE(write_all(fd, frame));
  }
  // The next whole server frame, or nullopt if none within the timeout.
  struct Got {
    ws::Opcode opcode;
    bool fin;
    std::string payload;
  };
  std::optional<Got> next_frame(Duration timeout = 5s) {
    std::optional<Got> frame;
    pump_until(server.reactor, [&] {
      drain(fd, in);
      ws::HeaderParse parse = ws::parse_frame_header(in, ws::Role::client, 1u << 30);
      if (parse.status != ws::HeaderParse::Status::header) return false;
      std::size_t total = parse.header.size + parse.header.payload_length;
      if (in.size() < total) return false;
      frame = Got{parse.header.opcode, parse.header.fin, in.substr(parse.header.size, parse.header.payload_length)};
      in.erase(0, total);
      return true;
    }, timeout);
    return frame;
  }
  // The code of the next close frame from the server (skipping pings), 0 if none comes.
  uint16_t close_code_received() {
    for (int i = 0; i < 100; ++i) {
      std::optional<Got> frame = next_frame();
      if (!frame) return 0;
      if (frame->opcode != ws::Opcode::close) continue;
      return frame->payload.size() >= 2 ? static_cast<uint16_t>(static_cast<unsigned char>(frame->payload[0]) << 8 |
                                                                  static_cast<unsigned char>(frame->payload[1]))
                                        : 1005;
    }
    return 0;
  }
};

std::string close_payload(uint16_t code, std::string_view reason = {}) {
  std::string p{static_cast<char>(code >> 8), static_cast<char>(code & 0xff)};
  return p.append(reason);
}

}  // namespace

TEST_CASE("websocket: the RFC's handshake opens a connection; text and binary messages keep their type") {
  Server server;
  server.handler.message_hook = [](Connection& c, std::string_view m) { c.send(m); };
  RawClient client(server);
  client.upgrade();
  REQUIRE(pump_until(server.reactor, [&] { return server.handler.opens == 1; }));
  client.send_frame(ws::Opcode::text, "héllo");
  client.send_frame(ws::Opcode::binary, std::string("\x00\xff\x01", 3));
  REQUIRE(pump_until(server.reactor, [&] { return server.handler.texts.size() == 1 && server.handler.messages.size() == 1; }));
  CHECK(server.handler.texts[0] == "héllo");                                // on_text
  CHECK(server.handler.messages[0] == std::string("\x00\xff\x01", 3));  // on_message
  // The server's frames are unmasked (the raw client parses as a client).
  auto echo = client.next_frame();
  REQUIRE(echo);
  CHECK(echo->opcode == ws::Opcode::binary);
  CHECK(echo->payload == "héllo");
  CHECK(server.listener.stats().websocket.upgrades == 1);
}

TEST_CASE("websocket: a fragmented message, with a ping between its fragments, arrives whole and the ping is answered") {
  Server server;
  RawClient client(server);
  client.upgrade();
  client.send_frame(ws::Opcode::text, "one ", false);
  client.send_frame(ws::Opcode::ping, "are you there");
  client.send_frame(ws::Opcode::continuation, "two ", false);
  client.send_frame(ws::Opcode::continuation, "three", true);
  REQUIRE(pump_until(server.reactor, [&] { return server.handler.texts.size() == 1; }));
  CHECK(server.handler.texts[0] == "one two three");
  auto pong = client.next_frame();
  REQUIRE(pong);
  CHECK(pong->opcode == ws::Opcode::pong);
  CHECK(pong->payload == "are you there");
  CHECK(server.endpoint.heartbeat_stats().pings_answered == 1);
}

TEST_CASE("websocket: each protocol violation is answered with its close code and closes as a protocol error") {
  struct Case {
    const char* what;
    uint16_t code;
    std::function<void(RawClient&)> send;
  };
  std::vector<Case> cases = {
      {"an unmasked client frame", 1002, [](RawClient& c) { c.send_frame(ws::Opcode::text, "hi", true, false); }},
      {"an unknown opcode", 1002, [](RawClient& c) { c.send_frame(static_cast<ws::Opcode>(3), "x"); }},
      {"a continuation without a message", 1002, [](RawClient& c) { c.send_frame(ws::Opcode::continuation, "x"); }},
      {"a new message inside a fragmented one", 1002,
       [](RawClient& c) {
         c.send_frame(ws::Opcode::text, "a", false);
         c.send_frame(ws::Opcode::binary, "b");
       }},
      {"a fragmented ping", 1002, [](RawClient& c) { c.send_frame(ws::Opcode::ping, "x", false); }},
      {"a control frame over 125 bytes", 1002, [](RawClient& c) { c.send_frame(ws::Opcode::ping, std::string(126, 'p')); }},
      {"RSV1 without an extension", 1002,
       [](RawClient& c) { REQUIRE(write_all(c.fd, std::string("\xc1\x80\x01\x02\x03\x04", 6))); }},
      {"invalid UTF-8 in a text message", 1007,
       [](RawClient& c) { c.send_frame(ws::Opcode::text, std::string("ok\xc3\x28", 4)); }},
      {"invalid UTF-8 across fragments", 1007,
       [](RawClient& c) {
         c.send_frame(ws::Opcode::text, "\xe2\x82", false);
         c.send_frame(ws::Opcode::continuation, "A");
       }},
      {"a close code not valid on the wire", 1002,
       [](RawClient& c) { c.send_frame(ws::Opcode::close, close_payload(1005)); }},
      {"a message over max_message", 1009,
       [](RawClient& c) { c.send_frame(ws::Opcode::binary, std::string(2000, 'b')); }},
      {"fragments adding up to more than max_message", 1009,
       [](RawClient& c) {
         c.send_frame(ws::Opcode::binary, std::string(600, 'b'), false);
         c.send_frame(ws::Opcode::continuation, std::string(600, 'b'));
       }},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    WebSocketOptions small;
    small.max_message = 1000;
    Server server(server_options(10s, 30s, small));
    RawClient client(server);
    client.upgrade();
    REQUIRE(pump_until(server.reactor, [&] { return server.handler.opens == 1; }));
    c.send(client);
    CHECK(client.close_code_received() == c.code);
    CHECK(client.wait_closed());
    REQUIRE(server.handler.closes.size() == 1);
    CHECK(server.handler.closes[0].reason == CloseReason::protocol_error);
    CHECK(server.handler.close_codes[0] == c.code);
    CHECK(server.endpoint.heartbeat_stats().protocol_errors == 1);
  }
}

TEST_CASE("websocket: a close frame from the peer is echoed with its code, and the connection ends as peer_closed") {
  Server server;
  RawClient client(server);
  client.upgrade();
  client.send_frame(ws::Opcode::close, close_payload(4001, "bye"));
  CHECK(client.close_code_received() == 4001);
  CHECK(client.wait_closed());
  REQUIRE(server.handler.closes.size() == 1);
  CHECK(server.handler.closes[0].reason == CloseReason::peer_closed);
  CHECK(server.handler.close_codes[0] == 4001);
}

TEST_CASE("websocket: close() sends 1000 and waits for the peer's close; a peer that never answers is reset after close_timeout") {
  Server server;
  RawClient answering(server), silent(server);
  answering.upgrade();
  silent.upgrade();
  REQUIRE(pump_until(server.reactor, [&] { return server.handler.live.size() == 2; }));
  Connection* first = server.handler.live[0];
  Connection* second = server.handler.live[1];
  first->close();
  second->close();
  CHECK(server.handler.closes.empty());  // both wait for an answer
  CHECK(answering.close_code_received() == 1000);
  CHECK(silent.close_code_received() == 1000);
  answering.send_frame(ws::Opcode::close, close_payload(1000));
  REQUIRE(pump_until(server.reactor, [&] { return server.handler.closes.size() == 1; }));
  CHECK(server.handler.closes[0].reason == CloseReason::local_close);
  CHECK(server.handler.close_codes[0] == 1000);
  // The silent one: closed by the timeout, with no close frame from the peer.
  REQUIRE(pump_until(server.reactor, [&] { return server.handler.closes.size() == 2; }, 3s));
  CHECK(server.handler.closes[1].reason == CloseReason::local_close);
  CHECK(server.handler.close_codes[1] == 1006);
  CHECK(silent.wait_closed());
}

TEST_CASE("websocket: a handshake not complete within handshake_timeout is reset, and counts toward max_connections meanwhile") {
  WebSocketOptions quick;
  quick.handshake_timeout = 200ms;
  ListenerOptions listener_options;
  listener_options.max_connections = 1;
  Server server(server_options(10s, 30s, quick), listener_options);
  RawClient slow(server);
  REQUIRE(write_all(slow.fd, "GET / HTTP/1.1\r\nHost: x\r\n"));  // and nothing more
  REQUIRE(pump_until(server.reactor, [&] { return server.listener.handshaking() == 1; }));
  RawClient second(server);  // over max_connections while the first still handshakes
  CHECK(second.wait_closed());
  CHECK(server.listener.stats().shed_limit == 1);
  CHECK(slow.wait_closed(3s));
  CHECK(server.listener.stats().websocket.abandoned == 1);
  CHECK(server.handler.opens == 0);
  CHECK(server.listener.handshaking() == 0);
}

TEST_CASE("websocket: bad requests get their status — 400, 426 with the version, 431, and 403 from on_upgrade") {
  auto status_of = [](Server& server, const std::string& request) {
    RawClient client(server);
    REQUIRE(write_all(client.fd, request));
    CHECK(client.wait_closed());
    return client.in.substr(0, client.in.find("\r\n"));
  };
  WebSocketOptions options;
  options.on_upgrade = [](const WebSocketRequest& request, UpgradeDecision& decision) {
    decision.accept = request.path() == "/chat";
  };
  Server server(server_options(10s, 30s, options));
  std::string upgrade = kUpgrade;
  CHECK(status_of(server, "GARBAGE\r\n\r\n") == "HTTP/1.1 400 Bad Request");
  std::string v8 = upgrade;
  v8.replace(v8.find("Version: 13"), 11, "Version: 8");
  std::string answer_v8;
  {
    RawClient client(server);
    REQUIRE(write_all(client.fd, v8));
    CHECK(client.wait_closed());
    answer_v8 = client.in;
  }
  CHECK(answer_v8.compare(0, 12, "HTTP/1.1 426") == 0);
  CHECK(answer_v8.find("Sec-WebSocket-Version: 13") != std::string::npos);
  std::string huge = "GET /chat HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(9000, 'a') + "\r\n\r\n";
  CHECK(status_of(server, huge).compare(0, 12, "HTTP/1.1 431") == 0);
  std::string elsewhere = upgrade;
  elsewhere.replace(elsewhere.find("/chat"), 5, "/other");
  CHECK(status_of(server, elsewhere).compare(0, 12, "HTTP/1.1 403") == 0);
  CHECK(server.handler.opens == 0);
  CHECK(server.listener.stats().websocket.refused == 4);
}

TEST_CASE("websocket: a plain GET is served the page on_page returns, anything else is 404") {
  WebSocketOptions options;
  options.on_page = [](const WebSocketRequest& request, HttpPage& page) {
    if (request.path() != "/") return false;
    page.body = "<html>hi</html>";
    return true;
  };
  Server server(server_options(10s, 30s, options));
  RawClient page(server), missing(server);
  REQUIRE(write_all(page.fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  REQUIRE(write_all(missing.fd, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"));
  CHECK(page.wait_closed());
  CHECK(missing.wait_closed());
  CHECK(page.in.compare(0, 15, "HTTP/1.1 200 OK") == 0);
  CHECK(page.in.find("<html>hi</html>") != std::string::npos);
  CHECK(missing.in.compare(0, 12, "HTTP/1.1 404") == 0);
  CHECK(server.listener.stats().websocket.pages == 2);
}

TEST_CASE("websocket: on_upgrade picks a subprotocol and the connection's context") {
  static int session = 7;
  WebSocketOptions options;
  options.on_upgrade = [](const WebSocketRequest& request, UpgradeDecision& decision) {
    CHECK(request.subprotocols() == std::vector<std::string_view>{"v2.chat", "v1.chat"});
    CHECK(request.origin() == "http://example.com");
    decision.subprotocol = "v1.chat";
    decision.context = &session;
  };
  Server server(server_options(10s, 30s, options));
  int* seen = nullptr;
  server.handler.open_hook = [&](Connection& c) { seen = c.context<int>(); };
  RawClient client(server);
  std::string request = kUpgrade;
  request.insert(request.size() - 2, "Sec-WebSocket-Protocol: v2.chat, v1.chat\r\nOrigin: http://example.com\r\n");
  REQUIRE(write_all(client.fd, request));
  REQUIRE(pump_until(server.reactor, [&] { return server.handler.opens == 1; }));
  CHECK(seen == &session);
  client.read_until(1);
  CHECK(client.in.find("Sec-WebSocket-Protocol: v1.chat\r\n") != std::string::npos);
}

TEST_CASE("websocket: evwheel's client and server heartbeat each other, exchange messages and close with a handshake") {
  Reactor reactor;
  WsRecorder server_handler, client_handler;
  Endpoint server(reactor, server_handler, server_options(50ms, 2s));
  Listener listener(server, {});
  server_handler.message_hook = [](Connection& c, std::string_view m) { c.send_text(m); };
  Endpoint client(reactor, client_handler, client_endpoint_options(50ms, 2s, "/feed"));
  ConnectorOptions connector_options;
  connector_options.address = "127.0.0.1:" + std::to_string(listener.port());
  Connector connector(client, connector_options);
  connector.start();
  REQUIRE(pump_until(reactor, [&] { return client_handler.opens == 1 && server_handler.opens == 1; }));
  Connection* connection = connector.connection();
  REQUIRE(connection != nullptr);
  CHECK(connection->send("binary out"));
  REQUIRE(pump_until(reactor, [&] { return client_handler.texts.size() == 1; }));
  CHECK(client_handler.texts[0] == "binary out");
  // Several ping rounds from the server, answered by the client's engine.
  REQUIRE(pump_until(reactor, [&] { return server.heartbeat_stats().rtt.count() >= 3; }));
  CHECK(client.heartbeat_stats().pings_answered >= 3);
  connection->close();
  REQUIRE(pump_until(reactor, [&] { return client_handler.closes.size() == 1 && server_handler.closes.size() == 1; }));
  CHECK(client_handler.closes[0].reason == CloseReason::local_close);
  CHECK(client_handler.close_codes[0] == 1000);
  CHECK(server_handler.closes[0].reason == CloseReason::peer_closed);
  CHECK(server_handler.close_codes[0] == 1000);
}

TEST_CASE("websocket: a connector whose handshake is refused reports EPROTO and opens nothing") {
  Reactor reactor;
  WebSocketOptions refuse_all;
  refuse_all.on_upgrade = [](const WebSocketRequest&, UpgradeDecision& decision) { decision.accept = false; };
  WsRecorder server_handler, client_handler;
  Endpoint server(reactor, server_handler, server_options(10s, 30s, refuse_all));
  Listener listener(server, {});
  Endpoint client(reactor, client_handler, client_endpoint_options(10s, 30s));
  ConnectorOptions connector_options;
  connector_options.address = "127.0.0.1:" + std::to_string(listener.port());
  Connector connector(client, connector_options);
  connector.start();
  REQUIRE(pump_until(reactor, [&] { return !client_handler.connect_errors.empty(); }));
  CHECK(client_handler.connect_errors[0] == EPROTO);
  CHECK(client_handler.opens == 0);
  CHECK(server_handler.opens == 0);
}

TEST_CASE("websocket: a codec whose role does not match the endpoint's side is refused") {
  Reactor reactor;
  Recorder handler;
  EndpointOptions o = options(Side::client, 10s, 30s);
  o.codec = server_codec();
  CHECK_THROWS_AS(Endpoint(reactor, handler, o), std::invalid_argument);
}

TEST_CASE("websocket: unsolicited pongs keep a peer alive; a silent one is closed for idle timeout") {
  Server server(server_options(40ms, 160ms));
  RawClient chatty(server), silent(server);
  chatty.upgrade();
  silent.upgrade();
  REQUIRE(pump_until(server.reactor, [&] { return server.handler.opens == 2; }));
  // The chatty client never answers a ping, but sends a pong of its own every 20 ms.
  auto until = Clock::now() + 800ms;
  while (Clock::now() < until) {
    chatty.send_frame(ws::Opcode::pong, "heartbeat");
    pump_for(server.reactor, 20ms);
  }
  REQUIRE(server.handler.closes.size() == 1);
  CHECK(server.handler.closes[0].reason == CloseReason::idle_timeout);
  CHECK(server.handler.closes[0].fd != server.handler.live[0]->fd() );
  CHECK(server.handler.live.size() == 1);  // the chatty one
  CHECK(server.endpoint.heartbeat_stats().pings_sent > 0);
}

// A Connector's destructor closes its connection; a WebSocket connection then waits for the
// peer's close frame, and must not tell the (gone) Connector when it comes.  Run in a child
// process: the failure is a use after free, which must not take the test runner with it.
TEST_CASE("websocket: a Connector destroyed while its connection's close handshake is under way is not told of the close") {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    for (int crash : {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE}) ::signal(crash, SIG_DFL);  // not doctest's report
    int status = 1;
    {
      Reactor reactor;
      WsRecorder server_handler, client_handler;
      Endpoint server(reactor, server_handler, server_options());
      Listener listener(server, {});
      Endpoint client(reactor, client_handler, client_endpoint_options(10s, 30s));
      ConnectorOptions connector_options;
      connector_options.address = "127.0.0.1:" + std::to_string(listener.port());
      auto connector = std::make_unique<Connector>(client, connector_options);
      connector->start();
      if (pump_until(reactor, [&] { return client_handler.opens == 1 && server_handler.opens == 1; })) {
        connector.reset();  // its close frame goes out; the server's answer comes later
        if (pump_until(reactor, [&] { return client_handler.closes.size() == 1; })) status = 0;
      }
    }
    std::_Exit(status);  // never back into doctest
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  INFO((WIFSIGNALED(status) ? "the child was killed by signal " + std::to_string(WTERMSIG(status))
                              : "the child exited with status " + std::to_string(WEXITSTATUS(status))));
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
