// websocket_handshake — RFC 6455's opening handshake (§4) for both ends, as pure functions over
// an HTTP head (http_head.hpp): no socket, no state beyond the caller's.
//
// Server:
//   1. http::HeadScanner finds the end of the request as bytes arrive; too_large past the
//      limit (default 8 KiB) is answered 431.
//   2. parse_upgrade_request() parses the head and classifies it:
//        upgrade         a valid upgrade: GET, HTTP/1.1 or later, one Host, a target in
//                        origin-form ("/..."), Upgrade has "websocket", Connection has
//                        "upgrade" (token lists, any case), Sec-WebSocket-Version 13 and one
//                        Sec-WebSocket-Key that is 16 bytes in base64;
//        not_websocket   a well-formed request without "websocket" in Upgrade (a plain GET for
//                        a page: method and path are there to answer it);
//        bad_request     malformed, or an upgrade that breaks a rule above: 400;
//        wrong_version   an upgrade for another Sec-WebSocket-Version: 426 naming 13;
//        too_large       more than http::kMaxFields header fields: 431.
//      The request's path, Origin, offered subprotocols and any field are views into the head.
//   3. The application accepts (write_accept(), choosing a subprotocol or none) or refuses
//      (write_refusal(Refusal::forbidden)); write_page() serves a page to a plain GET.
//      Everything but write_accept() says "Connection: close": the connection ends after it.
//
// Client: write_client_request() with a fresh random_client_key(); check_upgrade_response() on
// the response head: 101, Upgrade and Connection tokens, the Sec-WebSocket-Accept that proves
// the server read our key, and a subprotocol only if it was one we offered.  No extension is
// offered or accepted (permessage-deflate would need zlib).
//
// The writers append to a string the caller keeps, so a reused one allocates nothing; they
// throw std::invalid_argument for a value that would break the head (a CR or LF in it, a
// subprotocol that is not a token).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http_head.hpp"

namespace evwheel {
namespace websocket {

// The GUID that §1.3 appends to a client's key before hashing it.
inline constexpr std::string_view kKeyGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

using ClientKey = std::array<char, 24>;  // Sec-WebSocket-Key: 16 random bytes in base64
using AcceptKey = std::array<char, 28>;  // Sec-WebSocket-Accept: a SHA-1 digest in base64

template <std::size_t N>
std::string_view view(const std::array<char, N>& text) noexcept {
  return std::string_view(text.data(), N);
}

// base64(SHA-1(key + kKeyGuid)), for the key as it appears in the request (trimmed).
AcceptKey accept_key(std::string_view key) noexcept;

// The key made of `nonce`; random_client_key() takes the nonce from getrandom(2) and throws
// std::system_error when that fails.
ClientKey client_key(const std::array<uint8_t, 16>& nonce) noexcept;
ClientKey random_client_key();

// --- Server side.

enum class RequestKind : uint8_t { upgrade, not_websocket, bad_request, wrong_version, too_large };

enum class RequestError : uint8_t {
  none,
  start_line,       // the request line breaks the grammar
  field,            // a header field line does
  too_many_fields,  // more than http::kMaxFields (too_large)
  host,             // HTTP/1.1 without a Host, or more than one (any request)
  method,           // an upgrade that is not GET
  http_version,     // an upgrade over HTTP/1.0
  target,           // an upgrade whose target is not "/..."
  connection,       // an upgrade whose Connection lacks "upgrade"
  version_missing,  // an upgrade without one Sec-WebSocket-Version
  version,          // an upgrade for a version other than 13 (wrong_version)
  key,              // an upgrade without one Sec-WebSocket-Key of 16 bytes in base64
};
const char* to_string(RequestError error) noexcept;

struct UpgradeRequest {
  RequestKind kind = RequestKind::bad_request;
  RequestError error = RequestError::none;
  http::RequestHead head;   // method, target, version and every field
  std::string_view path;    // the target up to any '?'
  std::string_view origin;  // the Origin field, or empty
  std::string_view key;     // upgrade: the Sec-WebSocket-Key

  // The subprotocols the client offers, most preferred first.
  http::TokenCursor subprotocols() const noexcept { return head.fields.tokens("Sec-WebSocket-Protocol"); }
  // Whether `subprotocol` is among them (names are compared exactly: they are case-sensitive).
  bool offers(std::string_view subprotocol) const noexcept;
};

// Parses and classifies the request head `head` (through its blank line).  `out` points into
// `head`'s bytes.
void parse_upgrade_request(std::string_view head, UpgradeRequest& out) noexcept;

enum class Refusal : uint16_t {
  bad_request = 400,
  forbidden = 403,  // the application refused the upgrade
  not_found = 404,  // a plain request for something not served
  upgrade_required = 426,
  fields_too_large = 431,
};
// The answer to a request of `kind` bad_request, wrong_version or too_large.
Refusal refusal_for(RequestKind kind) noexcept;

// 101 Switching Protocols for the request that carried `key`, naming `subprotocol` unless empty.
void write_accept(std::string_view key, std::string_view subprotocol, std::string& out);
// The refusal's status line, Connection: close and an empty body; 426 adds
// "Sec-WebSocket-Version: 13" and "Upgrade: websocket".
void write_refusal(Refusal refusal, std::string& out);
// 200 OK with `body` of `content_type`, and Connection: close.
void write_page(std::string_view content_type, std::string_view body, std::string& out);

// --- Client side.

struct ClientRequest {
  std::string host = "localhost";  // the Host field: "name", "name:port", "[::1]:port"
  std::string path = "/";          // "/..." with any query
  std::vector<std::string> subprotocols;                    // offered, most preferred first
  std::vector<std::pair<std::string, std::string>> fields;  // more fields, e.g. Origin
};

// Appends the upgrade request for `request` with `key`.  Throws std::invalid_argument for an
// empty or spaced host, a path not starting with '/', a subprotocol that is not a token or is
// offered twice, a field name that is not a token or is one the handshake writes itself, and
// a value with control characters.
void write_client_request(const ClientRequest& request, const ClientKey& key, std::string& out);

enum class ResponseError : uint8_t {
  none,
  status_line,      // the status line breaks the grammar
  field,            // a header field line does
  too_many_fields,  // more than http::kMaxFields
  status,           // not 101 (the status is in head.status)
  upgrade,          // no "websocket" in Upgrade
  connection,       // no "upgrade" in Connection
  accept,           // no Sec-WebSocket-Accept, several, or not the one our key calls for
  subprotocol,      // a subprotocol we did not offer, or more than one
  extension,        // an extension, when none was offered
};
const char* to_string(ResponseError error) noexcept;

struct UpgradeResponse {
  ResponseError error = ResponseError::none;
  http::ResponseHead head;
  std::string_view subprotocol;  // chosen by the server, or empty
};

// Checks the response head `head` to an upgrade request sent with `key` and offering `offered`.
void check_upgrade_response(std::string_view head, const ClientKey& key, const std::vector<std::string>& offered,
                            UpgradeResponse& out) noexcept;

}  // namespace websocket
}  // namespace evwheel
