// websocket — the WebSocket codec (RFC 6455): browsers and standard clients on the same
// engine, wheel and heartbeat as evwheel's own protocols.
//
// Give an Endpoint a WebSocketCodec and it speaks WebSocket: a server endpoint's Listener
// answers the opening handshake before the connection opens (websocket_gate.hpp), a client
// endpoint's Connector sends it.  Then:
//   * messages: on_message (binary) and on_text (text, checked to be UTF-8 as it arrives, a
//     fragment at a time), whole however the peer fragmented them, up to max_message bytes;
//     Connection::send / send_text write one unfragmented frame (a client's masked with a
//     fresh random key);
//   * heartbeat: the pinging side sends ping frames carrying its send time and matches the
//     pongs (RTT as with framed); any frame, an unsolicited pong included, refreshes the idle
//     clock; a browser answers pings by itself;
//   * closing: a received close frame is answered with the same code and the connection ends
//     (CloseReason::peer_closed); Connection::close() sends one (1000) and waits up to
//     EndpointOptions::close_timeout for the answer; a drain says 1001; Connection::close_code()
//     tells on_close which code it was;
//   * protocol errors are answered with a close frame (1002, 1007 invalid UTF-8, 1009 too big)
//     before the connection closes (CloseReason::protocol_error).
// Per connection the codec keeps two bytes in the Connection (the fragment phase and UTF-8
// state); a fragmented message borrows a buffer only while it is incomplete, so an idle
// WebSocket connection costs what any other does.  permessage-deflate is not offered: it would
// need zlib, and evwheel uses the system's calls only.  docs/websocket.md has the wire rules.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "evwheel/address.hpp"
#include "evwheel/codec.hpp"
#include "evwheel/timer_wheel.hpp"

namespace evwheel {

namespace websocket {
struct UpgradeRequest;
}

enum class WebSocketRole : uint8_t { server, client };

// What an upgrade (or a plain HTTP GET) asked for, as the server's hooks see it.  Views into
// the request's bytes: valid during the hook only.
class WebSocketRequest {
 public:
  WebSocketRequest(const websocket::UpgradeRequest& request, const SocketAddress& peer) noexcept
      : request_(request), peer_(peer) {}

  std::string_view method() const noexcept;
  std::string_view target() const noexcept;  // as sent: path and query
  std::string_view path() const noexcept;    // the target up to any '?'
  std::string_view origin() const noexcept;  // the Origin field, or empty
  // The first value of the field `name` (any case), or empty.
  std::string_view field(std::string_view name) const noexcept;
  // The subprotocols offered, most preferred first.
  std::vector<std::string_view> subprotocols() const;
  bool offers(std::string_view subprotocol) const noexcept;
  // The client: a PROXY header's, else the socket's peer.
  const SocketAddress& peer() const noexcept { return peer_; }

 private:
  const websocket::UpgradeRequest& request_;
  const SocketAddress& peer_;
};

// The server's answer to an upgrade request; accepted with no subprotocol unless the hook
// says otherwise.
struct UpgradeDecision {
  bool accept = true;
  std::string subprotocol;   // one the client offers, or empty for none
  uint16_t refuse_with = 403;  // the status when not accepted: 400, 403 or 404
  void* context = nullptr;   // the connection's context (Connection::context) from on_open on
};

// A page for a plain HTTP GET on the WebSocket port (a browser loading the page that then
// opens the WebSocket).
struct HttpPage {
  std::string content_type = "text/html; charset=utf-8";
  std::string body;
};

struct WebSocketOptions {
  WebSocketRole role = WebSocketRole::server;
  // The largest message accepted (whole, over all its fragments) and sent: bigger ones are
  // refused with close code 1009.
  std::size_t max_message = std::size_t{1} << 20;

  // Server: the handshake must be complete within handshake_timeout (a slow or silent client
  // — slowloris — is reset) and its head within max_request bytes (else 431).  Handshaking
  // connections count toward ListenerOptions::max_connections.
  Duration handshake_timeout = std::chrono::seconds(5);
  std::size_t max_request = 8192;
  // Decides each valid upgrade request (empty: accept all, no subprotocol).  Exceptions count
  // as a refusal (500 is not sent: 403).
  std::function<void(const WebSocketRequest&, UpgradeDecision&)> on_upgrade;
  // Answers a plain GET (not an upgrade): true with `page` filled serves it (200), false is
  // 404.  Empty: every plain request is 404.
  std::function<bool(const WebSocketRequest&, HttpPage& page)> on_page;

  // Client: what the opening handshake asks for.  `host` empty: the connector's address.
  std::string path = "/";
  std::string host;
  std::vector<std::string> subprotocols;
  std::vector<std::pair<std::string, std::string>> fields;  // more header fields, e.g. Origin

  // Throws std::invalid_argument naming the bad field.
  void validate() const;
};

class WebSocketCodec final : public Codec {
 public:
  // Throws std::invalid_argument on bad options (see WebSocketOptions::validate).
  explicit WebSocketCodec(WebSocketOptions options = {});

  std::string_view name() const noexcept override { return "websocket"; }
  std::ptrdiff_t decode(char* input, std::size_t size, Frame& frame, CodecState& state,
                        std::size_t assembled) const noexcept override;
  int encode_header(FrameType type, MessageType message, std::size_t payload_size, const uint8_t* mask,
                    char* header) const noexcept override;
  std::size_t ping_payload_size() const noexcept override { return 8; }
  bool masks_payload() const noexcept override { return options_.role == WebSocketRole::client; }
  void mask(char* payload, std::size_t size, const uint8_t* key) const noexcept override;
  int close_payload(uint16_t code, char* out) const noexcept override;

  const WebSocketOptions& options() const noexcept { return options_; }

 private:
  WebSocketOptions options_;
};

}  // namespace evwheel
