// The WebSocket opening handshake (src/websocket_handshake.hpp): RFC 6455's example, each rule
// an upgrade request must follow with the refusal it gets, plain requests, the responses, and
// the client's request and its checks of the server's response.
#include <doctest/doctest.h>

#include <array>
#include <cstddef>
#include <functional>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "../src/base64.hpp"
#include "../src/websocket_handshake.hpp"

using namespace evwheel::websocket;
namespace http = evwheel::http;

namespace {

// RFC 6455 §1.2's example request.
const std::string kRfcRequest =
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

// A request with the fields of the RFC's, except the line starting with `name` (if any) is
// replaced by `line` (or dropped when `line` is empty), and `start` as the request line.
std::string request_with(const std::string& name, const std::string& line,
                         const std::string& start = "GET /chat HTTP/1.1") {
  std::string out = start + "\r\n";
  std::string_view rest(kRfcRequest);
  rest.remove_prefix(rest.find("\r\n") + 2);
  while (rest.size() > 2) {
    const std::string_view field = rest.substr(0, rest.find("\r\n"));
    rest.remove_prefix(field.size() + 2);
    if (!name.empty() && field.substr(0, name.size()) == name) {
      if (!line.empty()) out += line + "\r\n";
    } else {
      out += std::string(field) + "\r\n";
    }
  }
  if (!name.empty() && kRfcRequest.find(name) == std::string::npos) out += line + "\r\n";
  return out + "\r\n";
}

struct Parsed {
  RequestKind kind;
  RequestError error;
};

Parsed classify(const std::string& head) {
  UpgradeRequest request;
  parse_upgrade_request(head, request);
  return {request.kind, request.error};
}

std::vector<std::string> offered(const UpgradeRequest& request) {
  std::vector<std::string> out;
  http::TokenCursor cursor = request.subprotocols();
  std::string_view name;
  while (cursor.next(&name)) out.emplace_back(name);
  return out;
}

const ClientKey kKey = client_key({'t', 'h', 'e', ' ', 's', 'a', 'm', 'p', 'l', 'e', ' ', 'n', 'o', 'n', 'c', 'e'});

// The server's answer to a client that sent kKey, with the field lines `fields` instead of
// the usual ones when given.
std::string response(const std::string& fields) { return "HTTP/1.1 101 Switching Protocols\r\n" + fields + "\r\n"; }
const std::string kGoodFields =
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";

ResponseError check(const std::string& head, const std::vector<std::string>& offered_names = {}) {
  UpgradeResponse out;
  check_upgrade_response(head, kKey, offered_names, out);
  return out.error;
}

}  // namespace

TEST_CASE("RFC 6455 §1.3: the example key's Sec-WebSocket-Accept") {
  CHECK(view(accept_key("dGhlIHNhbXBsZSBub25jZQ==")) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(view(kKey) == "dGhlIHNhbXBsZSBub25jZQ==");
}

TEST_CASE("RFC 6455 §1.2: the example request is an upgrade, and the example response answers it") {
  UpgradeRequest request;
  parse_upgrade_request(kRfcRequest, request);
  REQUIRE(request.kind == RequestKind::upgrade);
  CHECK(request.error == RequestError::none);
  CHECK(request.path == "/chat");
  CHECK(request.origin == "http://example.com");
  CHECK(request.key == "dGhlIHNhbXBsZSBub25jZQ==");
  CHECK(offered(request) == std::vector<std::string>{"chat", "superchat"});
  CHECK(request.offers("superchat"));
  CHECK_FALSE(request.offers("Chat"));  // subprotocol names are case-sensitive
  CHECK(request.head.fields.find("host")->value == "server.example.com");
  std::string out;
  write_accept(request.key, "chat", out);
  CHECK(out ==
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "Sec-WebSocket-Protocol: chat\r\n"
        "\r\n");
}

TEST_CASE("Upgrade and Connection are token lists in any case, over repeated fields") {
  const std::string firefox = request_with("Connection", "Connection: keep-alive, Upgrade");
  CHECK(classify(firefox).kind == RequestKind::upgrade);
  CHECK(classify(request_with("Upgrade", "upgrade: WebSocket")).kind == RequestKind::upgrade);
  CHECK(classify(request_with("Connection", "CONNECTION: close\r\nConnection: UPGRADE")).kind == RequestKind::upgrade);
  CHECK(classify(request_with("Upgrade", "Upgrade: h2c, websocket")).kind == RequestKind::upgrade);
}

TEST_CASE("the path excludes the query; Origin is empty when not sent") {
  UpgradeRequest request;
  const std::string head = request_with("Origin", "", "GET /chat/room?id=7&x=/ HTTP/1.1");
  parse_upgrade_request(head, request);
  REQUIRE(request.kind == RequestKind::upgrade);
  CHECK(request.path == "/chat/room");
  CHECK(request.head.target == "/chat/room?id=7&x=/");
  CHECK(request.origin.empty());
  CHECK(offered(request) == std::vector<std::string>{"chat", "superchat"});
}

TEST_CASE("a plain GET is not_websocket, with its method and path") {
  UpgradeRequest request;
  const std::string head = "GET /index.html?v=2 HTTP/1.1\r\nHost: example.com\r\nAccept: text/html\r\n\r\n";
  parse_upgrade_request(head, request);
  CHECK(request.kind == RequestKind::not_websocket);
  CHECK(request.error == RequestError::none);
  CHECK(request.head.method == "GET");
  CHECK(request.path == "/index.html");
  // Another protocol in Upgrade, or no Upgrade, is not ours either; HTTP/1.0 needs no Host.
  CHECK(classify(request_with("Upgrade", "Upgrade: h2c")).kind == RequestKind::not_websocket);
  CHECK(classify(request_with("Upgrade", "")).kind == RequestKind::not_websocket);
  CHECK(classify("POST /form HTTP/1.0\r\n\r\n").kind == RequestKind::not_websocket);
}

TEST_CASE("a malformed request line or field is a bad_request (400)") {
  CHECK(classify(request_with("", "", "GET /chat HTTP/1.1 extra")).error == RequestError::start_line);
  CHECK(classify(request_with("Origin", "Origin : http://example.com")).error == RequestError::field);
  CHECK(classify(request_with("", "", "GET /chat HTTP/1.1 extra")).kind == RequestKind::bad_request);
  CHECK(classify(request_with("Origin", " folded")).kind == RequestKind::bad_request);
}

TEST_CASE("more than 64 header fields is too_large (431)") {
  std::string many;
  for (int i = 0; i < 60; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  const Parsed parsed = classify(request_with("X-Extra", many.substr(0, many.size() - 2)));
  CHECK(parsed.kind == RequestKind::too_large);
  CHECK(parsed.error == RequestError::too_many_fields);
  CHECK(refusal_for(RequestKind::too_large) == Refusal::fields_too_large);
}

TEST_CASE("an HTTP/1.1 request without a Host, or any with two, is a bad_request") {
  CHECK(classify(request_with("Host", "")).error == RequestError::host);
  CHECK(classify(request_with("Host", "Host: a\r\nHost: b")).error == RequestError::host);
  CHECK(classify("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n").error == RequestError::host);  // plain ones too
  CHECK(classify(request_with("Host", "")).kind == RequestKind::bad_request);
}

TEST_CASE("an upgrade with a method other than GET is a bad_request") {
  CHECK(classify(request_with("", "", "POST /chat HTTP/1.1")).error == RequestError::method);
  CHECK(classify(request_with("", "", "get /chat HTTP/1.1")).error == RequestError::method);  // methods are case-sensitive
}

TEST_CASE("an upgrade over HTTP/1.0 is a bad_request; later versions are fine") {
  CHECK(classify(request_with("", "", "GET /chat HTTP/1.0")).error == RequestError::http_version);
  CHECK(classify(request_with("", "", "GET /chat HTTP/1.2")).kind == RequestKind::upgrade);
}

TEST_CASE("an upgrade whose target is not a path is a bad_request") {
  CHECK(classify(request_with("", "", "GET * HTTP/1.1")).error == RequestError::target);
  CHECK(classify(request_with("", "", "GET ws://server.example.com/chat HTTP/1.1")).error == RequestError::target);
}

TEST_CASE("an upgrade without upgrade in Connection is a bad_request") {
  CHECK(classify(request_with("Connection", "Connection: keep-alive")).error == RequestError::connection);
  CHECK(classify(request_with("Connection", "")).error == RequestError::connection);
  CHECK(classify(request_with("Connection", "Connection: upgrades")).error == RequestError::connection);
}

TEST_CASE("an upgrade without one Sec-WebSocket-Version is a bad_request") {
  CHECK(classify(request_with("Sec-WebSocket-Version", "")).error == RequestError::version_missing);
  CHECK(classify(request_with("Sec-WebSocket-Version", "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13")).error ==
        RequestError::version_missing);
}

TEST_CASE("an upgrade for another Sec-WebSocket-Version is wrong_version (426)") {
  for (const char* version : {"8", "12", "14", "013", "13, 8", ""}) {
    const Parsed parsed = classify(request_with("Sec-WebSocket-Version", std::string("Sec-WebSocket-Version: ") + version));
    CHECK_MESSAGE(parsed.kind == RequestKind::wrong_version, version);
    CHECK(parsed.error == RequestError::version);
  }
  CHECK(refusal_for(RequestKind::wrong_version) == Refusal::upgrade_required);
}

TEST_CASE("an upgrade without one Sec-WebSocket-Key of 16 bytes is a bad_request") {
  for (const char* key : {"", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQAA",
                          "dGhlIHNhbXBsZSBu", "dGhlIHNhbXBsZSBub25jZR==", "dGhlIHNhbXBsZSBub25j ZQ=="}) {
    const Parsed parsed = classify(request_with("Sec-WebSocket-Key", std::string("Sec-WebSocket-Key: ") + key));
    CHECK_MESSAGE(parsed.error == RequestError::key, key);
    CHECK(parsed.kind == RequestKind::bad_request);
  }
  CHECK(classify(request_with("Sec-WebSocket-Key", "")).error == RequestError::key);
  CHECK(classify(request_with("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")).error ==
        RequestError::key);
  CHECK(refusal_for(RequestKind::bad_request) == Refusal::bad_request);
}

TEST_CASE("refusals: status, Connection: close, no body; 426 names version 13") {
  std::string out;
  write_refusal(Refusal::bad_request, out);
  CHECK(out == "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  out.clear();
  write_refusal(Refusal::upgrade_required, out);
  CHECK(out ==
        "HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        "Connection: close\r\nContent-Length: 0\r\n\r\n");
  for (Refusal refusal : {Refusal::bad_request, Refusal::forbidden, Refusal::not_found, Refusal::upgrade_required,
                          Refusal::fields_too_large}) {
    out.clear();
    write_refusal(refusal, out);
    http::ResponseHead head;
    REQUIRE(http::parse_response_head(out, head) == http::HeadError::none);
    CHECK(head.status == static_cast<unsigned>(refusal));
    CHECK(head.fields.has_token("Connection", "close"));
    CHECK(head.fields.find("Content-Length")->value == "0");
  }
}

TEST_CASE("a page: 200 with its type, length and body, then close") {
  std::string out = "kept ";  // the writers append
  write_page("text/html; charset=utf-8", "<p>hi</p>", out);
  CHECK(out ==
        "kept HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 9\r\n"
        "Connection: close\r\n\r\n<p>hi</p>");
  CHECK_THROWS_AS(write_page("text/html\r\nSet-Cookie: x", "", out), std::invalid_argument);
  CHECK_THROWS_AS(write_page("", "", out), std::invalid_argument);
}

TEST_CASE("accepting without a subprotocol leaves the field out; a subprotocol must be a token") {
  std::string out;
  write_accept("dGhlIHNhbXBsZSBub25jZQ==", "", out);
  CHECK(out.find("Sec-WebSocket-Protocol") == std::string::npos);
  CHECK(check(out) == ResponseError::none);
  CHECK_THROWS_AS(write_accept("dGhlIHNhbXBsZSBub25jZQ==", "chat\r\nX: y", out), std::invalid_argument);
  CHECK_THROWS_AS(write_accept("dGhlIHNhbXBsZSBub25jZQ==", "a b", out), std::invalid_argument);
}

TEST_CASE("a random client key is 16 bytes in base64, and a fresh one each time") {
  const ClientKey first = random_client_key();
  const ClientKey second = random_client_key();
  uint8_t nonce[16];
  CHECK(evwheel::base64_decode(view(first), nonce, sizeof nonce) == 16);
  CHECK(first != second);
}

TEST_CASE("the client's request is an upgrade the server accepts, with the same key, path and offer") {
  ClientRequest request;
  request.host = "[::1]:8080";
  request.path = "/feed?since=10";
  request.subprotocols = {"v2.chat", "chat"};
  request.fields = {{"Origin", "http://example.com"}, {"User-Agent", "evwheel"}};
  std::string out;
  write_client_request(request, kKey, out);
  CHECK(out.rfind("GET /feed?since=10 HTTP/1.1\r\nHost: [::1]:8080\r\n", 0) == 0);
  UpgradeRequest parsed;
  parse_upgrade_request(out, parsed);
  REQUIRE(parsed.kind == RequestKind::upgrade);
  CHECK(parsed.key == view(kKey));
  CHECK(parsed.path == "/feed");
  CHECK(parsed.origin == "http://example.com");
  CHECK(offered(parsed) == request.subprotocols);
  CHECK(parsed.head.fields.find("User-Agent")->value == "evwheel");
  // ... and the server's answer passes the client's checks, with the subprotocol chosen.
  std::string answer;
  write_accept(parsed.key, "chat", answer);
  UpgradeResponse response;
  check_upgrade_response(answer, kKey, request.subprotocols, response);
  CHECK(response.error == ResponseError::none);
  CHECK(response.subprotocol == "chat");
}

TEST_CASE("a client request with a field that would break the head is refused") {
  using Change = std::function<void(ClientRequest&)>;
  std::vector<Change> changes = {
      [](ClientRequest& r) { r.host = ""; },
      [](ClientRequest& r) { r.host = "a b"; },
      [](ClientRequest& r) { r.path = "chat"; },
      [](ClientRequest& r) { r.path = "/a\r\nX: y"; },
      [](ClientRequest& r) { r.subprotocols = {"chat", "chat"}; },
      [](ClientRequest& r) { r.subprotocols = {"a,b"}; },
      [](ClientRequest& r) { r.fields = {{"Bad Name", "v"}}; },
      [](ClientRequest& r) { r.fields = {{"X", "v\r\nInjected: yes"}}; },
  };
  for (const char* own : {"host", "Upgrade", "CONNECTION", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
                          "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"})
    changes.push_back([own](ClientRequest& r) { r.fields = {{own, "x"}}; });
  std::string out;
  for (std::size_t i = 0; i < changes.size(); ++i) {
    ClientRequest request;
    changes[i](request);
    CHECK_THROWS_AS_MESSAGE(write_client_request(request, kKey, out), std::invalid_argument, "change ", i);
  }
  CHECK(out.empty());  // nothing is written before the checks pass
}

TEST_CASE("the client accepts the RFC's response to its key") {
  CHECK(check(response(kGoodFields)) == ResponseError::none);
  CHECK(check(response("upgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n"
                       "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")) == ResponseError::none);
}

TEST_CASE("the client refuses a response that is not 101, with the status kept") {
  UpgradeResponse out;
  check_upgrade_response("HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n", kKey, {}, out);
  CHECK(out.error == ResponseError::status);
  CHECK(out.head.status == 403);
  CHECK(check("HTTP/1.1 200 OK\r\n" + kGoodFields + "\r\n") == ResponseError::status);
}

TEST_CASE("the client refuses a malformed response head") {
  CHECK(check("HTTP/1.1 101Switching\r\n" + kGoodFields + "\r\n") == ResponseError::status_line);
  CHECK(check(response(kGoodFields + "Bad Field: x\r\n")) == ResponseError::field);
  std::string many;
  for (int i = 0; i < 64; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  CHECK(check(response(kGoodFields + many)) == ResponseError::too_many_fields);
}

TEST_CASE("the client refuses a response without Upgrade: websocket or Connection: upgrade") {
  CHECK(check(response("Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")) ==
        ResponseError::upgrade);
  CHECK(check(response("Upgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")) ==
        ResponseError::upgrade);
  CHECK(check(response("Upgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")) ==
        ResponseError::connection);
}

TEST_CASE("the client refuses a missing, repeated or wrong Sec-WebSocket-Accept") {
  CHECK(check(response("Upgrade: websocket\r\nConnection: Upgrade\r\n")) == ResponseError::accept);
  CHECK(check(response(kGoodFields + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")) == ResponseError::accept);
  CHECK(check(response("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOO=\r\n")) ==
        ResponseError::accept);
}

TEST_CASE("the client refuses a subprotocol it did not offer, or several") {
  CHECK(check(response(kGoodFields + "Sec-WebSocket-Protocol: chat\r\n")) == ResponseError::subprotocol);
  CHECK(check(response(kGoodFields + "Sec-WebSocket-Protocol: chat\r\n"), {"superchat"}) == ResponseError::subprotocol);
  CHECK(check(response(kGoodFields + "Sec-WebSocket-Protocol: Chat\r\n"), {"chat"}) == ResponseError::subprotocol);
  CHECK(check(response(kGoodFields + "Sec-WebSocket-Protocol: chat, superchat\r\n"), {"chat", "superchat"}) ==
        ResponseError::subprotocol);
  CHECK(check(response(kGoodFields + "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n"), {"chat"}) ==
        ResponseError::subprotocol);
  CHECK(check(response(kGoodFields + "Sec-WebSocket-Protocol: superchat\r\n"), {"chat", "superchat"}) ==
        ResponseError::none);
}

TEST_CASE("the client refuses any extension, having offered none") {
  CHECK(check(response(kGoodFields + "Sec-WebSocket-Extensions: permessage-deflate\r\n")) == ResponseError::extension);
  CHECK(check(response(kGoodFields + "Sec-WebSocket-Extensions: \r\n")) == ResponseError::none);
}

TEST_CASE("every RequestError and ResponseError has its own description") {
  std::vector<std::string> seen;
  for (int e = 0; e <= static_cast<int>(RequestError::key); ++e) seen.push_back(to_string(static_cast<RequestError>(e)));
  for (int e = 1; e <= static_cast<int>(ResponseError::extension); ++e)
    seen.push_back(to_string(static_cast<ResponseError>(e)));
  for (std::size_t i = 0; i < seen.size(); ++i)
    for (std::size_t j = 0; j < i; ++j) CHECK_MESSAGE(seen[i] != seen[j], seen[i]);
}
