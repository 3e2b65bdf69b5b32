// websocket_handshake — see websocket_handshake.hpp.
#include "websocket_handshake.hpp"

#include <sys/random.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

#include "base64.hpp"
#include "sha1.hpp"

namespace evwheel {
namespace websocket {

namespace {

constexpr std::size_t kNonceSize = 16;

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

void require(bool condition, const char* what) {
  if (!condition) throw std::invalid_argument(std::string("websocket handshake: ") + what);
}

bool is_key(std::string_view key) {
  uint8_t nonce[kNonceSize];
  return base64_decode(key, nonce, sizeof nonce) == static_cast<std::ptrdiff_t>(kNonceSize);
}

// The one field named `name`: null when there is none or more than one.
const http::Field* single(const http::Fields& fields, std::string_view name) {
  return fields.count(name) == 1 ? fields.find(name) : nullptr;
}

void refuse(UpgradeRequest& out, RequestError error) {
  out.error = error;
  out.kind = error == RequestError::too_many_fields ? RequestKind::too_large
             : error == RequestError::version       ? RequestKind::wrong_version
                                                    : RequestKind::bad_request;
}

const char* reason_phrase(Refusal refusal) {
  switch (refusal) {
    case Refusal::bad_request: return "Bad Request";
    case Refusal::forbidden: return "Forbidden";
    case Refusal::not_found: return "Not Found";
    case Refusal::upgrade_required: return "Upgrade Required";
    case Refusal::fields_too_large: return "Request Header Fields Too Large";
  }
  return "?";
}

}  // namespace

AcceptKey accept_key(std::string_view key) noexcept {
  Sha1 hash;
  hash.update(key);
  hash.update(kKeyGuid);
  const Sha1Digest digest = hash.finish();
  AcceptKey accept;
  base64_encode(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()), accept.data());
  return accept;
}

ClientKey client_key(const std::array<uint8_t, 16>& nonce) noexcept {
  ClientKey key;
  base64_encode(std::string_view(reinterpret_cast<const char*>(nonce.data()), nonce.size()), key.data());
  return key;
}

ClientKey random_client_key() {
  std::array<uint8_t, kNonceSize> nonce;
  ssize_t n;
  do {
    n = ::getrandom(nonce.data(), nonce.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) throw std::system_error(errno, std::generic_category(), "getrandom for a Sec-WebSocket-Key");
  // Requests of up to 256 bytes are never cut short once the pool is initialised (getrandom(2)).
  if (static_cast<std::size_t>(n) != nonce.size())
    throw std::system_error(EIO, std::generic_category(), "getrandom returned too few bytes for a Sec-WebSocket-Key");
  return client_key(nonce);
}

const char* to_string(RequestError error) noexcept {
  switch (error) {
    case RequestError::none: return "none";
    case RequestError::start_line: return "malformed request line";
    case RequestError::field: return "malformed request header field";
    case RequestError::too_many_fields: return "too many request header fields";
    case RequestError::host: return "no Host field, or more than one";
    case RequestError::method: return "upgrade with a method other than GET";
    case RequestError::http_version: return "upgrade over HTTP/1.0";
    case RequestError::target: return "upgrade target not in origin-form";
    case RequestError::connection: return "upgrade without Connection: upgrade";
    case RequestError::version_missing: return "upgrade without one Sec-WebSocket-Version";
    case RequestError::version: return "upgrade for a Sec-WebSocket-Version other than 13";
    case RequestError::key: return "upgrade without one valid Sec-WebSocket-Key";
  }
  return "?";
}

bool UpgradeRequest::offers(std::string_view subprotocol) const noexcept {
  http::TokenCursor cursor = subprotocols();
  std::string_view offered;
  while (cursor.next(&offered)) {
    if (offered == subprotocol) return true;
  }
  return false;
}

void parse_upgrade_request(std::string_view head, UpgradeRequest& out) noexcept {
  out.error = RequestError::none;
  out.path = out.origin = out.key = std::string_view();
  switch (http::parse_request_head(head, out.head)) {
    case http::HeadError::none: break;
    case http::HeadError::start_line: return refuse(out, RequestError::start_line);
    case http::HeadError::field: return refuse(out, RequestError::field);
    case http::HeadError::too_many_fields: return refuse(out, RequestError::too_many_fields);
  }
  const http::Fields& fields = out.head.fields;
  out.path = out.head.target.substr(0, out.head.target.find('?'));
  if (const http::Field* origin = fields.find("Origin")) out.origin = origin->value;
  // RFC 9112 §3.2: any request with several Hosts, and an HTTP/1.1 one with none, is a 400.
  const std::size_t hosts = fields.count("Host");
  if (hosts > 1 || (hosts == 0 && out.head.version.at_least_1_1())) return refuse(out, RequestError::host);
  if (!fields.has_token("Upgrade", "websocket")) {
    out.kind = RequestKind::not_websocket;
    return;
  }
  if (out.head.method != "GET") return refuse(out, RequestError::method);
  if (!out.head.version.at_least_1_1()) return refuse(out, RequestError::http_version);
  if (out.head.target[0] != '/') return refuse(out, RequestError::target);
  if (!fields.has_token("Connection", "upgrade")) return refuse(out, RequestError::connection);
  const http::Field* version = single(fields, "Sec-WebSocket-Version");
  if (!version) return refuse(out, RequestError::version_missing);
  if (version->value != "13") return refuse(out, RequestError::version);
  const http::Field* key = single(fields, "Sec-WebSocket-Key");
  if (!key || !is_key(key->value)) return refuse(out, RequestError::key);
  out.key = key->value;
  out.kind = RequestKind::upgrade;
}

Refusal refusal_for(RequestKind kind) noexcept {
  switch (kind) {
    case RequestKind::wrong_version: return Refusal::upgrade_required;
    case RequestKind::too_large: return Refusal::fields_too_large;
    default: return Refusal::bad_request;
  }
}

void write_accept(std::string_view key, std::string_view subprotocol, std::string& out) {
  require(subprotocol.empty() || http::is_token(subprotocol), "the chosen subprotocol is not a token");
  out.append("HTTP/1.1 101 Switching Protocols\r\n");
  append_field(out, "Upgrade", "websocket");
  append_field(out, "Connection", "Upgrade");
  append_field(out, "Sec-WebSocket-Accept", view(accept_key(key)));
  if (!subprotocol.empty()) append_field(out, "Sec-WebSocket-Protocol", subprotocol);
  out.append("\r\n");
}

void write_refusal(Refusal refusal, std::string& out) {
  out.append("HTTP/1.1 ").append(std::to_string(static_cast<unsigned>(refusal))).append(" ");
  out.append(reason_phrase(refusal)).append("\r\n");
  if (refusal == Refusal::upgrade_required) {
    // RFC 9110 §15.5.22: a 426 names the protocol to upgrade to; RFC 6455 §4.4 the versions.
    append_field(out, "Upgrade", "websocket");
    append_field(out, "Sec-WebSocket-Version", "13");
  }
  append_field(out, "Connection", "close");
  append_field(out, "Content-Length", "0");
  out.append("\r\n");
}

void write_page(std::string_view content_type, std::string_view body, std::string& out) {
  require(!content_type.empty() && http::is_field_value(content_type), "the content type is empty or has control characters");
  out.append("HTTP/1.1 200 OK\r\n");
  append_field(out, "Content-Type", content_type);
  append_field(out, "Content-Length", std::to_string(body.size()));
  append_field(out, "Connection", "close");
  out.append("\r\n").append(body);
}

void write_client_request(const ClientRequest& request, const ClientKey& key, std::string& out) {
  require(http::is_visible_ascii(request.host), "the host is empty or has spaces or control characters");
  require(!request.path.empty() && request.path[0] == '/' && http::is_visible_ascii(request.path),
          "the path does not start with '/' or has spaces or control characters");
  for (std::size_t i = 0; i < request.subprotocols.size(); ++i) {
    require(http::is_token(request.subprotocols[i]), "a subprotocol is not a token");
    for (std::size_t j = 0; j < i; ++j) require(request.subprotocols[i] != request.subprotocols[j], "a subprotocol is offered twice");
  }
  for (const auto& [name, value] : request.fields) {
    require(http::is_token(name), "a field name is not a token");
    for (std::string_view own : {"Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
                                 "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"})
      require(!http::equal_ignoring_case(name, own), "a field the handshake writes itself is given");
    require(http::is_field_value(value), "a field value has control characters");
  }
  out.append("GET ").append(request.path).append(" HTTP/1.1\r\n");
  append_field(out, "Host", request.host);
  append_field(out, "Upgrade", "websocket");
  append_field(out, "Connection", "Upgrade");
  append_field(out, "Sec-WebSocket-Key", view(key));
  append_field(out, "Sec-WebSocket-Version", "13");
  if (!request.subprotocols.empty()) {
    out.append("Sec-WebSocket-Protocol: ");
    for (std::size_t i = 0; i < request.subprotocols.size(); ++i) out.append(i ? ", " : "").append(request.subprotocols[i]);
    out.append("\r\n");
  }
  for (const auto& [name, value] : request.fields) append_field(out, name, value);
  out.append("\r\n");
}

const char* to_string(ResponseError error) noexcept {
  switch (error) {
    case ResponseError::none: return "none";
    case ResponseError::status_line: return "malformed status line";
    case ResponseError::field: return "malformed response header field";
    case ResponseError::too_many_fields: return "too many response header fields";
    case ResponseError::status: return "the server did not switch protocols (status not 101)";
    case ResponseError::upgrade: return "no Upgrade: websocket in the response";
    case ResponseError::connection: return "no Connection: upgrade in the response";
    case ResponseError::accept: return "Sec-WebSocket-Accept missing, repeated or not for our key";
    case ResponseError::subprotocol: return "the server chose a subprotocol we did not offer";
    case ResponseError::extension: return "the server named an extension we did not offer";
  }
  return "?";
}

void check_upgrade_response(std::string_view head, const ClientKey& key, const std::vector<std::string>& offered,
                            UpgradeResponse& out) noexcept {
  out.subprotocol = std::string_view();
  out.error = ResponseError::none;
  switch (http::parse_response_head(head, out.head)) {
    case http::HeadError::none: break;
    case http::HeadError::start_line: out.error = ResponseError::status_line; return;
    case http::HeadError::field: out.error = ResponseError::field; return;
    case http::HeadError::too_many_fields: out.error = ResponseError::too_many_fields; return;
  }
  const http::Fields& fields = out.head.fields;
  const http::Field* accept = single(fields, "Sec-WebSocket-Accept");
  std::string_view extension;
  if (out.head.status != 101) {
    out.error = ResponseError::status;
  } else if (!fields.has_token("Upgrade", "websocket")) {
    out.error = ResponseError::upgrade;
  } else if (!fields.has_token("Connection", "upgrade")) {
    out.error = ResponseError::connection;
  } else if (!accept || accept->value != view(accept_key(view(key)))) {
    out.error = ResponseError::accept;
  } else if (fields.tokens("Sec-WebSocket-Extensions").next(&extension)) {
    out.error = ResponseError::extension;
  } else if (fields.count("Sec-WebSocket-Protocol") > 0) {
    const http::Field* chosen = single(fields, "Sec-WebSocket-Protocol");
    bool was_offered = false;
    for (const std::string& name : offered) was_offered = was_offered || (chosen && chosen->value == name);
    if (!was_offered) {
      out.error = ResponseError::subprotocol;
    } else {
      out.subprotocol = chosen->value;
    }
  }
}

}  // namespace websocket
}  // namespace evwheel
